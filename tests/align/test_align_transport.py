"""align(): planted permutations are recovered; plans have the right marginals; OTFusion map."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from align_helpers import (
    FACTORIES,
    bottleneck_acts,
    bottleneck_forward,
    bottleneck_state,
    noisy,
    random_perms,
)
from scipy.optimize import linear_sum_assignment

from fedpia.align import align, assignment, permute_units, transport_plan, unit_groups


def _acts(state, gen_in):
    """Per-group unit activations ``[n_samples, width]`` for any of the three adapter kinds."""
    out = {}
    for g in unit_groups(state):
        first = state[g.members[0].key]
        if g.members[0].key.endswith("phm_w"):  # Compacter: (sample, block) pairs are samples
            n, w, f = first.shape
            h = torch.randn(16, f * n, generator=gen_in, dtype=first.dtype)
            blocks = torch.einsum("sap,awp->saw", h.view(16, n, f), first)
            out[g.name] = torch.relu(blocks).reshape(16 * n, w)
        else:  # bottleneck down / LoRA A: rows are units
            h = torch.randn(16, first.shape[1], generator=gen_in, dtype=first.dtype)
            out[g.name] = torch.tanh(h @ first.T)
    return out


@pytest.mark.parametrize("kind", sorted(FACTORIES))
@pytest.mark.parametrize("cost", ["weight", "activation"])
def test_planted_permutation_is_recovered(gen, kind, cost):
    base = FACTORIES[kind](gen, layers=3)
    perms = random_perms(base, gen)
    moved = noisy(permute_units(base, perms), gen, 1e-3)
    kw = {}
    if cost == "activation":
        kw = {"source_acts": _acts(moved, torch.Generator().manual_seed(7)),
              "reference_acts": _acts(base, torch.Generator().manual_seed(7))}
    # base expressed in moved's order: the planted permutation itself
    res = align(base, moved, cost=cost, source_acts=kw.get("reference_acts"),
                reference_acts=kw.get("source_acts"))
    for name, perm in perms.items():
        assert torch.equal(res.plans[name].perm, perm), name
    back = align(moved, base, cost=cost, **kw)  # and back: the inverse permutation
    for name, perm in perms.items():
        assert torch.equal(back.plans[name].perm, torch.argsort(perm)), name
    for key, v in base.items():
        torch.testing.assert_close(back.state[key], v, atol=1e-2, rtol=0)


@pytest.mark.parametrize("opts", [{"squared": True}, {"include_outgoing": True}])
def test_planted_permutation_cost_options(gen, opts):
    base = bottleneck_state(gen, layers=2)
    perms = random_perms(base, gen)
    res = align(base, permute_units(base, perms), **opts)
    assert all(torch.equal(res.plans[n].perm, p) for n, p in perms.items())


def test_exact_equal_widths_plan_is_scaled_permutation(gen):
    c = torch.rand(7, 7, generator=gen, dtype=torch.float64)
    gp = transport_plan(c, solver="exact")
    scaled = gp.plan * 7
    assert torch.equal(scaled, scaled.round()) and set(scaled.unique().tolist()) == {0.0, 1.0}
    torch.testing.assert_close(scaled.sum(0), torch.ones(7, dtype=torch.float64))
    torch.testing.assert_close(scaled.sum(1), torch.ones(7, dtype=torch.float64))
    rows, cols = linear_sum_assignment(c.numpy())
    assert gp.cost == pytest.approx(c.numpy()[rows, cols].sum() / 7)


@pytest.mark.parametrize(("n", "m", "solver"), [(5, 8, "exact"), (8, 5, "exact"),
                                                (5, 8, "sinkhorn"), (6, 6, "sinkhorn")])
def test_plan_marginals_are_uniform(gen, n, m, solver):
    gp = transport_plan(torch.rand(n, m, generator=gen, dtype=torch.float64) * 3, solver=solver)
    assert gp.perm is None and gp.plan.shape == (n, m) and (gp.plan >= 0).all()
    torch.testing.assert_close(gp.plan.sum(1), torch.full((n,), 1 / n, dtype=torch.float64))
    torch.testing.assert_close(gp.plan.sum(0), torch.full((m,), 1 / m, dtype=torch.float64))


def test_fast_assignment_matches_hungarian(gen):
    for trial in range(30):
        c = torch.rand(9, 9, generator=gen, dtype=torch.float64)
        if trial % 2:  # near-diagonal costs exercise the row-argmin fast path
            c = c + 5 * (1 - torch.eye(9, dtype=torch.float64))[torch.randperm(9, generator=gen)]
        perm = assignment(c)
        rows, cols = linear_sum_assignment(c.numpy())
        assert float(c[perm, torch.arange(9)].sum()) == pytest.approx(c.numpy()[rows, cols].sum())


def _split(source, gen, prefix, copies):
    """Reference of width ``copies * m``: every source unit duplicated, shuffled; outgoing/copies."""
    m = source[f"{prefix}.down.weight"].shape[0]
    idx = torch.arange(m).repeat(copies)[torch.randperm(m * copies, generator=gen)]
    ref = dict(source)
    ref[f"{prefix}.down.weight"] = source[f"{prefix}.down.weight"][idx]
    ref[f"{prefix}.down.bias"] = source[f"{prefix}.down.bias"][idx]
    ref[f"{prefix}.up.weight"] = source[f"{prefix}.up.weight"][:, idx] / copies
    return ref


def test_otfusion_map_split_and_merge_preserve_function(gen):
    p = "enc.layer.0.adapter"
    small = bottleneck_state(gen, layers=1, m=4)
    wide = _split(small, gen, p, copies=2)
    h = torch.randn(6, 12, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(bottleneck_forward(wide, h, p), bottleneck_forward(small, h, p))
    up = align(small, wide)  # n=4 -> m=8: every unit split into its two copies
    assert up.plans[p].perm is None and up.state[f"{p}.down.weight"].shape == (8, 12)
    for key in wide:
        torch.testing.assert_close(up.state[key], wide[key])
    down = align(wide, small)  # n=8 -> m=4: identical copies merged
    assert down.state[f"{p}.up.weight"].shape == (12, 4)
    torch.testing.assert_close(bottleneck_forward(down.state, h, p), bottleneck_forward(wide, h, p))


def test_activation_cost_uses_activations_not_weights(gen):
    p = "enc.layer.0.adapter"
    base = bottleneck_state(gen, layers=1)
    perm = torch.tensor([2, 0, 1, 5, 3, 4])
    moved = permute_units(base, {p: perm})
    h = torch.randn(20, 12, generator=gen, dtype=torch.float64)
    scrambled = {k: torch.randn_like(v) for k, v in moved.items()}  # weights say nothing now
    res = align(base, scrambled, cost="activation", source_acts={p: bottleneck_acts(base, h, p)},
                reference_acts={p: bottleneck_acts(moved, h, p)})
    assert torch.equal(res.plans[p].perm, perm)


def test_align_error_paths(gen):
    p = "enc.layer.0.adapter"
    a, b = bottleneck_state(gen, layers=1), bottleneck_state(gen, layers=1)
    acts = {p: torch.rand(5, 6, generator=gen, dtype=torch.float64)}
    with pytest.raises(ValueError, match=r"cost='bogus'.*'weight', 'activation'"):
        align(a, b, cost="bogus")
    with pytest.raises(ValueError, match=r"solver='lp'.*'exact', 'sinkhorn'"):
        align(a, b, solver="lp")
    with pytest.raises(ValueError, match="source_acts"):
        align(a, b, cost="activation", reference_acts=acts)
    with pytest.raises(ValueError, match=f"group '{p}'"):
        align(a, b, cost="activation", source_acts={}, reference_acts=acts)
    with pytest.raises(ValueError, match=rf"reference_acts\['{p}'\].*\(n_samples, 6\)"):
        align(a, b, cost="activation", source_acts=acts, reference_acts={p: torch.rand(5, 4)})
    with pytest.raises(ValueError, match=f"group '{p}'.*samples"):
        align(a, b, cost="activation", source_acts=acts,
              reference_acts={p: torch.rand(4, 6, dtype=torch.float64)})
    bad = dict(b, extra=torch.zeros(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="'extra'"):
        align(a, bad)
    bad = dict(b, **{f"{p}.up.bias": torch.zeros(11, dtype=torch.float64)})
    with pytest.raises(ValueError, match=rf"{p}\.up\.bias.*shape"):
        align(a, bad)
    bad = dict(b, **{f"{p}.down.weight": torch.zeros(6, 13, dtype=torch.float64)})
    with pytest.raises(ValueError, match=rf"{p}\.down\.weight.*shape"):
        align(a, bad)
    bad = dict(b, **{"head.weight": b["head.weight"].float()})
    with pytest.raises(ValueError, match=r"'head\.weight'.*dtype"):
        align(a, bad)
    bad = dict(b, **{f"{p}.down.bias": b[f"{p}.down.bias"].clone()})
    bad[f"{p}.down.bias"][2] = np.nan
    with pytest.raises(ValueError, match=rf"{p}\.down\.bias.*NaN"):
        align(a, bad)
    with pytest.raises(ValueError, match="reg"):
        align(a, b, solver="sinkhorn", reg=0.0)
