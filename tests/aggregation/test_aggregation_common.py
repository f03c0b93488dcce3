"""weighted_average: closed forms and failure paths."""

from __future__ import annotations

import pytest
import torch

from fedpia.aggregation import normalize_weights, weighted_average


def _s(**kw):
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in kw.items()}


def test_weighted_average_hand_value():
    a = _s(w=[1.0, 2.0], b=[[0.0]])
    b = _s(w=[3.0, -2.0], b=[[4.0]])
    out = weighted_average([a, b], [1, 3])
    # 0.25 * a + 0.75 * b
    torch.testing.assert_close(out["w"], torch.tensor([2.5, -1.0], dtype=torch.float64))
    torch.testing.assert_close(out["b"], torch.tensor([[3.0]], dtype=torch.float64))


def test_weighted_average_one_state_is_identity_and_keeps_dtype():
    x = {"w": torch.randn(3, 4, generator=torch.Generator().manual_seed(0))}
    out = weighted_average([x], [7.0])
    assert out["w"].dtype == torch.float32
    assert torch.equal(out["w"], x["w"])
    assert out["w"] is not x["w"]


def test_weighted_average_uniform_when_none_and_zero_weight_ignored():
    a, b = _s(w=[0.0]), _s(w=[2.0])
    assert weighted_average([a, b], None)["w"].item() == 1.0
    assert weighted_average([a, b], [0.0, 5.0])["w"].item() == 2.0


def test_weighted_average_does_not_mutate_inputs():
    a, b = _s(w=[1.0, 2.0]), _s(w=[3.0, 4.0])
    weighted_average([a, b], [1, 1])
    assert a["w"].tolist() == [1.0, 2.0] and b["w"].tolist() == [3.0, 4.0]


@pytest.mark.parametrize(
    ("states", "weights", "match"),
    [
        ([], [], "at least one"),
        ([_s(w=[1.0]), _s(v=[1.0])], [1, 1], "'w'"),
        ([_s(w=[1.0]), {"w": torch.ones(1), "v": torch.ones(1)}], [1, 1], "extra key 'v'"),
        ([_s(w=[1.0]), _s(w=[1.0, 2.0])], [1, 1], "key 'w': shape"),
        ([_s(w=[1.0]), {"w": torch.ones(1)}], [1, 1], "key 'w': dtype"),
        ([_s(w=[1.0]), _s(w=[float("nan")])], [1, 1], "'w'.*NaN"),
        ([_s(w=[1.0]), _s(w=[float("inf")])], [1, 1], "'w'.*Inf"),
        ([_s(w=[1.0]), _s(w=[1.0])], [1, -1], ">= 0"),
        ([_s(w=[1.0]), _s(w=[1.0])], [0, 0], "positive sum"),
        ([_s(w=[1.0]), _s(w=[1.0])], [1], "2 states"),
        ([_s(w=[1.0]), _s(w=[1.0])], [1, float("nan")], "finite"),
        ([{"n": torch.tensor([1])}], [1], "key 'n'.*non-floating"),
    ],
)
def test_weighted_average_failures(states, weights, match):
    with pytest.raises(ValueError, match=match):
        weighted_average(states, weights)


def test_normalize_weights_sums_to_one():
    p = normalize_weights([2, 6], 2)
    assert p.tolist() == [0.25, 0.75]
