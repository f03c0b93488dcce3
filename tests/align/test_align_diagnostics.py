"""Server/client alignment diagnostics, the client margin and per-layer integration weights."""

from __future__ import annotations

import math

import pytest
import torch
from align_helpers import FACTORIES, bottleneck_acts, bottleneck_state, noisy, random_perms

from fedpia.align import (
    align,
    fedavg,
    fedpia_client,
    fedpia_client_step,
    fedpia_server,
    mix_states,
    permute_units,
    transport_plan,
    unit_groups,
)


def _clients(gen, factory="bottleneck", k=5, **kw):
    base = FACTORIES[factory](gen, **kw)
    return [permute_units(noisy(base, gen, 0.05), random_perms(base, gen)) if i % 2
            else noisy(base, gen, 0.05) for i in range(k)] + [FACTORIES[factory](gen, **kw)]


def test_transport_plan_identity_cost_and_gain_closed_form():
    c = torch.tensor([[4.0, 1.0], [1.0, 4.0]], dtype=torch.float64)
    gp = transport_plan(c)
    assert gp.perm.tolist() == [1, 0]
    assert gp.identity_cost == 4.0 and gp.cost == 1.0  # tr(C)/2 and (1 + 1)/2
    assert gp.gain == pytest.approx(0.75)
    ident = gp.identity()
    assert ident.perm.tolist() == [0, 1] and ident.cost == 4.0 and ident.changed == 0
    wide = transport_plan(torch.rand(2, 3, dtype=torch.float64))
    assert wide.identity_cost is None and math.isnan(wide.gain)
    with pytest.raises(ValueError, match="no identity plan"):
        wide.identity()


@pytest.mark.parametrize(("factory", "solver"), [
    ("bottleneck", "exact"), ("lora", "exact"), ("compacter", "exact"), ("bottleneck", "sinkhorn"),
])
def test_server_group_stats_match_per_client_reference(gen, factory, solver):
    """moved / costs / per-group distance equal what align() against the anchor gives."""
    states = _clients(gen, factory)
    weights = [1.0, 2.0, 3.0, 1.0, 2.0, 3.0]
    res = fedpia_server(states, weights, gamma=1.0, solver=solver, reg=0.5)
    anchor = fedavg(states, weights)
    assert res.fedavg_weights == pytest.approx([w / sum(weights) for w in weights])
    for g in unit_groups(anchor):
        st = res.groups[g.name]
        assert st.width == g.width and st.weights == res.weights
        norm = math.sqrt(sum(float(anchor[k].double().square().sum()) for k in g.keys))
        for k, s in enumerate(states):
            ref = align(s, anchor, solver=solver, reg=0.5)
            gp = ref.plans[g.name]
            assert st.moved[k] == gp.changed == res.changed[k][g.name]
            assert st.cost_before[k] == pytest.approx(gp.identity_cost, rel=1e-6)
            assert st.cost_after[k] == pytest.approx(gp.cost, rel=1e-6, abs=1e-9)
            if solver == "exact":  # an entropic plan may cost more than the identity
                assert st.cost_after[k] <= st.cost_before[k] + 1e-9
            dist = math.sqrt(sum(float((ref.state[key] - anchor[key]).double().square().sum())
                                 for key in g.keys)) / norm
            assert st.distance[k] == pytest.approx(dist, rel=1e-6)
    # permuted clients gain from the alignment, unpermuted near-copies do not
    name = unit_groups(anchor)[0].name
    gain = res.groups[name].gain
    if solver == "exact":
        assert min(gain[1], gain[3]) > 0.2 and max(gain[0], gain[2], gain[4]) < 0.05
        assert res.groups[name].moved[0] == 0 and res.groups[name].moved[1] > 0


def test_server_stats_with_unequal_widths(gen):
    p = "enc.layer.0.adapter"
    wide = bottleneck_state(gen, layers=1, m=8)
    narrow = {k: (v[:4] if k.endswith(("down.weight", "down.bias")) else
                  v[:, :4] if k.endswith("up.weight") else v) for k, v in wide.items()}
    res = fedpia_server([narrow, wide, wide], [1, 1, 1])
    st = res.groups[p]
    assert st.width == 8 and math.isnan(st.cost_before[0]) and math.isnan(st.gain[0])
    assert st.cost_before[1] == pytest.approx(st.cost_after[1]) and st.moved[1] == 0


def test_layer_distance_weights_each_group_by_its_own_distance(gen):
    """distance='layer': w_{k,g} ∝ p_k e^{-γ d_{k,g}}; <g>.up.bias follows its group; the head
    follows the global weights. Client 1 is far off in layer 1 only."""
    base = bottleneck_state(gen, layers=2)
    clients = [noisy(base, gen, 0.01) for _ in range(3)]
    l1 = "enc.layer.1.adapter"
    clients[1] = {k: (v + 2.0 * torch.randn(v.shape, generator=gen, dtype=v.dtype)
                      if k.startswith(l1) else v) for k, v in clients[1].items()}
    glob = fedpia_server(clients, [1, 1, 1], gamma=3.0)
    lay = fedpia_server(clients, [1, 1, 1], gamma=3.0, distance="layer")
    for name, st in lay.groups.items():
        e = torch.exp(-3.0 * torch.tensor(st.distance, dtype=torch.float64))
        assert st.weights == pytest.approx((e / e.sum()).tolist())
        aligned = [align(c, fedavg(clients, [1, 1, 1])).state for c in clients]
        for key in (f"{name}.down.weight", f"{name}.up.weight", f"{name}.up.bias"):
            want = sum(w * a[key] for w, a in zip(st.weights, aligned, strict=True))
            torch.testing.assert_close(lay.state[key], want)
    w0 = lay.groups["enc.layer.0.adapter"].weights
    w1 = lay.groups[l1].weights
    assert w1[1] < glob.weights[1] < w0[1]  # the outlier counts less only where it is off
    assert lay.weights == pytest.approx(glob.weights)
    heads = [c["head.weight"] for c in clients]
    torch.testing.assert_close(lay.state["head.weight"],
                               sum(w * h for w, h in zip(glob.weights, heads, strict=True)))
    with pytest.raises(ValueError, match="distance='nope'"):
        fedpia_server(clients, [1, 1, 1], distance="nope")


def test_single_group_layer_distance_equals_global(gen):
    s = [{k: v for k, v in c.items() if k.startswith("enc.layer.0.adapter.")}
         for c in _clients(gen)]
    a = fedpia_server(s, [1, 2, 3, 4, 5, 6], gamma=2.0)
    b = fedpia_server(s, [1, 2, 3, 4, 5, 6], gamma=2.0, distance="layer")
    for k in a.state:
        torch.testing.assert_close(a.state[k], b.state[k], rtol=0, atol=0)


def _planted(gen, noise):
    p = "enc.layer.0.adapter"
    local = bottleneck_state(gen, layers=1)
    perm = torch.tensor([3, 1, 0, 5, 2, 4])
    glob = permute_units(noisy(local, gen, noise), {p: perm})
    h = torch.randn(32, 12, generator=gen, dtype=torch.float64)
    acts = {"local_acts": {p: bottleneck_acts(local, h, p)},
            "global_acts": {p: bottleneck_acts(glob, h, p)}}
    return p, local, glob, acts


def test_client_margin_keeps_units_unless_the_gain_is_large_enough(gen):
    p, local, glob, acts = _planted(gen, 1e-3)
    step = fedpia_client_step(local, glob, mix=1.0, **acts)
    gain = step.alignment.plans[p].gain
    assert step.alignment.plans[p].changed == 5 and 0 < gain < 1 and not step.alignment.rejected
    # below the gain: the permutation is applied; above it: G stays in its own unit order
    kept = fedpia_client_step(local, glob, mix=1.0, margin=gain * 0.99, **acts)
    assert kept.alignment.rejected == () and torch.equal(kept.state[f"{p}.down.weight"],
                                                         step.state[f"{p}.down.weight"])
    held = fedpia_client_step(local, glob, mix=1.0, margin=min(gain * 1.01, 0.999), **acts)
    assert held.alignment.rejected == (p,) and held.alignment.plans[p].changed == 0
    assert held.alignment.proposed[p].changed == 5  # the rejected optimum is still reported
    for k in glob:
        assert torch.equal(held.state[k], glob[k])
    with pytest.raises(ValueError, match="margin"):
        fedpia_client(local, glob, margin=1.0, **acts)


def test_client_mix_without_permutation_is_the_plain_merge(gen):
    p, local, glob, _ = _planted(gen, 1e-3)
    out = mix_states(glob, local, 0.25)
    for k in local:
        torch.testing.assert_close(out[k], 0.25 * glob[k] + 0.75 * local[k], rtol=0, atol=0)
    with pytest.raises(ValueError, match="mix"):
        mix_states(glob, local, -0.1)


def test_reference_anchor_aligns_clients_with_no_shared_unit_order(gen):
    """Clients = one adapter + large noise (σ = 0.6 of the weights), each in its own random unit
    order, equal weights. The oracle is the FedAvg of the correctly ordered clients. A FedAvg
    anchor unit mixes K unrelated units, one of them the client's own, so the first pass is
    biased to the identity and falls far from the oracle; anchor='largest' recovers it."""
    base = bottleneck_state(gen, layers=2, d=24, m=8)
    clean = [noisy(base, gen, 0.6) for _ in range(3)]
    clients = [permute_units(c, random_perms(base, gen)) for c in clean]
    oracle = fedavg(clean, [1, 1, 1])

    def err(state):  # relative distance to the oracle, up to a unit permutation
        state = align(state, oracle).state
        keys = [k for k in oracle if "adapter" in k]
        return math.sqrt(sum(float((state[k] - oracle[k]).square().sum()) for k in keys)
                         / sum(float(oracle[k].square().sum()) for k in keys))

    blur = fedpia_server(clients, [1, 1, 1], gamma=0.0)
    good = fedpia_server(clients, [1, 1, 1], gamma=0.0, anchor="largest", iterations=2)
    assert err(good.state) < 1e-6 and err(blur.state) > 0.3 and err(fedavg(clients, [1] * 3)) > 0.5
    name = "enc.layer.0.adapter"
    assert good.groups[name].moved[0] == 0 and min(good.groups[name].moved[1:]) > 0
    bad = [dict(c) for c in clients]
    bad[1][f"{name}.down.weight"] = torch.full_like(bad[1][f"{name}.down.weight"], math.nan)
    with pytest.raises(ValueError, match="NaN"):
        fedpia_server(bad, [1, 1, 1], anchor="largest")
    with pytest.raises(ValueError, match="anchor='mean'"):
        fedpia_server(clients, [1, 1, 1], anchor="mean")
