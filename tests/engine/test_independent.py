"""Independently initialised clients (the scenario where alignment is the point)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from fedpia.align import align, unit_groups
from fedpia.client import TrainConfig
from fedpia.models import ModelConfig
from fedpia.rounds import client_runtime
from fedpia.rounds.independent import (
    independent_adapters,
    independent_clients,
    mapped_probs,
    string_accuracy,
    train_alone,
    uploads,
)

CFG = ModelConfig(backbone="vilt", pretrained="tiny", peft="houlsby", adapter_width=8, seed=0)
TRAIN = TrainConfig(lr=2e-3, batch_size=8, local_steps=0, local_epochs=1, warmup_frac=0.0)


def test_independent_adapters_are_independent_draws_of_the_same_init(initial_adapter):
    a = independent_adapters(CFG, 3, seed=5)
    again = independent_adapters(CFG, 3, seed=5)
    assert all(set(s) == set(initial_adapter) for s in a)
    for key, ref in initial_adapter.items():
        assert all(s[key].shape == ref.shape for s in a)
        assert all(torch.equal(x[key], y[key]) for x, y in zip(a, again, strict=True))
    down = [k for k in initial_adapter if k.endswith("down.weight")][0]
    assert not torch.equal(a[0][down], a[1][down]) and not torch.equal(a[0][down], initial_adapter[down])
    std = torch.cat([s[down].flatten() for s in a]).std()
    assert 0.015 < float(std) < 0.025  # the in-house adapter init: N(0, 0.02)
    # independent draws share no unit order: aligning one onto another moves most units
    g = unit_groups(a[0])[0]
    assert align(a[1], a[0]).plans[g.name].changed > g.width // 2
    with pytest.raises(ValueError, match="hidden units"):
        independent_adapters(dataclasses.replace(CFG, peft="bias"), 2, seed=0)


def test_independent_clients_train_alone(tiny_model, tiny_data, initial_adapter):
    rts = [client_runtime(tiny_model, s, index=i, seed=0)
           for i, s in enumerate(tiny_data.clients[:2])]
    heads = [rt.initial_head() for rt in rts]  # a snapshot: training mutates rt.head
    states = independent_clients(CFG, rts, epochs=1, train=TRAIN, seed=3)
    init = independent_adapters(CFG, 2, seed=3)
    for rt, a0, h0 in zip(rts, init, heads, strict=True):
        st = states[rt.name]
        assert st.rounds_trained == 0 and set(st.adapter) == set(initial_adapter)
        assert any(not torch.equal(st.adapter[k], a0[k]) for k in a0)  # it trained
        assert any(not torch.equal(st.head[k], v) for k, v in h0.items())
    ups = uploads(states, rts)
    assert [u.num_examples for u in ups] == [len(rt.train) for rt in rts]
    with pytest.raises(ValueError, match="epochs"):
        train_alone(rts[0], initial_adapter, rts[0].initial_head(), epochs=0, train=TRAIN, seed=0)


def test_mapped_probs_and_string_accuracy_closed_form():
    probs = torch.tensor([[0.7, 0.3], [0.2, 0.8]])
    out = mapped_probs(probs, ["no", "yes"], ["left", "no", "yes"])
    assert torch.equal(out, torch.tensor([[0.0, 0.7, 0.3], [0.0, 0.2, 0.8]]))
    assert string_accuracy(out, ["left", "no", "yes"], ["no", "left"]) == 0.5


def test_simulator_starts_from_independent_clients_fused_as_round_zero(make_sim, initial_adapter):
    """sim.independent_epochs: round 0 = each client's own adapter trained alone, fused once
    through the round layer (FedAvg here: the example-weighted mean of those adapters), then the
    ordinary rounds; round 0 is recorded with its evaluation and the run still ends at round R."""
    sim = make_sim("fedavg", rounds=1, independent_epochs=1)
    state0 = sim.initial_state()
    assert state0.round == 0 and [h["round"] for h in state0.history] == [0]
    rec = state0.history[0]
    assert rec["skipped"] is None and set(rec["eval"]) == {c.name for c in sim.clients}
    adapters = [state0.clients[c.name].adapter for c in sim.clients]
    key = next(k for k in initial_adapter if k.endswith("down.weight"))
    assert not torch.equal(adapters[0][key], adapters[1][key])  # own seeds, no shared init
    n = torch.tensor([float(len(c.train)) for c in sim.clients], dtype=torch.float64)
    want = sum(w * a[key].double() for w, a in zip(n / n.sum(), adapters, strict=True))
    assert torch.allclose(state0.server.adapter[key].double(), want, atol=1e-6)
    final = sim.run(state0)
    assert [h["round"] for h in final.history] == [0, 1]


def test_independent_start_is_refused_where_it_cannot_run():
    from fedpia.experiments import get_preset

    cfg = get_preset("demo").with_overrides(["sim.independent_epochs=2", "engine=flower"])
    with pytest.raises(ValueError, match="in-process only"):
        cfg.validate()
    cfg = get_preset("demo").with_overrides(["sim.independent_epochs=2", "model.peft=bias"])
    with pytest.raises(ValueError, match="hidden units"):
        cfg.validate()
    with pytest.raises(ValueError, match="independent_epochs"):
        get_preset("demo").with_overrides(["sim.independent_epochs=-1"])
