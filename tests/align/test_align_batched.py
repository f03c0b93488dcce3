"""The batched exact fast path of fedpia_server equals a per-client reference built on align()."""

from __future__ import annotations

import math

import pytest
import torch
from align_helpers import FACTORIES, noisy, random_perms

from fedpia.align import align, fedavg, fedpia_server, permute_units, unit_groups
from fedpia.align.batched import group_stacks, permute_stack


def _reference(states, weights, *, gamma, squared, include_outgoing):
    """One FedPIA server iteration, client by client: align(W_k, A) with the exact solver."""
    anchor = fedavg(states, weights)
    groups = unit_groups(anchor)
    grouped = [k for g in groups for k in g.keys]
    aligned = [align(s, anchor, squared=squared, include_outgoing=include_outgoing).state
               for s in states]
    norm = math.sqrt(sum(float(anchor[k].double().square().sum()) for k in grouped))
    d = torch.tensor([math.sqrt(sum(float((a[k] - anchor[k]).double().square().sum())
                                    for k in grouped)) / norm for a in aligned],
                     dtype=torch.float64)
    p = torch.tensor(weights, dtype=torch.float64)
    w = p / p.sum() * torch.exp(-gamma * d)
    w = w / w.sum()
    state = {k: sum(float(w[i]) * a[k] for i, a in enumerate(aligned)) for k in anchor}
    perms = [{g.name: a.plans[g.name].perm for g in groups}
             for a in (align(s, anchor, squared=squared, include_outgoing=include_outgoing)
                       for s in states)]
    return state, d, w, perms


def _argmin_is_perm(source, anchor, g, squared):
    """Whether the row-argmin of client-vs-anchor costs is already a permutation (no scipy)."""
    x = torch.cat([source[m.key].movedim(m.axis, 0).reshape(g.width, -1)
                   for m in g.members if m.role == "in"], dim=1)
    y = torch.cat([anchor[m.key].movedim(m.axis, 0).reshape(g.width, -1)
                   for m in g.members if m.role == "in"], dim=1)
    c = torch.cdist(x, y)
    c = c.square() if squared else c
    return len(set(c.argmin(dim=1).tolist())) == g.width


@pytest.mark.parametrize("factory", ["bottleneck", "lora", "compacter"])
@pytest.mark.parametrize("squared,include_outgoing", [(False, False), (True, True)])
def test_batched_server_equals_per_client_reference(gen, factory, squared, include_outgoing):
    make = FACTORIES[factory]
    base = make(gen)
    states = []
    for i in range(6):
        s = noisy(base, gen, 0.05)
        if i % 2:
            s = permute_units(s, random_perms(s, gen))
        states.append(s)
    states += [make(gen), make(gen)]  # unrelated clients: row argmins collide -> scipy
    weights = [1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 1.5, 0.5]
    anchor = fedavg(states, weights)
    fallback = sum(not _argmin_is_perm(s, anchor, g, squared)
                   for s in states for g in unit_groups(anchor))
    assert fallback > 0, "the case must exercise the scipy fallback"
    res = fedpia_server(states, weights, gamma=2.0, squared=squared,
                        include_outgoing=include_outgoing)
    state, d, w, perms = _reference(states, weights, gamma=2.0, squared=squared,
                                    include_outgoing=include_outgoing)
    torch.testing.assert_close(torch.tensor(res.distances, dtype=torch.float64), d)
    torch.testing.assert_close(torch.tensor(res.weights, dtype=torch.float64), w)
    assert res.state.keys() == state.keys()
    for k in state:
        torch.testing.assert_close(res.state[k], state[k])
    for k, pk in enumerate(perms):
        for name, perm in pk.items():
            assert res.changed[k][name] == int((perm != torch.arange(perm.numel())).sum())


def test_batched_server_float32_matches_reference(gen):
    """float32 states: Gram-based costs give the same permutations and d_k to ~1e-4."""
    base = FACTORIES["bottleneck"](gen, d=40, m=8, dtype=torch.float32)
    states = [permute_units(noisy(base, gen, 0.1), random_perms(base, gen)) for _ in range(5)]
    res = fedpia_server(states, [1, 1, 2, 2, 3], gamma=1.0)
    state, d, w, _ = _reference(states, [1, 1, 2, 2, 3], gamma=1.0, squared=False,
                                include_outgoing=False)
    torch.testing.assert_close(torch.tensor(res.distances, dtype=torch.float64), d,
                               rtol=1e-4, atol=1e-5)
    for k in state:
        torch.testing.assert_close(res.state[k], state[k].float(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("factory", ["bottleneck", "lora", "compacter"])
def test_permute_stack_equals_permute_units(gen, factory):
    states = [FACTORIES[factory](gen) for _ in range(3)]
    perms = [random_perms(states[0], gen) for _ in states]
    for g in unit_groups(states[0]):
        stacks = group_stacks(states, g)
        p = torch.stack([pk[g.name] for pk in perms])
        p[0] = torch.arange(g.width)  # an identity client among moved ones
        for m in g.members:
            got = permute_stack(stacks[m.key], m, g.width, p)
            for k, s in enumerate(states):
                want = permute_units(s, {g.name: p[k]})[m.key]
                assert torch.equal(got[k], want), (m.key, k)


@pytest.mark.parametrize("chunk_bytes", [1, 700])
def test_client_chunks_give_the_same_result(gen, monkeypatch, chunk_bytes):
    """Batching clients in chunks (one client, or a few, per stack) changes nothing."""
    import fedpia.align.solvers as solvers

    base = FACTORIES["bottleneck"](gen)
    states = [permute_units(noisy(base, gen, 0.05), random_perms(base, gen)) if i % 2
              else noisy(base, gen, 0.05) for i in range(5)] + [FACTORIES["bottleneck"](gen)]
    whole = fedpia_server(states, [1, 2, 3, 4, 5, 6], gamma=2.0, iterations=2)
    monkeypatch.setattr(solvers, "CHUNK_BYTES", chunk_bytes)
    g = unit_groups(base)[0]
    assert len(solvers.spans(len(states), base, g)) > 1
    chunked = fedpia_server(states, [1, 2, 3, 4, 5, 6], gamma=2.0, iterations=2)
    assert chunked.changed == whole.changed
    torch.testing.assert_close(torch.tensor(chunked.distances), torch.tensor(whole.distances))
    for k in whole.state:
        torch.testing.assert_close(chunked.state[k], whole.state[k])
