"""Loaders on the real files in shared/data (counts from MANIFEST.md) and their failure paths."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import numpy as np
import pytest

from fedpia.data import DataError, load_covid_cxr, load_image, load_medmnist, load_vqa_rad, read_npz


@pytest.fixture(scope="module")
def vqarad(shared_data):
    return load_vqa_rad(shared_data / "vqa_rad")


def test_vqarad_official_split_counts(vqarad):
    assert len(vqarad) == 2248
    assert len(vqarad.split("train")) == 1797 and len(vqarad.split("test")) == 451
    assert Counter(s.meta["answer_type"] for s in vqarad) == {"closed": 1299, "open": 949}
    assert Counter(s.meta["organ"] for s in vqarad) == {"HEAD": 715, "CHEST": 794, "ABD": 739}
    assert vqarad.report.n_skipped == 0
    assert all(s.target == s.target.strip().lower() for s in vqarad)
    assert load_image(vqarad[0]).size[0] > 0


@pytest.mark.parametrize("flag,counts,shape", [
    ("breastmnist", (546, 78, 156), (28, 28)),
    ("pneumoniamnist", (4708, 524, 624), (28, 28)),
    ("retinamnist", (1080, 120, 400), (28, 28, 3)),
])
def test_medmnist_counts_and_shapes(shared_data, flag, counts, shape):
    ds = load_medmnist(shared_data / "medmnist", flag, as_task="multiclass")
    assert tuple(len(ds.split(s)) for s in ("train", "val", "test")) == counts
    assert ds[0].image.shape == shape and ds[0].image.dtype == np.uint8


def test_medmnist_vqa_answers_follow_labels(shared_data):
    ds = load_medmnist(shared_data / "medmnist", "breastmnist", as_task="vqa")
    # official test label counts: [42 malignant, 114 normal+benign]
    assert Counter(s.target for s in ds.split("test")) == {"yes": 42, "no": 114}
    assert ds[0].text == "Is this breast ultrasound malignant?" and ds[0].meta["answer_type"] == "closed"
    retina = load_medmnist(shared_data / "medmnist", "retinamnist", as_task="vqa")
    assert Counter(s.target for s in retina.split("train"))["grade 4"] == 66


def test_covid_dedup_and_sites(shared_data):
    ds = load_covid_cxr(shared_data / "covid_chestxray_subset")
    assert len(ds) == 94  # 99 rows with images -> 94 distinct files
    assert len({s.meta["uid"] for s in ds}) == 94
    assert ds.report.n_filtered == 751 - 94
    sites = Counter(s.meta["site"] for s in ds)
    assert sites["Spain"] == 32 and "?" not in sites and sites["unknown"] == 2
    both = [s for s in ds if len(s.target) == 2]
    assert [s.target for s in both] == [("ARDS", "COVID-19")]


# --- failure paths on small copies -------------------------------------------------------------
def _tiny_vqarad(shared_data, tmp_path, n=6):
    src = shared_data / "vqa_rad"
    recs = json.loads((src / "VQA_RAD Dataset Public.json").read_text())[:n]
    (tmp_path / "VQA_RAD Image Folder").mkdir()
    for r in recs:
        shutil.copy(src / "VQA_RAD Image Folder" / r["image_name"], tmp_path / "VQA_RAD Image Folder")
    return recs


def test_vqarad_missing_and_malformed_files(shared_data, tmp_path):
    with pytest.raises(DataError, match="VQA_RAD Dataset Public.json"):
        load_vqa_rad(tmp_path)
    recs = _tiny_vqarad(shared_data, tmp_path)
    (tmp_path / "VQA_RAD Dataset Public.json").write_text(json.dumps(recs)[:-5])
    with pytest.raises(DataError, match="malformed JSON"):
        load_vqa_rad(tmp_path)


def test_vqarad_bad_records_raise_or_skip(shared_data, tmp_path):
    recs = _tiny_vqarad(shared_data, tmp_path)
    del recs[1]["answer"]
    recs[2]["image_name"] = "nope.jpg"
    (tmp_path / "VQA_RAD Image Folder" / "corrupt.jpg").write_bytes(b"garbage")
    recs[3]["image_name"] = "corrupt.jpg"
    (tmp_path / "VQA_RAD Dataset Public.json").write_text(json.dumps(recs))
    with pytest.raises(DataError, match=r"row 1\).*answer"):
        load_vqa_rad(tmp_path)
    ds = load_vqa_rad(tmp_path, on_error="skip")
    assert len(ds) == 3 and ds.report.n_skipped == 3
    assert {row for _, row, _ in ds.report.skipped} == {1, 2, 3}
    assert any("corrupt.jpg" in f for f, _, _ in ds.report.skipped)
    with pytest.raises(ValueError, match="on_error"):
        load_vqa_rad(tmp_path, on_error="ignore")


def test_medmnist_tiny_npz_and_bad_npz(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {f"{s}_{k}": v for s, n in (("train", 5), ("val", 2), ("test", 3)) for k, v in (
        ("images", rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)), ("labels", rng.integers(0, 2, (n, 1))))}
    np.savez(tmp_path / "pneumoniamnist.npz", **arrays)
    ds = load_medmnist(tmp_path, "pneumoniamnist")
    assert len(ds) == 10 and {s.target for s in ds} <= {"yes", "no"}
    arrays["test_labels"] = np.array([[0], [1], [7]])
    np.savez(tmp_path / "breastmnist.npz", **arrays)
    with pytest.raises(DataError, match=r"breastmnist.npz \(row test\[2\]\)"):
        load_medmnist(tmp_path, "breastmnist")
    assert load_medmnist(tmp_path, "breastmnist", on_error="skip").report.n_skipped == 1
    np.savez(tmp_path / "retinamnist.npz", train_images=arrays["train_images"])
    with pytest.raises(DataError, match="missing array"):
        read_npz(tmp_path / "retinamnist.npz")
    (tmp_path / "x.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="x.npz"):
        read_npz(tmp_path / "x.npz")


def test_covid_missing_columns_and_corrupt_image(shared_data, tmp_path):
    src = shared_data / "covid_chestxray_subset"
    lines = (src / "metadata.csv").read_text().splitlines(keepends=True)
    (tmp_path / "metadata.csv").write_text(lines[0].replace("clinical_notes", "notes") + "".join(lines[1:3]))
    with pytest.raises(DataError, match=r"metadata.csv.*clinical_notes"):
        load_covid_cxr(tmp_path)
    (tmp_path / "metadata.csv").write_text((src / "metadata.csv").read_text())
    (tmp_path / "images").mkdir()
    shutil.copy(src / "images" / "000001-12.jpg", tmp_path / "images")
    (tmp_path / "images" / "000001-17.jpg").write_bytes(b"broken")
    with pytest.raises(DataError, match="000001-17.jpg"):
        load_covid_cxr(tmp_path)
    ds = load_covid_cxr(tmp_path, on_error="skip")
    assert len(ds) == 1 and ds.report.n_skipped == 1
