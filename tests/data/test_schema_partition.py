"""Schema (Sample, LabelSpace, load_image) and partitioner behaviour."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fedpia.data import (
    ClientSplit,
    DataError,
    FederatedData,
    LabelSpace,
    Sample,
    dirichlet_partition,
    iid_partition,
    load_image,
    natural_partition,
    normalize_answer,
    partition_report,
    task_partition,
    train_val_split,
)


def _s(target, task="vqa", **meta):
    return Sample(image=np.zeros((4, 4), np.uint8), text="q", task=task, target=target, meta=meta)


def test_normalize_answer():
    assert normalize_answer("  Yes.  ") == "yes"
    assert normalize_answer("Right   Upper\tLobe.") == "right upper lobe"
    assert normalize_answer(12) == "12"


def test_sample_validates_and_fills_meta():
    s = _s("yes", dataset="x")
    assert s.meta["dataset"] == "x" and s.meta["organ"] is None
    with pytest.raises(ValueError, match="task"):
        _s("yes", task="detection")
    with pytest.raises(ValueError, match="multilabel"):
        _s("a", task="multilabel")
    assert _s(["b", "a"], task="multilabel").target == ("b", "a")


def test_labelspace_vqa_unseen_is_minus_one():
    space = LabelSpace.from_samples([_s("No"), _s("yes"), _s("left")])
    assert space.labels == ("left", "no", "yes")
    assert space.encode("Yes.") == 2 and space.encode("never seen") == -1
    assert space.decode(0) == "left" and space.decode(-1) is None


def test_labelspace_multilabel_multi_hot_ignores_unseen():
    space = LabelSpace.from_samples([_s(("b", "a"), task="multilabel"), _s(("c",), task="multilabel")])
    v = space.encode(("a", "c", "zzz"))
    np.testing.assert_array_equal(v, np.array([1, 0, 1], np.float32))
    assert v.dtype == np.float32
    assert space.decode(np.array([0.9, 0.2, 0.7])) == ("a", "c")


def test_labelspace_rejects_mixed_tasks():
    with pytest.raises(ValueError, match="one task"):
        LabelSpace.from_samples([_s("a"), _s("b", task="multiclass")])


def test_load_image_array_path_and_errors(tmp_path):
    arr = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    np.testing.assert_array_equal(np.asarray(load_image(Sample(arr, "q", "vqa", "a"))), arr)
    p = tmp_path / "x.png"
    Image.fromarray(arr).save(p)
    np.testing.assert_array_equal(np.asarray(load_image(str(p))), arr)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(DataError, match="bad.jpg"):
        load_image(bad)
    with pytest.raises(DataError, match="missing.png"):
        load_image(tmp_path / "missing.png")


def test_client_split_and_federated_data_validation():
    c = ClientSplit("a", "vqa", [_s("y")], [], [_s("n")])
    assert c.sizes() == {"train": 1, "val": 0, "test": 1} and c.metric == "vqa_accuracy"
    with pytest.raises(ValueError, match="task"):
        ClientSplit("a", "vqa", [_s(("x",), task="multilabel")], [], [])
    with pytest.raises(ValueError, match="empty train"):
        ClientSplit("a", "vqa", [], [], [])
    with pytest.raises(ValueError, match="duplicate"):
        FederatedData("s", (c, c), "vqa_accuracy")
    with pytest.raises(ValueError, match="metric"):
        FederatedData("s", (c,), "bleu")


LABELS = np.repeat(np.arange(5), [200, 100, 50, 30, 20]).tolist()


def test_dirichlet_covers_every_index_once_and_is_reproducible():
    parts = dirichlet_partition(LABELS, 6, alpha=0.5, rng=np.random.default_rng(0), min_size=5)
    allidx = np.concatenate(parts)
    np.testing.assert_array_equal(np.sort(allidx), np.arange(len(LABELS)))
    assert min(len(p) for p in parts) >= 5
    again = dirichlet_partition(LABELS, 6, alpha=0.5, rng=np.random.default_rng(0), min_size=5)
    other = dirichlet_partition(LABELS, 6, alpha=0.5, rng=np.random.default_rng(1), min_size=5)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(parts, other, strict=True))


def test_dirichlet_small_alpha_is_skewed_large_alpha_near_iid():
    def mean_top_share(alpha):
        parts = dirichlet_partition(LABELS, 4, alpha=alpha, rng=np.random.default_rng(3))
        rep = partition_report(LABELS, parts, top_k=1)
        return np.mean([r["top_labels"][0][1] / r["size"] for r in rep])
    assert mean_top_share(0.1) > mean_top_share(1000.0) + 0.15
    assert abs(mean_top_share(1000.0) - 0.5) < 0.1  # class 0 is half of the data


def test_dirichlet_impossible_raises_bounded():
    with pytest.raises(ValueError, match="cannot give"):
        dirichlet_partition([0] * 5, 3, rng=np.random.default_rng(0), min_size=2)
    with pytest.raises(ValueError, match="retries"):
        dirichlet_partition([0] * 30 + [1] * 30, 6, alpha=0.01, rng=np.random.default_rng(0),
                            min_size=10, max_retries=3)


def test_iid_and_natural_and_task_partition():
    parts = iid_partition(10, 3, rng=np.random.default_rng(0))
    assert sorted(len(p) for p in parts) == [3, 3, 4]
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(10))
    keys = ["Spain", "Italy", "USA", "Malta", "Spain"]
    nat = natural_partition(keys, groups={"Spain": ["Spain"], "Italy": ["Italy"]}, rest="rest")
    assert {k: v.tolist() for k, v in nat.items()} == {"Spain": [0, 4], "Italy": [1], "rest": [2, 3]}
    assert list(natural_partition(keys)) == ["Italy", "Malta", "Spain", "USA"]
    assert task_partition(["vqa", "multilabel", "vqa"])["vqa"].tolist() == [0, 2]


def test_train_val_split_groups_never_straddle():
    groups = [i // 3 for i in range(30)]
    tr, va = train_val_split(30, val_fraction=0.2, rng=np.random.default_rng(0), groups=groups)
    assert len(tr) + len(va) == 30 and 6 <= len(va) <= 8
    assert not {groups[i] for i in tr} & {groups[i] for i in va}
    with pytest.raises(ValueError, match="val_fraction"):
        train_val_split(3, val_fraction=1.0, rng=np.random.default_rng(0))
