"""LoRA aggregators: pairing by peft names, FedIT, FFA-LoRA, FedSA-LoRA, FLoRA, FedEx-LoRA."""

from __future__ import annotations

import pytest
import torch

from fedpia.aggregation import (
    fedex_lora_aggregate,
    fedit_aggregate,
    fedsa_lora_aggregate,
    fedsa_lora_split,
    ffa_lora_aggregate,
    ffa_lora_trainable,
    flora_stack,
    lora_pairs,
    merge_lora_into_base,
    weighted_average,
)

PFX = "base_model.model.enc.layer.0.attn.q"
A_KEY, B_KEY = f"{PFX}.lora_A.default.weight", f"{PFX}.lora_B.default.weight"


def _t(v):
    return torch.tensor(v, dtype=torch.float64)


def _lora(a, b, head=None):
    s = {A_KEY: _t(a), B_KEY: _t(b)}
    if head is not None:
        s["head.weight"] = _t(head)
    return s


def _random_states(n, ranks, *, d_in=3, d_out=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [
        {
            A_KEY: torch.randn(r, d_in, generator=gen, dtype=torch.float64),
            B_KEY: torch.randn(d_out, r, generator=gen, dtype=torch.float64),
            "enc.v.lora_A.weight": torch.randn(r, d_in, generator=gen, dtype=torch.float64),
            "enc.v.lora_B.weight": torch.randn(d_out, r, generator=gen, dtype=torch.float64),
        }
        for r in ranks[:n]
    ]


# rank-1 two-client example: p = (0.25, 0.75)
S1 = _lora([[1.0, 0.0]], [[1.0], [2.0]], head=[1.0])
S2 = _lora([[0.0, 1.0]], [[3.0], [4.0]], head=[5.0])
MEAN_PRODUCT = _t([[0.25, 2.25], [0.5, 3.0]])  # 0.25*B1A1 + 0.75*B2A2


def test_lora_pairs_with_and_without_adapter_name():
    state = _random_states(1, [2])[0] | {"head.weight": torch.zeros(1)}
    pairs = lora_pairs(state)
    assert pairs == {
        f"{PFX}.default": (A_KEY, B_KEY),
        "enc.v": ("enc.v.lora_A.weight", "enc.v.lora_B.weight"),
    }


def test_lora_pairs_failures_name_the_key():
    with pytest.raises(ValueError, match=f"{A_KEY}.*no matching lora_B"):
        lora_pairs({A_KEY: torch.zeros(2, 3)})
    with pytest.raises(ValueError, match="enc.v.lora_B.weight.*no matching lora_A"):
        lora_pairs({"enc.v.lora_B.weight": torch.zeros(3, 2)})
    with pytest.raises(ValueError, match="rank mismatch"):
        lora_pairs({A_KEY: torch.zeros(2, 3), B_KEY: torch.zeros(4, 3)})
    with pytest.raises(ValueError, match="2-D"):
        lora_pairs({A_KEY: torch.zeros(2), B_KEY: torch.zeros(4, 2)})


def test_fedit_is_fedavg_of_factors_and_differs_from_mean_product():
    out = fedit_aggregate([S1, S2], [1, 3])
    torch.testing.assert_close(out[A_KEY], _t([[0.25, 0.75]]))
    torch.testing.assert_close(out[B_KEY], _t([[2.5], [3.5]]))
    torch.testing.assert_close(out["head.weight"], _t([4.0]))
    assert not torch.allclose(out[B_KEY] @ out[A_KEY], MEAN_PRODUCT)


def test_ffa_lora_keeps_a_and_averages_b():
    glob = _lora([[0.3, -0.7]], [[0.0], [0.0]], head=[0.0])
    c1 = _lora([[0.3, -0.7]], [[1.0], [2.0]], head=[1.0])
    c2 = _lora([[9.0, 9.0]], [[3.0], [4.0]], head=[5.0])  # a client that (wrongly) trained A
    out = ffa_lora_aggregate(glob, [c1, c2], [1, 3])
    assert torch.equal(out[A_KEY], glob[A_KEY])
    torch.testing.assert_close(out[B_KEY], _t([[2.5], [3.5]]))
    torch.testing.assert_close(out["head.weight"], _t([4.0]))
    # with a shared frozen A the averaged product is exact
    avg_prod = 0.25 * c1[B_KEY] @ glob[A_KEY] + 0.75 * c2[B_KEY] @ glob[A_KEY]
    torch.testing.assert_close(out[B_KEY] @ out[A_KEY], avg_prod)
    assert ffa_lora_trainable(B_KEY) and ffa_lora_trainable("head.weight")
    assert not ffa_lora_trainable(A_KEY) and not ffa_lora_trainable("x.lora_A.weight")


def test_fedsa_split_and_aggregate():
    shared, local = fedsa_lora_split(S1)
    assert set(shared) == {A_KEY} and set(local) == {B_KEY, "head.weight"}
    shared2, local2 = fedsa_lora_split(S1, share_non_lora=True)
    assert set(shared2) == {A_KEY, "head.weight"} and set(local2) == {B_KEY}
    out = fedsa_lora_aggregate([S1, S2], [1, 3])
    assert set(out) == {A_KEY}
    torch.testing.assert_close(out[A_KEY], _t([[0.25, 0.75]]))


def test_flora_stack_hand_value_and_shapes():
    a_st, b_st = flora_stack([S1, S2], [1, 3])
    g = f"{PFX}.default"
    assert a_st[g].shape == (2, 2) and b_st[g].shape == (2, 2)
    torch.testing.assert_close(a_st[g], _t([[1.0, 0.0], [0.0, 1.0]]))
    torch.testing.assert_close(b_st[g], _t([[0.25, 2.25], [0.5, 3.0]]))
    torch.testing.assert_close(b_st[g] @ a_st[g], MEAN_PRODUCT)


def test_flora_stack_product_identity_heterogeneous_ranks_and_scalings():
    states = _random_states(3, [1, 2, 4])
    w, s = [2.0, 1.0, 5.0], [16.0, 8.0, 4.0]  # e.g. alpha/r with alpha=16
    a_st, b_st = flora_stack(states, w, scalings=s)
    p = torch.tensor(w, dtype=torch.float64) / sum(w)
    for group, (ka, kb) in lora_pairs(states[0]).items():
        assert a_st[group].shape == (1 + 2 + 4, 3) and b_st[group].shape == (2, 7)
        expected = sum(p[k] * s[k] * states[k][kb] @ states[k][ka] for k in range(3))
        torch.testing.assert_close(b_st[group] @ a_st[group], expected)


def test_flora_stack_failures():
    states = _random_states(2, [1, 2])
    with pytest.raises(ValueError, match="scalings"):
        flora_stack(states, [1, 1], scalings=[1.0])
    bad = dict(states[1])
    bad[A_KEY] = torch.zeros(2, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match="d_in/d_out"):
        flora_stack([states[0], bad], [1, 1])
    missing = {k: v for k, v in states[1].items() if not k.startswith("enc.v")}
    with pytest.raises(ValueError, match="groups differ.*enc.v"):
        flora_stack([states[0], missing], [1, 1])


def test_merge_lora_into_base_by_hand():
    base = _t([[1.0, 0.0], [0.0, 1.0]])
    out = merge_lora_into_base(base, _t([[1.0], [2.0]]), _t([[3.0, 4.0]]), scaling=0.5)
    torch.testing.assert_close(out, _t([[2.5, 2.0], [3.0, 5.0]]))
    assert base.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    with pytest.raises(ValueError, match="shape mismatch"):
        merge_lora_into_base(base, _t([[1.0], [2.0]]), _t([[3.0, 4.0, 5.0]]))


def test_fedex_residual_hand_value():
    avg, res = fedex_lora_aggregate([S1, S2], [1, 3])
    g = f"{PFX}.default"
    torch.testing.assert_close(res[g], _t([[-0.375, 0.375], [-0.375, 0.375]]))
    torch.testing.assert_close(avg[B_KEY] @ avg[A_KEY] + res[g], MEAN_PRODUCT)
    torch.testing.assert_close(avg["head.weight"], _t([4.0]))


def test_fedex_exact_identity_random_and_zero_residual_for_equal_clients():
    states = _random_states(3, [2, 2, 2], seed=3)
    w = [1.0, 2.0, 7.0]
    avg, res = fedex_lora_aggregate(states, w)
    assert avg.keys() == weighted_average(states, w).keys()
    p = torch.tensor(w, dtype=torch.float64) / sum(w)
    for group, (ka, kb) in lora_pairs(states[0]).items():
        assert res[group].shape == (2, 3)
        expected = sum(p[k] * states[k][kb] @ states[k][ka] for k in range(3))
        torch.testing.assert_close(avg[kb] @ avg[ka] + res[group], expected)
    _, res_eq = fedex_lora_aggregate([states[0]] * 3, w)
    for r in res_eq.values():
        torch.testing.assert_close(r, torch.zeros_like(r), atol=1e-12, rtol=0)
