"""Official-format loaders on tiny fixtures written here (images made with PIL in tmp_path)."""

from __future__ import annotations

import io
import json
import pickle

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fedpia.data import (
    CHEXPERT_LABELS,
    DataError,
    get_setting,
    load_hf,
    load_mimic_cxr,
    load_omnimedvqa,
    load_openi,
    load_pathvqa,
    load_pathvqa_parquet,
    load_slake,
    load_vqa_med,
)


def _img(path, value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), value, np.uint8)).save(path)


def test_slake_english_subset_and_splits(tmp_path):
    for split in ("train", "validate", "test"):
        recs = [{"img_id": 1, "img_name": "xmlab1/source.jpg", "question": "Is this a CT?", "answer": "Yes",
                 "answer_type": "CLOSED", "q_lang": "en", "location": "Lung", "modality": "CT", "qid": f"{split}1"},
                {"img_id": 1, "img_name": "xmlab1/source.jpg", "question": "这是CT吗", "answer": "是",
                 "answer_type": "CLOSED", "q_lang": "zh", "location": "Lung", "modality": "CT", "qid": f"{split}2"}]
        (tmp_path / f"{split}.json").write_text(json.dumps(recs, ensure_ascii=False))
    _img(tmp_path / "imgs" / "xmlab1" / "source.jpg")
    ds = load_slake(tmp_path)
    assert len(ds) == 3 and ds.report.n_filtered == 3
    assert [len(ds.split(s)) for s in ("train", "val", "test")] == [1, 1, 1]
    assert ds[0].target == "yes" and ds[0].meta["organ"] == "Lung" and ds[0].meta["modality"] == "ct"


def test_vqa_med_pipe_format_and_bad_line(tmp_path):
    _img(tmp_path / "imgs" / "synpic1.jpg")
    qa = tmp_path / "C1_Modality_train.txt"
    qa.write_text("synpic1|what modality is shown?|ct w/contrast\nsynpic1|is this an mri?|no\nbroken line\n")
    with pytest.raises(DataError, match=r"C1_Modality_train.txt \(row 3\)"):
        load_vqa_med(qa, tmp_path / "imgs", split="train")
    ds = load_vqa_med(qa, tmp_path / "imgs", split="train", on_error="skip")
    assert len(ds) == 2 and ds.report.n_skipped == 1
    assert ds[0].meta["category"] == "modality" and [s.meta["answer_type"] for s in ds] == ["open", "closed"]
    test = tmp_path / "test.txt"
    test.write_text("synpic1|abnormality|what is abnormal?|cyst\n")
    assert load_vqa_med(test, tmp_path / "imgs", split="test", year=2021)[0].meta["category"] == "abnormality"


def test_pathvqa_pickle_and_parquet(tmp_path):
    (tmp_path / "qas" / "train").mkdir(parents=True)
    recs = [{"image": "train_0001", "question": "Is there necrosis?", "answer": "yes"}, {"image": "x"}]
    (tmp_path / "qas" / "train" / "train_qa.pkl").write_bytes(pickle.dumps(recs))
    _img(tmp_path / "images" / "train" / "train_0001.jpg")
    ds = load_pathvqa(tmp_path, splits=("train",), on_error="skip")
    assert len(ds) == 1 and ds.report.n_skipped == 1 and ds[0].meta["modality"] == "pathology"
    buf = io.BytesIO()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(buf, format="PNG")
    df = pd.DataFrame({"image": [{"bytes": buf.getvalue(), "path": "a.png"}, {"bytes": b"junk", "path": "b"}],
                       "question": ["what stain?", "q"], "answer": ["H&E", "a"]})
    df.to_parquet(tmp_path / "test.parquet")
    pq = load_pathvqa_parquet(tmp_path / "test.parquet", split="test", on_error="skip")
    assert len(pq) == 1 and pq.report.n_skipped == 1 and pq[0].image.size == (4, 4)
    with pytest.raises(DataError, match="test.parquet"):
        load_pathvqa_parquet(tmp_path / "test.parquet", split="test")


def test_omnimedvqa_options_in_text(tmp_path):
    qa = tmp_path / "QA_information" / "Open-access"
    qa.mkdir(parents=True)
    rec = {"question_id": "q1", "question": "Which organ?", "gt_answer": "Liver", "option_A": "Liver",
           "option_B": "Lung", "image_path": "Images/a/1.png", "modality_type": "CT", "dataset": "a"}
    (qa / "a.json").write_text(json.dumps([rec, {"question": "x"}]))
    _img(tmp_path / "Images" / "a" / "1.png")
    ds = load_omnimedvqa(tmp_path, on_error="skip")
    assert len(ds) == 1 and ds.report.n_skipped == 1
    assert ds[0].text == "Which organ? Options: A) Liver; B) Lung" and ds[0].target == "liver"


def test_openi_reports_and_projections(tmp_path):
    pd.DataFrame({"uid": ["1", "2"], "MeSH": ["Cardiomegaly/mild;Effusion", "normal"],
                  "Problems": ["Cardiomegaly;Effusion", "normal"], "findings": ["Big heart.", "Clear."],
                  "impression": ["Cardiomegaly.", ""]}).to_csv(tmp_path / "indiana_reports.csv", index=False)
    pd.DataFrame({"uid": ["1", "1", "2"], "filename": ["1_f.png", "1_l.png", "2_f.png"],
                  "projection": ["Frontal", "Lateral", "Frontal"]}).to_csv(tmp_path / "indiana_projections.csv", index=False)
    for f in ("1_f.png", "2_f.png"):
        _img(tmp_path / "images" / "images_normalized" / f)
    ds = load_openi(tmp_path, label_source="mesh")
    assert len(ds) == 2 and ds.report.n_filtered == 1
    assert ds[0].target == ("Cardiomegaly", "Effusion") and ds[0].text == "Big heart. Cardiomegaly."
    pd.DataFrame({"uid": ["1"], "MeSH": ["x"]}).to_csv(tmp_path / "indiana_reports.csv", index=False)
    with pytest.raises(DataError, match="indiana_reports.csv.*Problems"):
        load_openi(tmp_path)


def _mimic(root, n_subjects=12):
    chex, split = [], []
    for k in range(n_subjects):
        subj, study = f"100000{k:02d}", f"5{k:07d}"
        row = {"subject_id": subj, "study_id": study} | {c: "" for c in CHEXPERT_LABELS}
        row[CHEXPERT_LABELS[k % 3]] = "1.0"
        row["Edema"] = "-1.0"
        chex.append(row)
        split.append({"dicom_id": f"d{k}", "study_id": study, "subject_id": subj,
                      "split": "test" if k % 4 == 0 else "train"})
        base = root / "files" / f"p{subj[:2]}" / f"p{subj}"
        _img(base / f"s{study}" / f"d{k}.jpg")
        (base / f"s{study}.txt").write_text("FINDINGS: something.")
    pd.DataFrame(chex).to_csv(root / "mimic-cxr-2.0.0-chexpert.csv.gz", index=False)
    pd.DataFrame(split).to_csv(root / "mimic-cxr-2.0.0-split.csv.gz", index=False)


def test_mimic_uncertain_policy_and_preset(tmp_path):
    root = tmp_path / "mimic_cxr"
    _mimic(root)
    zeros, ones = load_mimic_cxr(root), load_mimic_cxr(root, uncertain="ones")
    assert len(zeros) == 12 and len(zeros.split("test")) == 3
    assert "Edema" not in zeros[0].target and "Edema" in ones[0].target
    assert zeros[0].text == "FINDINGS: something."
    fd = get_setting("t4-mimic", data_root=tmp_path, n_clients=3, alpha=5.0)
    assert sum(len(c.train) + len(c.val) for c in fd.clients) == 9
    assert sum(len(c.test) for c in fd.clients) == 3
    with pytest.raises(DataError, match="mimic_cxr"):
        get_setting("t4-mimic", data_root=tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="data_root"):
        get_setting("t4-mimic")


def test_load_hf_with_local_parquet(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    buf = io.BytesIO()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(buf, format="PNG")
    pd.DataFrame({"image": [{"bytes": buf.getvalue(), "path": None}], "question": ["is it?"],
                  "answer": ["Yes"]}).to_parquet(tmp_path / "vqa.parquet")
    from datasets import Features, Value
    from datasets import Image as HFImage

    feats = Features({"image": HFImage(), "question": Value("string"), "answer": Value("string")})
    ds = load_hf("parquet", split="train", dataset="vqa_rad", data_files=str(tmp_path / "vqa.parquet"),
                 features=feats, cache_dir=str(tmp_path / "cache"))
    assert len(ds) == 1 and ds[0].target == "yes" and ds[0].meta["dataset"] == "vqa_rad"
    assert isinstance(ds[0].image, Image.Image)
