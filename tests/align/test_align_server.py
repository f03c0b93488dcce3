"""fedavg closed forms, fedpia_server recipe and invariances, fedpia_client merge."""

from __future__ import annotations

import math

import pytest
import torch
from align_helpers import (
    bottleneck_acts,
    bottleneck_state,
    compacter_state,
    lora_state,
    noisy,
    random_perms,
)

from fedpia.align import align, fedavg, fedpia_client, fedpia_server, permute_units


def _close(a, b, **kw):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], **kw)


def _dist(a, b):
    num = sum(float((a[k] - b[k]).square().sum()) for k in b)
    return math.sqrt(num / sum(float(v.square().sum()) for v in b.values()))


def test_fedavg_closed_form_and_single_client():
    s1 = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor([[0.0]])}
    s2 = {"w": torch.tensor([3.0, 6.0]), "b": torch.tensor([[4.0]])}
    out = fedavg([s1, s2], [1, 3])  # p = (1/4, 3/4)
    _close(out, {"w": torch.tensor([2.5, 5.0]), "b": torch.tensor([[3.0]])})
    _close(fedavg([s1, s2], [10, 30]), out)  # weights are normalised
    _close(fedavg([s1], [7]), s1, rtol=0, atol=0)
    _close(fedavg([s1, s2], [0, 5]), s2, rtol=0, atol=0)


@pytest.mark.parametrize(("states", "weights", "match"), [
    ([], [], "empty"),
    ([{"w": torch.ones(2)}], [-1.0], r"weights\[0\].*negative"),
    ([{"w": torch.ones(2)}] * 2, [0.0, 0.0], "sum to 0"),
    ([{"w": torch.ones(2)}] * 2, [1.0], "2 states"),
    ([{"w": torch.ones(2)}], [math.nan], "not finite"),
    ([{"w": torch.ones(2)}, {"v": torch.ones(2)}], [1, 1], r"missing keys \['w'\]"),
    ([{"w": torch.ones(2)}, {"w": torch.ones(3)}], [1, 1], r"'w'.*shape"),
    ([{"w": torch.ones(2)}, {"w": torch.ones(2, dtype=torch.float64)}], [1, 1], r"'w'.*dtype"),
    ([{"w": torch.ones(2)}, {"w": torch.tensor([1.0, math.inf])}], [1, 1], r"'w'.*NaN/Inf"),
    ([{"n": torch.ones(2, dtype=torch.int64)}], [1], r"'n'.*floating"),
    ([{}], [1], "no keys"),
])
def test_fedavg_error_paths(states, weights, match):
    with pytest.raises(ValueError, match=match):
        fedavg(states, weights)


@pytest.mark.parametrize("factory", [bottleneck_state, lora_state, compacter_state])
def test_identical_unpermuted_clients_are_returned(gen, factory):
    s = factory(gen, layers=2)
    res = fedpia_server([s, s, s], [1, 2, 3])
    _close(res.state, s)
    assert res.distances == pytest.approx([0.0] * 3, abs=1e-6)
    assert res.weights == pytest.approx([1 / 6, 2 / 6, 3 / 6])
    assert all(v == 0 for c in res.changed for v in c.values())


def test_majority_aligned_beats_fedavg(gen):
    base = bottleneck_state(gen, layers=3, d=32, m=16)
    clean = [noisy(base, gen, 0.05) for _ in range(7)]
    clients = list(clean)
    for k in (2, 5):  # a minority of clients arrive with their units permuted
        clients[k] = permute_units(clean[k], random_perms(base, gen))
    res = fedpia_server(clients, [1.0] * 7)
    d_pia, d_avg = _dist(res.state, base), _dist(fedavg(clients, [1.0] * 7), base)
    oracle = _dist(fedavg(clean, [1.0] * 7), base)  # noise floor: FedAvg without permutations
    assert d_pia < 0.1 * d_avg, (d_pia, d_avg)
    assert d_pia < 1.1 * oracle, (d_pia, oracle)
    assert all(res.changed[k][n] > 0 for k in (2, 5) for n in res.changed[k])
    assert all(v == 0 for k in (0, 1, 3, 4, 6) for v in res.changed[k].values())


def test_invariant_to_permuting_one_client(gen):
    base = lora_state(gen, layers=2, r=6)
    clients = [noisy(base, gen, 0.1) for _ in range(4)]
    moved = list(clients)
    moved[2] = permute_units(clients[2], random_perms(base, gen))
    # γ = 0: W_G = Σ p_k W̃_k does not depend on the (order-dependent) FedAvg anchor's d_k
    _close(fedpia_server(moved, [1, 2, 3, 4], gamma=0.0).state,
           fedpia_server(clients, [1, 2, 3, 4], gamma=0.0).state)
    # γ > 0: d_k is measured to the anchor, which moves with the client's order; barycenter
    # iterations re-anchor on W_G and the difference contracts geometrically
    gaps = []
    for it in (1, 3, 6):
        a = fedpia_server(moved, [1, 2, 3, 4], gamma=2.0, iterations=it)
        b = fedpia_server(clients, [1, 2, 3, 4], gamma=2.0, iterations=it)
        gaps.append(max(float((a.state[k] - b.state[k]).abs().max()) for k in base))
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-6, gaps
    _close(a.state, b.state, atol=1e-6, rtol=0)
    assert a.weights == pytest.approx(b.weights, abs=1e-6)


def test_integration_weights_follow_formula(gen):
    base = bottleneck_state(gen, layers=2)
    clients = [noisy(base, gen, s) for s in (0.01, 0.3, 1.0)]
    p = torch.tensor([1.0, 2.0, 1.0]) / 4
    norm = fedpia_server(clients, [1, 2, 1], gamma=3.0)
    d = torch.tensor(norm.distances)
    assert d[0] < d[1] < d[2]
    expected = p * torch.exp(-3.0 * d)
    assert norm.weights == pytest.approx((expected / expected.sum()).tolist())
    paper = fedpia_server(clients, [1, 2, 1], gamma=3.0, weighting="paper")
    assert paper.weights == pytest.approx((torch.exp(-3.0 * d) / 3).tolist())
    flat = fedpia_server(clients, [1, 2, 1], gamma=0.0)  # γ = 0: aligned FedAvg
    assert flat.weights == pytest.approx(p.tolist())
    # the global state is Σ w_k W̃_k on every key, including keys in no group
    aligned = [align(c, fedavg(clients, [1, 2, 1])).state for c in clients]
    _close(norm.state, {k: sum(w * a[k] for w, a in zip(norm.weights, aligned, strict=True))
                        for k in base})


def test_sinkhorn_server_and_unequal_widths(gen):
    p = "enc.layer.0.adapter"
    wide = bottleneck_state(gen, layers=1, m=8)
    narrow = {k: (v[:4] if k.endswith("down.weight") or k.endswith("down.bias") else
                  v[:, :4] if k.endswith("up.weight") else v) for k, v in wide.items()}
    res = fedpia_server([narrow, wide, wide], [1, 1, 1])
    assert res.state[f"{p}.down.weight"].shape == (8, 12)  # anchor width = widest client
    assert res.state[f"{p}.up.weight"].shape == (12, 8)
    assert res.distances[1] == res.distances[2] and res.distances[0] > res.distances[1]
    sk = fedpia_server([wide, noisy(wide, gen, 1e-3)], [1, 1], solver="sinkhorn", reg=0.01)
    _close(sk.state, wide, atol=0.05, rtol=0)


@pytest.mark.parametrize(("kw", "match"), [
    ({"weighting": "soft"}, r"weighting='soft'.*'normalized', 'paper'"),
    ({"solver": "hungarian"}, r"solver='hungarian'"),
    ({"gamma": -1.0}, "gamma"),
    ({"iterations": 0}, "iterations"),
])
def test_server_error_paths(gen, kw, match):
    s = bottleneck_state(gen, layers=1)
    with pytest.raises(ValueError, match=match):
        fedpia_server([s, s], [1, 1], **kw)


def test_server_rejects_mismatched_clients(gen):
    a = bottleneck_state(gen, layers=1)
    b = dict(a, **{"head.weight": torch.zeros(4, 12, dtype=torch.float64)})
    with pytest.raises(ValueError, match=r"head\.weight.*shape"):
        fedpia_server([a, b], [1, 1])
    with pytest.raises(ValueError, match="negative"):
        fedpia_server([a, a], [1, -1])


@pytest.mark.parametrize("cost", ["activation", "weight"])
def test_client_mix_one_returns_global_in_local_order(gen, cost):
    p = "enc.layer.0.adapter"
    local = bottleneck_state(gen, layers=1)
    perm = torch.tensor([3, 1, 0, 5, 2, 4])
    glob = permute_units(noisy(local, gen, 1e-3), {p: perm})
    h = torch.randn(24, 12, generator=gen, dtype=torch.float64)
    acts = {}
    if cost == "activation":
        acts = {"local_acts": {p: bottleneck_acts(local, h, p)},
                "global_acts": {p: bottleneck_acts(glob, h, p)}}
    out = fedpia_client(local, glob, mix=1.0, cost=cost, **acts)
    _close(out, permute_units(glob, {p: torch.argsort(perm)}), rtol=0, atol=0)
    _close(fedpia_client(local, glob, mix=0.0, cost=cost, **acts), local)
    half = fedpia_client(local, glob, mix=0.25, cost=cost, **acts)
    _close(half, {k: 0.25 * out[k] + 0.75 * local[k] for k in local})


def test_client_error_paths(gen):
    s = bottleneck_state(gen, layers=1)
    with pytest.raises(ValueError, match="mix"):
        fedpia_client(s, s, mix=1.5, cost="weight")
    with pytest.raises(ValueError, match="activation"):
        fedpia_client(s, s)  # activation cost (default) without activations


def test_states_without_groups_reduce_to_fedavg(gen):
    states = [{"head.weight": torch.randn(3, 4, generator=gen, dtype=torch.float64)}
              for _ in range(3)]
    res = fedpia_server(states, [1, 2, 3], gamma=5.0)
    _close(res.state, fedavg(states, [1, 2, 3]))
    assert res.distances == [0.0, 0.0, 0.0] and res.changed == [{}, {}, {}]


def test_barycenter_iterations_keep_majority_solution(gen):
    base = compacter_state(gen, layers=2, n=2, d=16, m=8)
    clean = [noisy(base, gen, 0.02) for _ in range(5)]
    clients = [permute_units(c, random_perms(base, gen)) if k == 1 else c
               for k, c in enumerate(clean)]
    one = fedpia_server(clients, [1] * 5)
    three = fedpia_server(clients, [1] * 5, iterations=3)
    oracle = _dist(fedavg(clean, [1] * 5), base)
    assert three.iterations == 3
    assert _dist(three.state, base) < 1.1 * oracle and _dist(one.state, base) < 1.1 * oracle
    assert max(three.distances) <= max(one.distances) + 1e-9  # closer anchor after re-anchoring
