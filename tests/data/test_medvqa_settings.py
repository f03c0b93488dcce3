"""t1-medvqa / t2-modality8 on shared/data: clients by dataset, modality and organ group, official
splits kept, caps, describe() and the CLI summary, preset registration."""

from __future__ import annotations

from collections import Counter

import pytest
from typer.testing import CliRunner

from fedpia.cli import app
from fedpia.data import DataError, describe, get_setting
from fedpia.experiments import PRESETS, get_preset

T1_CLIENTS = ("slake-ct", "slake-mri", "slake-xray", "vqarad-head", "vqarad-chest-abd")


@pytest.fixture(scope="module")
def t1(shared_data):
    return get_setting("t1-medvqa", data_root=shared_data, seed=0)


def _images(samples) -> set[str]:
    return {s.meta["image_name"] for s in samples}


def test_t1_five_clients_by_dataset_modality_and_organ(t1):
    assert tuple(c.name for c in t1.clients) == T1_CLIENTS and t1.metric == "vqa_accuracy"
    assert [c.meta["dataset"] for c in t1.clients] == ["slake"] * 3 + ["vqa_rad"] * 2
    for c, mod in zip(t1.clients[:3], ("ct", "mri", "x-ray"), strict=True):
        assert {s.meta["modality"] for part in (c.train, c.val, c.test) for s in part} == {mod}
    head, body = t1.clients[3:]
    assert {s.meta["organ"] for s in head.train + head.test} == {"HEAD"}
    assert {s.meta["organ"] for s in body.train + body.test} == {"CHEST", "ABD"}
    uids = [s.meta["uid"] for c in t1.clients for part in (c.train, c.val, c.test) for s in part]
    assert len(uids) == len(set(uids))  # no sample in two clients or two splits


def test_t1_keeps_official_splits_uncapped(t1):
    slake = t1.clients[:3]
    # SLAKE: the official English train / validate / test split, cut by modality (one empty answer dropped)
    assert [c.sizes() for c in slake] == [{"train": 2366, "val": 482, "test": 472},
                                          {"train": 1129, "val": 233, "test": 228},
                                          {"train": 1423, "val": 338, "test": 361}]
    assert [Counter(s.meta["answer_type"] for s in c.test) for c in slake] == [
        {"open": 258, "closed": 214}, {"open": 140, "closed": 88}, {"open": 247, "closed": 114}]
    assert [len(c.label_space()) for c in slake] == [129, 58, 81]
    for c in slake:  # SLAKE splits are image-disjoint, so are the clients' splits
        assert not (_images(c.train) & _images(c.test) or _images(c.train) & _images(c.val))
    vqarad = t1.clients[3:]
    assert sum(len(c.test) for c in vqarad) == 451  # the official VQA-RAD test split
    assert sum(len(c.train) + len(c.val) for c in vqarad) == 1797
    assert [len(c.test) for c in vqarad] == [119, 332]
    for c in vqarad:  # val carved from train by whole images
        assert not _images(c.train) & _images(c.val) and 0.05 < len(c.val) / (len(c.train) + len(c.val)) < 0.15


def test_t1_caps_are_deterministic_per_seed(shared_data, t1):
    a = get_setting("t1-medvqa", data_root=shared_data, seed=0, max_train=100, max_val=20, max_test=50)
    assert [c.sizes() for c in a.clients] == [{"train": 100, "val": 20, "test": 50}] * 5
    b = get_setting("t1-medvqa", data_root=shared_data, seed=0, max_train=100, max_val=20, max_test=50)
    c = get_setting("t1-medvqa", data_root=shared_data, seed=1, max_train=100, max_val=20, max_test=50)
    uids = [[s.meta["uid"] for s in cl.train] for cl in a.clients]
    assert uids == [[s.meta["uid"] for s in cl.train] for cl in b.clients]
    assert uids[0] != [s.meta["uid"] for s in c.clients[0].train]
    full = {s.meta["uid"] for s in t1.clients[0].train}
    assert set(uids[0]) <= full


def test_t1_knobs_and_errors(shared_data, tmp_path):
    two = get_setting("t1-medvqa", data_root=shared_data, slake_modalities=("mri",),
                      vqarad_groups=("HEAD+CHEST", "ABD"))
    assert [c.name for c in two.clients] == ["slake-mri", "vqarad-head-chest", "vqarad-abd"]
    with pytest.raises(ValueError, match=r"SLAKE modalities \['pet'\]"):
        get_setting("t1-medvqa", data_root=shared_data, slake_modalities=("pet",))
    with pytest.raises(ValueError, match="organ group 'LEG'"):
        get_setting("t1-medvqa", data_root=shared_data, vqarad_groups=("LEG",))
    with pytest.raises(DataError, match="slake/ not found"):
        get_setting("t1-medvqa", data_root=tmp_path)
    with pytest.raises(ValueError, match="needs data_root"):
        get_setting("t1-medvqa")
    with pytest.raises(ValueError, match="no knob"):
        get_setting("t1-medvqa", data_root=shared_data, split_by="organ")


def test_t2_modality8_eight_capped_clients(shared_data):
    fd = get_setting("t2-modality8", data_root=shared_data, seed=0)
    assert [c.name for c in fd.clients] == ["breastmnist-vqa", "pneumoniamnist-vqa", "retinamnist-vqa",
                                            *T1_CLIENTS]
    assert [c.meta.get("modality") for c in fd.clients[:6]] == ["ultrasound", "x-ray", "fundus", "ct", "mri", "x-ray"]
    assert all(len(c.train) == 500 and len(c.val) <= 100 and len(c.test) <= 200 for c in fd.clients)
    assert [len(c.test) for c in fd.clients] == [156, 200, 200, 200, 200, 200, 119, 200]


def test_describe_reports_answer_spaces_and_open_closed(t1):
    text = describe(t1)
    lines = text.splitlines()
    ct = lines.index(next(ln for ln in lines if ln.lstrip().startswith("slake-ct")))
    assert "labels=129" in lines[ct] and "train=2366" in lines[ct]
    assert lines[ct + 1].split() == ["open/closed", "train=1278/1088", "val=253/229", "test=258/214",
                                     "test_in_space=99.8%"]
    assert lines[-1].split() == ["total", "train=6531", "val=1237", "test=1512"]
    assert "paper T1: 5 datasets" in text


def test_presets_and_cli_summary(shared_data):
    ref = PRESETS["t1-vqarad"].config
    for name, setting in (("t1-medvqa", "t1-medvqa"), ("t2-modality8", "t2-modality8")):
        p = PRESETS[name]
        assert p.needs_data and p.config["setting"] == setting
        assert {k: v for k, v in p.config.items() if k not in ("name", "setting")} == \
            {k: v for k, v in ref.items() if k not in ("name", "setting")}
        assert get_preset(name).setting == setting
    res = CliRunner().invoke(app, ["data", "summary", "t1-medvqa", "--data-root", str(shared_data)])
    assert res.exit_code == 0, res.output
    assert all(n in res.output for n in T1_CLIENTS) and "open/closed" in res.output
