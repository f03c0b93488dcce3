"""Site-local data (a SuperNode's own folder and format): node-config parsing with clear errors,
and one ClientSplit per format on the real files / a local Hugging Face folder."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from fedpia.data.site import load_site, parse_site


@pytest.mark.parametrize("node_config, needle", [
    ({"data-path": "/x"}, "no data-format"),
    ({"data-format": "dicom", "data-path": "/x"}, "data-format='dicom'"),
    ({"data-format": "medmnist", "data-path": "/x"}, "needs ':<flag>'"),
    ({"data-format": "vqa_rad:x", "data-path": "/x"}, "takes no"),
    ({"data-format": "vqa_rad"}, "needs data-path"),
    ({"data-format": "vqa_rad", "data-path": "/x", "data-max-trian": 5}, "'data-max-trian'"),
    ({"data-format": "vqa_rad", "data-path": "/x", "data-max-train": "5"}, "must be a int"),
])
def test_parse_site_errors_name_the_key(node_config, needle):
    with pytest.raises(ValueError, match=needle):
        parse_site(node_config)


def test_parse_site_none_without_data_keys_and_types():
    assert parse_site({"partition-id": 0, "num-partitions": 2}) is None
    spec = parse_site({"data-format": "medmnist:breastmnist", "data-path": "~/m",
                       "data-val-fraction": 0, "data-max-test": 9})
    assert (spec.format, spec.arg, spec.option("val-fraction"), spec.option("max-test")) == (
        "medmnist", "breastmnist", 0.0, 9)
    assert spec.path.is_absolute() and spec.option("size") == 28  # ~ expanded, defaults


def test_synthetic_site_is_seeded_by_run_seed_and_index():
    spec = parse_site({"data-format": "synthetic:ct", "data-n-train": 12, "data-n-test": 6,
                       "data-task": "multiclass"})
    a = load_site(spec, name="hospital-a", index=0, seed=3)
    b = load_site(spec, name="hospital-a", index=0, seed=3)
    c = load_site(spec, name="hospital-a", index=1, seed=3)
    assert a.name == "hospital-a" and a.task == "multiclass" and a.sizes() == {
        "train": 12, "val": 8, "test": 6}
    assert [s.target for s in a.train] == [s.target for s in b.train]
    assert [s.meta["uid"] for s in a.train] != [s.meta["uid"] for s in c.train]


def test_real_sites_keep_official_splits_and_carve_by_group(shared_data):
    vqa = load_site(parse_site({"data-format": "vqa_rad", "data-path": str(shared_data / "vqa_rad")}),
                    name="h", index=0, seed=0)
    assert len(vqa.test) == 451 and len(vqa.train) + len(vqa.val) == 1797  # official test kept
    assert not {s.meta["image_name"] for s in vqa.train} & {s.meta["image_name"] for s in vqa.val}
    slake = load_site(parse_site({"data-format": "slake", "data-path": str(shared_data / "slake")}),
                      name="h", index=0, seed=0)
    assert slake.sizes() == {"train": 4918, "val": 1053, "test": 1061}  # official val and test
    med = load_site(parse_site({"data-format": "medmnist:breastmnist", "data-task": "multiclass",
                                "data-path": str(shared_data / "medmnist"), "data-max-train": 40}),
                    name="h", index=0, seed=0)
    assert med.task == "multiclass" and med.sizes() == {"train": 40, "val": 78, "test": 156}
    cov = load_site(parse_site({"data-format": "covid",
                                "data-path": str(shared_data / "covid_chestxray_subset")}),
                    name="h", index=0, seed=0)
    parts = [{s.meta["patient"] for s in p} for p in (cov.train, cov.val, cov.test)]
    assert cov.task == "multilabel" and all(parts) and not (parts[0] & parts[1] or parts[0] & parts[2])
    assert abs(len(cov.test) / (len(cov.train) + len(cov.val) + len(cov.test)) - 0.2) < 0.08


def test_hf_site_reads_a_local_datasets_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    from datasets import Dataset, Features, Value
    from datasets import Image as HFImage

    feats = Features({"image": HFImage(), "question": Value("string"), "answer": Value("string")})
    img = io.BytesIO()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(img, format="PNG")
    folder = tmp_path / "site"
    folder.mkdir()
    for split, n in (("train", 6), ("test", 3)):
        rows = {"image": [{"bytes": img.getvalue(), "path": None}] * n,
                "question": [f"q{i}?" for i in range(n)], "answer": ["Yes", "No"] * (n // 2) + ["yes"] * (n % 2)}
        Dataset.from_dict(rows, features=feats).to_parquet(str(folder / f"{split}.parquet"))
    site = load_site(parse_site({"data-format": "hf", "data-path": str(folder)}), name="h",
                     index=0, seed=0)
    assert site.task == "vqa" and len(site.test) == 3 and len(site.train) + len(site.val) == 6
    assert {s.target for s in site.train + site.val} <= {"yes", "no"}
    # a save_to_disk folder of ONE Dataset (a "train" split only): test and val are carved
    rows = {"image": [{"bytes": img.getvalue(), "path": None}] * 10,
            "question": [f"q{i}?" for i in range(10)], "answer": ["yes", "no"] * 5}
    Dataset.from_dict(rows, features=feats).save_to_disk(str(tmp_path / "saved"))
    saved = load_site(parse_site({"data-format": "hf", "data-path": str(tmp_path / "saved"),
                                  "data-test-fraction": 0.3}), name="h", index=0, seed=0)
    assert saved.sizes()["test"] == 3 and sum(saved.sizes().values()) == 10
