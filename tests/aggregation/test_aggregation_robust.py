"""Screening: every corruption of an upload (count, tensors, extras) is caught with a reason
(fuzz-style for tensors), sparse / meta tensors included, without crashing."""

from __future__ import annotations

import random

import pytest
import torch

from fedpia.aggregation import (
    AggregationError,
    check_count,
    filter_updates,
    screen_upload,
    validate_extra,
    validate_update,
)

REF = {"adapter.down.weight": torch.zeros(4, 3), "head.bias": torch.zeros(2)}


def _clean(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=gen) for k, v in REF.items()}


def _nan(u, key):
    u[key] = u[key].clone()
    u[key].view(-1)[0] = float("nan")


def _inf(u, key):
    u[key] = u[key].clone()
    u[key].view(-1)[-1] = float("-inf")


CORRUPTIONS = {
    "nan": (_nan, "NaN/Inf"),
    "inf": (_inf, "NaN/Inf"),
    "missing": (lambda u, key: u.pop(key), "missing key"),
    "extra": (lambda u, key: u.__setitem__(key + ".extra", torch.zeros(1)), "unexpected key"),
    "shape": (lambda u, key: u.__setitem__(key, torch.zeros(5)), "shape"),
    "dtype": (lambda u, key: u.__setitem__(key, u[key].double()), "dtype"),
    "half": (lambda u, key: u.__setitem__(key, u[key].half()), "dtype"),
    "not_tensor": (lambda u, key: u.__setitem__(key, [0.0] * 3), "not a tensor"),
}


def test_clean_update_is_valid():
    assert validate_update(_clean(), REF) is None


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
@pytest.mark.parametrize("key", sorted(REF))
def test_each_corruption_is_rejected_naming_the_key(name, key):
    update = _clean()
    corrupt, expected = CORRUPTIONS[name]
    corrupt(update, key)
    reason = validate_update(update, REF)
    assert reason is not None and expected in reason and key in reason


def test_non_dict_update_is_rejected():
    assert "expected a dict" in validate_update([1, 2], REF)


def test_fuzz_filter_updates_keeps_exactly_the_clean_ones():
    rng = random.Random(1234)
    names = sorted(CORRUPTIONS)
    for trial in range(40):
        n = rng.randint(1, 8)
        updates, bad = [], set()
        for k in range(n):
            u = _clean(seed=trial * 10 + k)
            if rng.random() < 0.4:
                for key in rng.sample(sorted(REF), rng.randint(1, 2)):  # distinct keys
                    CORRUPTIONS[rng.choice(names)][0](u, key)
                bad.add(k)
            updates.append(u)
        if len(bad) == n:
            with pytest.raises(AggregationError):
                filter_updates(updates, REF, min_clients=1)
            continue
        valid, rejected = filter_updates(updates, REF, min_clients=1)
        assert valid == sorted(set(range(n)) - bad)
        assert set(rejected) == bad and all(isinstance(r, str) and r for r in rejected.values())


def test_filter_updates_min_clients_error_lists_reasons():
    bad = _clean()
    _nan(bad, "head.bias")
    with pytest.raises(AggregationError, match=r"only 1 valid.*min_clients=2.*1: key 'head.bias'"):
        filter_updates([_clean(), bad], REF, min_clients=2)
    with pytest.raises(AggregationError, match="no updates received"):
        filter_updates([], REF, min_clients=1)
    with pytest.raises(ValueError, match="min_clients"):
        filter_updates([_clean()], REF, min_clients=0)


def test_filter_updates_does_not_modify_updates():
    u = _clean()
    before = {k: v.clone() for k, v in u.items()}
    valid, rejected = filter_updates([u], REF, min_clients=1)
    assert valid == [0] and rejected == {}
    assert all(torch.equal(u[k], before[k]) for k in before)


# ------------------------------------------------------------------ whole uploads
@pytest.mark.parametrize(("count", "ok"), [
    (24, True), (24.0, True), (1, True), (10_000_000, True), (0, False), (-5, False),
    (2.5, False), (float("nan"), False), (float("inf"), False), (None, False), (True, False),
    ("24", False), (10_000_001, False), (1e15, False),
])
def test_check_count(count, ok):
    assert (check_count(count, max_examples=10_000_000) is None) == ok


def test_sparse_meta_and_magnitude_are_caught_before_arithmetic():
    sparse = {"adapter.down.weight": torch.zeros(4, 3).to_sparse(), "head.bias": torch.zeros(2)}
    assert "not a dense tensor" in validate_update(sparse, REF)
    meta = {"adapter.down.weight": torch.empty(4, 3, device="meta"), "head.bias": torch.zeros(2)}
    assert "meta tensor" in validate_update(meta, REF)
    big = {"adapter.down.weight": torch.full((4, 3), -1e30), "head.bias": torch.zeros(2)}
    assert validate_update(big, REF) is None  # no magnitude bound unless asked
    assert "max |x| = 1e+30 > robust.max_abs=10000" in validate_update(big, REF, max_abs=1e4)


def test_screen_upload_checks_count_state_and_extras():
    assert screen_upload(_clean(), 5, {}, REF, max_examples=10, max_abs=1e4) is None
    assert "exceeds the cap" in screen_upload(_clean(), 11, {}, REF, max_examples=10)
    bad_extra = {"delta_c": {"w": torch.tensor([1e5])}}
    assert "extra key 'delta_c/w'" in screen_upload(_clean(), 5, bad_extra, REF, max_abs=1e4)
    assert "expected a dict of states" in validate_extra([1])
    assert "expected a dict of tensors" in validate_extra({"x": 3})
