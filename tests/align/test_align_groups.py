"""Unit groups from key names, and the permutation symmetry they describe."""

from __future__ import annotations

import pytest
import torch
from align_helpers import (
    bottleneck_forward,
    bottleneck_state,
    compacter_forward,
    compacter_state,
    lora_forward,
    lora_state,
    random_perms,
)

from fedpia.align import Member, UnitGroup, permute_units, unit_groups


def test_bottleneck_groups_follow_naming_contract(gen):
    s = bottleneck_state(gen, layers=2, d=12, m=6)
    groups = unit_groups(s)
    p = "enc.layer.0.adapter"
    assert [g.name for g in groups] == [p, "enc.layer.1.adapter"]
    assert groups[0] == UnitGroup(p, 6, (Member(f"{p}.down.weight", 0, "in"),
                                         Member(f"{p}.down.bias", 0, "in"),
                                         Member(f"{p}.up.weight", 1, "out")))
    grouped = {k for g in groups for k in g.keys}
    assert "head.weight" not in grouped and f"{p}.up.bias" not in grouped


@pytest.mark.parametrize("adapter", ["default", None])
def test_lora_groups_with_and_without_adapter_segment(gen, adapter):
    s = lora_state(gen, layers=1, r=5, adapter=adapter)
    (g,) = unit_groups(s)
    seg = f".{adapter}" if adapter else ""
    assert g.name == f"enc.layer.0.attn.query{seg}" and g.width == 5
    assert g.members == (Member(f"enc.layer.0.attn.query.lora_A{seg}.weight", 0, "in"),
                         Member(f"enc.layer.0.attn.query.lora_B{seg}.weight", 1, "out"))


def test_compacter_groups_repeat_bias(gen):
    s = compacter_state(gen, layers=1, n=2, d=8, m=6)
    (g,) = unit_groups(s)
    p = "enc.layer.0.adapter"
    assert g.width == 3
    assert g.members == (Member(f"{p}.down.phm_w", 1, "in"), Member(f"{p}.down.bias", 0, "in", 2),
                         Member(f"{p}.up.phm_w", 2, "out"))
    assert f"{p}.down.phm_rule" not in g.keys


@pytest.mark.parametrize(("drop", "named"), [
    ("enc.layer.0.adapter.up.weight", "enc.layer.0.adapter.down.weight"),
    ("enc.layer.0.adapter.down.weight", "enc.layer.0.adapter.up.weight"),
])
def test_half_bottleneck_raises_naming_key(gen, drop, named):
    s = bottleneck_state(gen, layers=1)
    del s[drop]
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        unit_groups(s)


def test_half_lora_and_width_mismatch_raise(gen):
    s = lora_state(gen, layers=1)
    del s["enc.layer.0.attn.query.lora_A.default.weight"]
    with pytest.raises(ValueError, match=r"lora_B\.default\.weight"):
        unit_groups(s)
    s = bottleneck_state(gen, layers=1, m=6)
    s["enc.layer.0.adapter.up.weight"] = torch.zeros(12, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"up\.weight.*5 units"):
        unit_groups(s)
    s = compacter_state(gen, layers=1, n=2, m=6)
    s["enc.layer.0.adapter.down.bias"] = torch.zeros(5, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"down\.bias"):
        unit_groups(s)


def test_permuted_bottleneck_computes_same_function(gen):
    s = bottleneck_state(gen, layers=2)
    perms = random_perms(s, gen)
    ps = permute_units(s, perms)
    h = torch.randn(7, 12, generator=gen, dtype=torch.float64)
    for name in perms:
        assert not torch.equal(ps[f"{name}.down.weight"], s[f"{name}.down.weight"])
        torch.testing.assert_close(bottleneck_forward(ps, h, name), bottleneck_forward(s, h, name))


def test_permuted_lora_computes_same_function(gen):
    s = lora_state(gen, layers=2, d_in=10, d_out=9, r=5)
    ps = permute_units(s, random_perms(s, gen))
    x = torch.randn(4, 10, generator=gen, dtype=torch.float64)
    w0 = torch.randn(9, 10, generator=gen, dtype=torch.float64)
    for i in range(2):
        p = f"enc.layer.{i}.attn.query"
        assert not torch.equal(ps[f"{p}.lora_A.default.weight"], s[f"{p}.lora_A.default.weight"])
        torch.testing.assert_close(lora_forward(ps, x, w0, p), lora_forward(s, x, w0, p))


def test_permuted_compacter_computes_same_function(gen):
    s = compacter_state(gen, layers=2, n=2, d=8, m=6)
    ps = permute_units(s, random_perms(s, gen))
    h = torch.randn(5, 8, generator=gen, dtype=torch.float64)
    for i in range(2):
        p = f"enc.layer.{i}.adapter"
        assert not torch.equal(ps[f"{p}.down.bias"], s[f"{p}.down.bias"])
        torch.testing.assert_close(compacter_forward(ps, h, p), compacter_forward(s, h, p))


def test_permute_units_is_pure_and_shares_untouched_keys(gen):
    s = bottleneck_state(gen, layers=2)
    before = {k: v.clone() for k, v in s.items()}
    perm = torch.tensor([1, 0, 2, 3, 4, 5])
    ps = permute_units(s, {"enc.layer.0.adapter": perm})
    assert all(torch.equal(s[k], before[k]) for k in s)
    assert ps["head.weight"] is s["head.weight"]
    assert ps["enc.layer.1.adapter.down.weight"] is s["enc.layer.1.adapter.down.weight"]
    torch.testing.assert_close(ps["enc.layer.0.adapter.down.weight"][0],
                               s["enc.layer.0.adapter.down.weight"][1])
    torch.testing.assert_close(ps["enc.layer.0.adapter.up.weight"][:, 0],
                               s["enc.layer.0.adapter.up.weight"][:, 1])


@pytest.mark.parametrize(("perm", "match"), [
    (torch.tensor([0, 1, 2]), "length 3"),
    (torch.tensor([0, 0, 1, 2, 3, 4]), "not a permutation"),
    (torch.tensor([0.0, 1, 2, 3, 4, 5]), "integer"),
])
def test_permute_units_validates_perm(gen, perm, match):
    s = bottleneck_state(gen, layers=1)
    with pytest.raises(ValueError, match=match):
        permute_units(s, {"enc.layer.0.adapter": perm})


def test_permute_units_unknown_group(gen):
    with pytest.raises(ValueError, match="nope"):
        permute_units(bottleneck_state(gen, layers=1), {"nope": torch.arange(6)})
