"""Simulator behaviour: determinism, one shared backbone, FedProx(μ=0) = FedAvg, FedPIA = FedAvg
on identical clients (γ = 0), corrupted uploads (injected faults) and client failures."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from fedpia.align import fedavg
from fedpia.data import FederatedData
from fedpia.sim import RoundFailed
from fedpia.strategies import FedPIA, build_strategy


def _global(state):
    return state.server.adapter


def _equal(a, b):
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_results(make_sim):
    s1 = make_sim("fedpia").run()
    s2 = make_sim("fedpia").run()
    assert _equal(_global(s1), _global(s2))
    assert s1.history[-1]["eval"] == s2.history[-1]["eval"]
    s3 = make_sim("fedpia", seed=1).run()
    assert not _equal(_global(s1), _global(s3))


def test_simulator_holds_one_backbone(make_sim, tiny_model):
    before = {n: p.data_ptr() for n, p in tiny_model.named_parameters() if not p.requires_grad}
    frozen = {n: p.detach().clone() for n, p in tiny_model.named_parameters() if not p.requires_grad}
    sim = make_sim("fedpia")
    sim.run()
    assert all(c.model is tiny_model for c in sim.clients)
    after = {n: p.data_ptr() for n, p in tiny_model.named_parameters() if not p.requires_grad}
    assert before == after  # same storage: no per-client backbone copy was swapped in
    assert all(torch.equal(p, frozen[n]) for n, p in tiny_model.named_parameters() if not p.requires_grad)
    # per-client state is adapters + heads only: far smaller than the backbone
    backbone = sum(p.numel() for p in tiny_model.parameters() if not p.requires_grad)
    per_client = sum(v.numel() for v in sim.initial_adapter.values())
    assert per_client * len(sim.clients) < backbone


def test_fedprox_mu0_equals_fedavg(make_sim):
    a = make_sim("fedavg").run()
    b = make_sim(build_strategy("fedprox", mu=0.0)).run()
    assert _equal(_global(a), _global(b))
    c = make_sim(build_strategy("fedprox", mu=10.0)).run()
    assert not _equal(_global(a), _global(c))


def test_fedpia_client_pia_round1_is_noop(initial_adapter):
    from fedpia.strategies import ClientState, RoundContext

    strat = FedPIA()
    start, hooks = strat.client_start({"adapter": initial_adapter}, ClientState(),
                                      RoundContext(1, 3, 0), probe=None)
    assert _equal(start, initial_adapter)
    assert hooks.parallel_frozen is None


def test_fedpia_identical_clients_behaves_like_fedavg(make_sim, tiny_data):
    same = tiny_data.clients[0]
    clones = tuple(dataclasses.replace(same, name=f"twin{i}") for i in range(3))
    data = FederatedData(setting="twins", clients=clones, metric=tiny_data.metric, description="")
    # γ = 0 and identity alignment: the FedPIA server step is exactly FedAvg
    pia = make_sim(FedPIA(client_pia=False, gamma=0.0), rounds=1, data=data).run()
    avg = make_sim("fedavg", rounds=1, data=data).run()
    g_pia, g_avg = _global(pia), _global(avg)
    assert max(float((g_pia[k] - g_avg[k]).abs().max()) for k in g_avg) < 1e-6
    # no unit changed its assignment: identical data keeps the units aligned
    diag = pia.history[-1]["diagnostics"]
    assert diag["clients"] == ["twin0", "twin1", "twin2"]
    groups = diag["groups"]
    assert groups and all(g["moved"] == [0, 0, 0] for g in groups.values())
    full = make_sim("fedpia", rounds=2, data=data).run()
    acc_pia = [r["personalized"]["accuracy"] for r in full.history[-1]["eval"].values()]
    full_avg = make_sim("fedavg", rounds=2, data=data).run()
    acc_avg = [r["personalized"]["accuracy"] for r in full_avg.history[-1]["eval"].values()]
    assert abs(sum(acc_pia) / 3 - sum(acc_avg) / 3) <= 0.25


@pytest.fixture()
def clean_fedavg(make_sim):
    return make_sim("fedavg", rounds=1).run()


def test_bad_uploads_rejected_rounds_complete(make_sim, tiny_data, clean_fedavg):
    """One run, one corrupted upload per round (injected faults): each is rejected with its
    reason, every round completes; round 1's global is exactly FedAvg of the other clients."""
    victim = tiny_data.clients[1].name
    cases = [("nan", "NaN/Inf"), ("fill:1e30", "max |x|"), ("count:-5", "must be >= 1"),
             ("count:none", "not a number"), ("missing_key", "missing key"),
             ("wrong_shape", "shape")]
    faults = [{"client": 1, "round": r, "kind": k} for r, (k, _) in enumerate(cases, 1)]
    sim = make_sim("fedavg", rounds=len(cases), faults=faults)
    first = sim.run_round(sim.initial_state())
    state = sim.run(first)
    for rec, (kind, reason) in zip(state.history, cases, strict=True):
        assert rec["faults"] == {victim: [kind]} and rec["skipped"] is None
        assert list(rec["rejected"]) == [victim] and reason in rec["rejected"][victim]
        assert len(rec["influence"]["norms"]) == 2  # only the valid uploads were bounded
    assert all(torch.isfinite(v).all() for v in _global(state).values())
    # round 1 started where the clean run did: the valid clients' adapters are the clean ones
    others = [c.name for c in tiny_data.clients if c.name != victim]
    sizes = {c.name: len(c.train) for c in tiny_data.clients}
    expect = fedavg([clean_fedavg.clients[n].adapter for n in others], [float(sizes[n]) for n in others])
    assert all(torch.allclose(_global(first)[k], expect[k], atol=1e-6) for k in expect)


def test_no_valid_update_skips_round_or_raises(make_sim, tiny_data):
    faults = [{"client": c.name, "round": 1, "kind": "nan"} for c in tiny_data.clients]
    sim = make_sim("fedavg", rounds=1, faults=faults)
    state0 = sim.initial_state()
    snapshot = {k: v.clone() for k, v in state0.server.adapter.items()}
    state1 = sim.run_round(state0)  # default sim.on_failure="skip": recorded, global kept
    rec = state1.history[-1]
    assert "only 0 valid client update(s)" in rec["skipped"] and len(rec["rejected"]) == 3
    assert state1.round == 1 and _equal(state1.server.adapter, snapshot)
    assert set(rec["eval"]) == {c.name for c in tiny_data.clients}  # still evaluated
    strict = make_sim("fedavg", rounds=1, faults=faults, on_failure="raise")
    with pytest.raises(RoundFailed, match="valid client update") as info:
        strict.run_round(strict.initial_state())
    assert info.value.record["skipped"] and len(info.value.record["rejected"]) == 3


def test_client_failures_tolerated_up_to_fraction(make_sim):
    state = make_sim("fedavg", rounds=3, failure_prob=0.2, max_failure_frac=1.0, min_clients=1).run()
    failed = sum(len(r["failed"]) for r in state.history)
    assert failed > 0 and state.round == 3
    assert all(why == "ClientFailure: simulated client failure"
               for r in state.history for why in r["failed"].values())
    sim = make_sim("fedavg", rounds=3, failure_prob=0.9, max_failure_frac=0.0, on_failure="raise")
    with pytest.raises(RoundFailed, match="clients failed"):
        sim.run()


def test_ditto_keeps_a_personal_model_and_uploads_the_global_one(make_sim):
    state = make_sim(build_strategy("ditto", lam=0.5), rounds=2).run()
    for cs in state.clients.values():
        assert _equal(cs.adapter, cs.extra["personal"])  # personalised view = personal model
    # the server averaged the uploaded global-track models, not the personal ones
    personal_avg = fedavg([cs.adapter for cs in state.clients.values()], [1.0] * len(state.clients))
    assert not _equal(_global(state), personal_avg)


def test_feddat_uploads_shared_adapter_and_keeps_teacher(make_sim):
    state = make_sim(build_strategy("feddat", distill_weight=1.0, temperature=2.0), rounds=2).run()
    for cs in state.clients.values():
        assert "teacher" in cs.extra and not _equal(cs.extra["teacher"], cs.adapter)
    steps = [info["steps"] for info in state.history[-1]["clients"].values()]
    assert all(s == 4 for s in steps)  # two passes of local_steps=2
