"""bound_updates, coordinate_median, trimmed_mean: closed forms and failure paths."""

from __future__ import annotations

import math

import pytest
import torch

from fedpia.aggregation import (
    AggregationError,
    bound_updates,
    coordinate_median,
    lower_median,
    trimmed_mean,
    update_norms,
)

G = {"a": torch.zeros(2), "b": torch.zeros(1)}


def _s(a0, a1, b):
    return {"a": torch.tensor([a0, a1]), "b": torch.tensor([b])}


def test_update_norms_and_lower_median():
    states = [_s(3.0, 4.0, 0.0), _s(0.0, 0.0, 2.0), _s(1.0, 0.0, 0.0)]
    assert update_norms(states, G) == [5.0, 2.0, 1.0]
    assert lower_median([5.0, 2.0, 1.0]) == 2.0
    assert lower_median([5.0, 1.0]) == 1.0  # K = 2: the smaller one, not the midpoint
    with pytest.raises(ValueError, match="align unequal widths first"):
        update_norms([{"a": torch.zeros(3), "b": torch.zeros(1)}], G)


def test_clip_keeps_direction_and_bounds_length():
    states = [_s(3.0, 4.0, 0.0), _s(0.0, 0.0, 2.0), _s(0.0, 1.0, 0.0), _s(300.0, 400.0, 0.0)]
    out = bound_updates(states, G, factor=2.0, mode="clip")
    assert out.bound == 2.0 * 2.0  # lower median of [5, 2, 1, 500] = 2
    assert set(out.scales) == {0, 3} and out.scales[3] == pytest.approx(4.0 / 500.0)
    assert torch.allclose(out.states[3]["a"], torch.tensor([2.4, 3.2]))  # 4 · (0.6, 0.8)
    assert out.states[1] is states[1] and out.states[2] is states[2]  # untouched objects
    assert update_norms(out.states, G)[3] == pytest.approx(4.0)


def test_reject_and_off_modes_and_degenerate_cases():
    states = [_s(1.0, 0.0, 0.0), _s(0.0, 1.0, 0.0), _s(100.0, 0.0, 0.0)]
    rej = bound_updates(states, G, factor=3.0, mode="reject")
    assert list(rej.rejected) == [2] and "update norm 100 > bound 3" in rej.rejected[2]
    off = bound_updates(states, G, factor=3.0, mode="off")
    assert off.bound is None and off.scales == {} and off.norms == [1.0, 1.0, 100.0]
    zero = bound_updates([G, G, _s(1.0, 0.0, 0.0)], G, factor=2.0)  # majority sent G back
    assert zero.bound is None and zero.scales == {}
    assert bound_updates([], G, factor=2.0).states == []
    with pytest.raises(ValueError, match="mode="):
        bound_updates(states, G, factor=2.0, mode="soft")
    with pytest.raises(ValueError, match="factor must be"):
        bound_updates(states, G, factor=0.5)


def test_fedavg_move_is_bounded_by_weight_times_bound():
    """Whatever one client sends, it moves a FedAvg average by at most p_k · b."""
    honest = [_s(1.0, 0.0, 0.0), _s(0.0, 1.0, 0.0), _s(1.0, 1.0, 0.0)]
    for attack in (1e3, -1e6, 1e9):
        states = [*honest, _s(attack, attack, attack)]
        out = bound_updates(states, G, factor=2.0)
        contribution = 0.25 * math.sqrt(sum(float(out.states[3][k].norm() ** 2) for k in G))
        assert contribution <= 0.25 * out.bound + 1e-9


def test_coordinate_median_and_trimmed_mean_closed_forms():
    states = [_s(1.0, 10.0, 0.0), _s(2.0, -5.0, 1.0), _s(3.0, 1e9, 2.0), _s(-1e9, 0.0, 3.0)]
    med = coordinate_median(states)
    assert torch.equal(med["a"], torch.tensor([1.5, 5.0])) and torch.equal(med["b"], torch.tensor([1.5]))
    odd = coordinate_median(states[:3])
    assert torch.equal(odd["a"], torch.tensor([2.0, 10.0]))
    tm = trimmed_mean(states, beta=0.25)  # drop 1 smallest + 1 largest of 4
    assert torch.equal(tm["a"], torch.tensor([1.5, 5.0])) and torch.equal(tm["b"], torch.tensor([1.5]))
    plain = trimmed_mean(states[:2], beta=0.0)
    assert torch.equal(plain["a"], torch.tensor([1.5, 2.5]))
    with pytest.raises(ValueError, match="beta"):
        trimmed_mean(states, beta=0.5)
    with pytest.raises(AggregationError):
        coordinate_median([])
