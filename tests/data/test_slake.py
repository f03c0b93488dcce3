"""SLAKE loader on the real release in shared/data/slake (counts verified from the files) and its
failure paths on small corrupted copies written here. JSON is parsed in full; only a few images
are decoded (CI has 2 cores)."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest

from fedpia.data import DataError, load_image, load_slake
from fedpia.data.schema import normalize_answer

SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def slake(shared_data):
    return load_slake(shared_data / "slake")


def _images(samples) -> dict[str, str]:
    """image_name -> modality (one modality per image, checked)."""
    out: dict[str, str] = {}
    for s in samples:
        assert out.setdefault(s.meta["image_name"], s.meta["modality"]) == s.meta["modality"]
    return out


def test_raw_split_files_hold_the_published_english_counts(shared_data):
    raw = {sp: json.loads((shared_data / "slake" / f"{sp}.json").read_text()) for sp in ("train", "validate", "test")}
    assert [len(r) for r in raw.values()] == [9835, 2099, 2094]  # 14,028 QA, both languages
    english = {sp: [r for r in recs if r["q_lang"] == "en"] for sp, recs in raw.items()}
    assert [len(r) for r in english.values()] == [4919, 1053, 1061]
    empty = [(sp, r["qid"]) for sp, recs in english.items() for r in recs if not r["answer"].strip()]
    assert empty == [("train", 1622)]  # the one English record the loader drops


def test_english_split_counts_and_report(slake):
    assert [len(slake.split(s)) for s in SPLITS] == [4918, 1053, 1061]  # 4,919 minus the empty answer
    assert slake.report.n_skipped == 0
    assert slake.report.n_filtered == (9835 - 4919) + (2099 - 1053) + (2094 - 1061) + 1
    assert len({s.meta["uid"] for s in slake}) == len(slake) == 7032
    assert {s.meta["split"] for s in slake} == set(SPLITS) and all(s.task == "vqa" for s in slake)


def test_images_disjoint_across_splits_with_one_modality_each(slake):
    per_split = {sp: _images(slake.split(sp)) for sp in SPLITS}
    assert [len(v) for v in per_split.values()] == [450, 96, 96]
    names = [set(v) for v in per_split.values()]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    every = _images(slake)
    assert len(every) == 642
    assert Counter(every.values()) == {"ct": 282, "mri": 181, "x-ray": 179}
    assert [Counter(v.values()) for v in per_split.values()] == [
        {"ct": 200, "mri": 128, "x-ray": 122}, {"ct": 42, "mri": 27, "x-ray": 27},
        {"ct": 40, "mri": 26, "x-ray": 30}]


def test_answer_types_locations_and_answer_space(slake):
    assert [Counter(s.meta["answer_type"] for s in slake.split(sp)) for sp in SPLITS] == [
        {"open": 2975, "closed": 1943}, {"open": 631, "closed": 422}, {"open": 645, "closed": 416}]
    locations = Counter({s.meta["image_name"]: s.meta["organ"] for s in slake}.values())
    assert locations == {"Lung": 220, "Abdomen": 170, "Brain_Tissue": 110, "Pelvic Cavity": 41, "Brain": 39,
                         "Chest_lung": 19, "Brain_Face": 16, "Neck": 16, "Chest_heart": 7, "Chest_mediastinal": 4}
    assert Counter(s.meta["base_type"] for s in slake) == {"vqa": 6147, "kvqa": 885}
    # 225 lower-cased answer strings in the files: minus "" (dropped) and "transverse  plane" (two
    # spaces, normalised into "transverse plane")
    assert len({s.target for s in slake}) == 223 and "transverse plane" in {s.target for s in slake}
    assert all(s.target == normalize_answer(s.target) and s.target for s in slake)
    closed = Counter(s.target for s in slake if s.meta["answer_type"] == "closed")
    assert {a for a, _ in closed.most_common(2)} == {"yes", "no"}
    assert sum(closed.values()) > closed["yes"] + closed["no"]  # CLOSED is not only yes/no in SLAKE


def test_image_paths_resolve_and_a_few_decode(slake, shared_data):
    imgs = shared_data / "slake" / "imgs"
    assert all(s.image.parent.parent == imgs and s.image.name == "source.jpg"
               and s.image.parent.name == s.meta["image_name"].split("/")[0] for s in slake)
    first = {}
    for s in slake:
        first.setdefault(s.meta["modality"], s)
    sizes = {m: load_image(s).size for m, s in first.items()}
    assert sizes["ct"] == (512, 512) and sizes["x-ray"] == (1024, 1024)
    assert sizes["mri"] in {(240, 240), (256, 256), (288, 288), (320, 320)}
    assert all(load_image(s).mode == "RGB" for s in first.values())


def test_reads_the_split_files_not_the_older_per_image_copies(slake, shared_data):
    older = json.loads((shared_data / "slake" / "imgs" / "xmlab297" / "question.json").read_text())
    assert any("exsit" in r["question"] for r in older if r["q_lang"] == "en")
    ours = [s.text for s in slake if s.meta["image_name"] == "xmlab297/source.jpg"]
    assert "Do the organs in the image exist in the chest?" in ours
    assert not any("exsit" in s.text for s in slake)


# --- failure paths on small copies -------------------------------------------------------------
def _tiny_copy(shared_data, tmp_path, n=3):
    """First ``n`` English records of each split (+ one Chinese in train) and their images."""
    src = shared_data / "slake"
    out = {}
    for sp in ("train", "validate", "test"):
        recs = json.loads((src / f"{sp}.json").read_text())
        out[sp] = [r for r in recs if r["q_lang"] == "en"][:n] + ([next(r for r in recs if r["q_lang"] == "zh")]
                                                                   if sp == "train" else [])
        for r in out[sp]:
            (tmp_path / "imgs" / r["img_name"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src / "imgs" / r["img_name"], tmp_path / "imgs" / r["img_name"])
    return out


def _write(tmp_path, recs):
    for sp, rs in recs.items():
        (tmp_path / f"{sp}.json").write_text(json.dumps(rs, ensure_ascii=False))


def test_tiny_copy_loads_and_filters_language(shared_data, tmp_path):
    recs = _tiny_copy(shared_data, tmp_path)
    _write(tmp_path, recs)
    ds = load_slake(tmp_path)
    assert [len(ds.split(s)) for s in SPLITS] == [3, 3, 3] and ds.report.n_filtered == 1
    assert [s.meta["qid"] for s in ds.split("train")] == [r["qid"] for r in recs["train"][:3]]
    zh = load_slake(tmp_path, language="zh")
    assert len(zh) == 1 and zh[0].meta["qid"] == recs["train"][3]["qid"]
    (tmp_path / "validate.json").rename(tmp_path / "validation.json")  # the Hugging Face copy's name
    assert len(load_slake(tmp_path).split("val")) == 3


@pytest.mark.parametrize("mutate,match", [
    (lambda t: t[1].pop("modality"), r"train.json \(row 1\).*missing field.*modality"),
    (lambda t: t[1].update(answer_type="MAYBE"), r"train.json \(row 1\).*answer_type 'MAYBE'"),
    (lambda t: t[1].update(modality="PET"), r"train.json \(row 1\).*modality 'PET'"),
    (lambda t: t[1].update(img_name="../../etc/passwd"), r"train.json \(row 1\).*relative path"),
    (lambda t: t[1].update(question="  "), r"train.json \(row 1\).*empty question"),
    (lambda t: t[1].update(qid=t[0]["qid"]), r"train.json \(row 1\).*qid \d+ already used at train.json row 0"),
    (lambda t: t.__setitem__(1, "not a record"), r"train.json \(row 1\).*record is a str"),
])
def test_bad_record_names_file_and_row(shared_data, tmp_path, mutate, match):
    recs = _tiny_copy(shared_data, tmp_path)
    mutate(recs["train"])
    _write(tmp_path, recs)
    with pytest.raises(DataError, match=match):
        load_slake(tmp_path)
    ds = load_slake(tmp_path, on_error="skip")
    assert len(ds.split("train")) == 2 and len(ds) == 8
    assert [row for _, row, _ in ds.report.skipped] == [1]


def test_missing_or_corrupt_image_and_broken_files(shared_data, tmp_path):
    recs = _tiny_copy(shared_data, tmp_path)
    recs["test"][0]["img_name"] = "xmlab9999/source.jpg"
    (tmp_path / "imgs" / "xmlab0" / "source.jpg").write_bytes(b"not a jpeg")  # all 3 validate records
    _write(tmp_path, recs)
    with pytest.raises(DataError, match=r"xmlab9999/source.jpg \(row 0\).*not found"):
        load_slake(tmp_path, splits=("test",))
    with pytest.raises(DataError, match=r"xmlab0/source.jpg \(row 0\).*corrupt"):
        load_slake(tmp_path, splits=("validate",))
    ds = load_slake(tmp_path, on_error="skip")
    assert len(ds) == 5 and [len(ds.split(s)) for s in SPLITS] == [3, 0, 2]
    assert [(f.split("/")[-2], row) for f, row, _ in ds.report.skipped] == [
        ("xmlab0", 0), ("xmlab0", 1), ("xmlab0", 2), ("xmlab9999", 0)]
    (tmp_path / "test.json").write_text('[{"img_name": ')
    with pytest.raises(DataError, match=r"test.json.*malformed JSON"):
        load_slake(tmp_path, on_error="skip")  # unparsable file raises in every mode
    (tmp_path / "test.json").write_text('{"records": []}')
    with pytest.raises(DataError, match=r"test.json.*expected a JSON list"):
        load_slake(tmp_path)
    (tmp_path / "test.json").unlink()
    with pytest.raises(DataError, match=r"test.json.*not found"):
        load_slake(tmp_path)
    with pytest.raises(ValueError, match="split must be one of"):
        load_slake(tmp_path, splits=("val",))
