"""load_hf on datasets built in code: Dataset / DatasetDict objects, saved folders, three tasks."""

import datasets  # the `hf` extra (installed by `make`)
import numpy as np
import pytest
from PIL import Image

from fedpia.data import DataError, LabelSpace, load_hf


def _img(v: int) -> Image.Image:
    return Image.fromarray(np.full((4, 4, 3), v, np.uint8))


def _vqa() -> "datasets.Dataset":
    feats = datasets.Features({"image": datasets.Image(), "question": datasets.Value("string"),
                               "answer": datasets.Value("string"), "kind": datasets.Value("string")})
    return datasets.Dataset.from_dict(
        {"image": [_img(0), _img(9), _img(200)], "question": [" Is there a mass? ", "Where?", "Which organ?"],
         "answer": ["Yes.", "left  lung", "liver"], "kind": ["CLOSED ", "open", "open"]}, features=feats)


def test_vqa_dataset_object_normalises_answers_and_keeps_pixels():
    ss = load_hf(_vqa(), columns={"answer_type": "kind"}, dataset="toy")
    assert [s.target for s in ss] == ["yes", "left lung", "liver"]
    assert ss[0].text == "Is there a mass?" and ss[0].task == "vqa"
    assert [s.meta["answer_type"] for s in ss] == ["closed", "open", "open"]
    assert np.asarray(ss[1].image)[0, 0, 0] == 9
    assert ss[2].meta["uid"] == "toy/train/2" and ss[2].meta["split"] == "train"
    assert ss.report.n_loaded == 3


def test_dataset_dict_gives_every_split_and_one_split_on_request():
    dd = datasets.DatasetDict({"train": _vqa(), "validation": _vqa().select([0])})
    both = load_hf(dd)
    assert len(both.split("train")) == 3 and len(both.split("val")) == 1  # "validation" -> "val"
    only = load_hf(dd, split="validation")
    assert len(only) == 1 and only[0].meta["split"] == "val"
    assert {s.meta["split"] for s in load_hf(dd["train"], split="train[:2]")} == {"train"}
    with pytest.raises(DataError, match="no split 'test'"):
        load_hf(dd, split="test")


def test_multiclass_classlabel_indices_become_names_with_default_prompt():
    feats = datasets.Features({"img": datasets.Image(),
                               "y": datasets.ClassLabel(names=["normal", "pneumonia"])})
    ds = datasets.Dataset.from_dict({"img": [_img(1), _img(2), _img(3)], "y": [1, 0, 1]}, features=feats)
    ss = load_hf(ds, task="multiclass", columns={"image": "img", "target": "y"})
    assert [s.target for s in ss] == ["pneumonia", "normal", "pneumonia"]
    assert ss[0].text == "What does this image show?" and ss[0].task == "multiclass"
    assert LabelSpace.from_samples(ss).labels == ("normal", "pneumonia")
    assert load_hf(ds, task="multiclass", columns={"image": "img", "target": "y"},
                   prompt="chest x-ray")[0].text == "chest x-ray"


def test_multilabel_from_classlabel_lists_and_from_one_column_per_label():
    feats = datasets.Features({"image": datasets.Image(), "report": datasets.Value("string"),
                               "labels": datasets.Sequence(datasets.ClassLabel(names=["edema", "mass", "effusion"]))})
    ds = datasets.Dataset.from_dict({"image": [_img(1), _img(2)], "report": ["a", "b"],
                                     "labels": [[0, 2], []]}, features=feats)
    ss = load_hf(ds, task="multilabel", columns={"text": "report"})
    assert ss[0].target == ("edema", "effusion") and ss[1].target == () and ss[0].text == "a"
    wide = datasets.Dataset.from_dict({"image": [_img(1), _img(2)], "Edema": [1, 0], "Mass": [1, 1]},
                                      features=datasets.Features({"image": datasets.Image(),
                                                                  "Edema": datasets.Value("int8"),
                                                                  "Mass": datasets.Value("int8")}))
    ss = load_hf(wide, task="multilabel", columns={"target": ["Edema", "Mass"]})
    assert [s.target for s in ss] == [("Edema", "Mass"), ("Mass",)]


def test_saved_folder_and_split_column(tmp_path):
    ds = _vqa().add_column("part", ["train", "valid", "test"])
    ds.save_to_disk(str(tmp_path / "saved"))
    ss = load_hf(tmp_path / "saved", columns={"split": "part"})
    assert [s.meta["split"] for s in ss] == ["train", "val", "test"]
    assert ss[0].meta["dataset"] == "saved"
    datasets.DatasetDict({"test": _vqa()}).save_to_disk(str(tmp_path / "dd"))
    assert {s.meta["split"] for s in load_hf(str(tmp_path / "dd"))} == {"test"}


def test_missing_column_error_names_role_and_column():
    with pytest.raises(DataError, match=r"'label' \(target\).*has \['image', 'question', 'answer', 'kind'\]"):
        load_hf(_vqa(), task="multiclass")
    with pytest.raises(DataError, match=r"'nope' \(modality\)"):
        load_hf(_vqa(), columns={"modality": "nope"})
    with pytest.raises(ValueError, match="unknown column role"):
        load_hf(_vqa(), columns={"picture": "image"})
    with pytest.raises(ValueError, match="task must be one of"):
        load_hf(_vqa(), task="segmentation")
    with pytest.raises(TypeError, match="only apply to a path"):
        load_hf(_vqa(), data_files="x.parquet")


def test_path_images_and_bad_rows_raise_or_are_skipped_with_a_report(tmp_path):
    _img(5).save(tmp_path / "ok.png")
    ds = datasets.Dataset.from_dict({"image": [str(tmp_path / "ok.png"), "/no/such/file.png"],
                                     "question": ["q", "q"], "answer": ["a", "b"]})
    with pytest.raises(DataError, match=r"row 1.*holds no image"):
        load_hf(ds)
    ss = load_hf(ds, on_error="skip")
    assert len(ss) == 1 and ss.report.n_skipped == 1 and ss[0].image == str(tmp_path / "ok.png")
    feats = datasets.Features({"image": datasets.Image(), "y": datasets.Value("int64")})
    bad = datasets.Dataset.from_dict({"image": [_img(1)], "y": [None]}, features=feats)
    with pytest.raises(DataError, match="missing label"):
        load_hf(bad, task="multiclass", columns={"target": "y"})
