"""FedPIA's controls and knobs (fedavg-mix, client_permute, margin, layer distance) and the
diagnostics every FedPIA round record carries."""

from __future__ import annotations

import json

import pytest
import torch

from fedpia.align import unit_groups
from fedpia.experiments import get_preset
from fedpia.experiments.variants import apply_variant
from fedpia.strategies import ClientState, ClientUpdate, FedPIA, RoundContext, build_strategy

CTX = RoundContext(round=2, num_rounds=3, seed=0, client="a", num_clients=2)


def _equal(a, b):
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def _adapter(gen, shift=0.0):
    p = "enc.layer.0.adapter"
    return {f"{p}.down.weight": torch.randn(4, 6, generator=gen) + shift,
            f"{p}.down.bias": torch.randn(4, generator=gen),
            f"{p}.up.weight": torch.randn(6, 4, generator=gen),
            f"{p}.up.bias": torch.randn(6, generator=gen)}


def test_fedavg_mix_hooks_closed_form_and_equal_to_fedpia_without_permutation():
    gen = torch.Generator().manual_seed(0)
    glob, local = _adapter(gen), _adapter(gen, 1.0)
    mix = build_strategy("fedavg-mix", mix=0.3)
    twin = FedPIA(server_pia=False, client_permute=False, mix=0.3)
    assert not twin.needs_probe and not mix.needs_probe
    first, _ = mix.client_start({"adapter": glob}, ClientState(), CTX)
    assert _equal(first, glob)  # round 1: everyone starts from G
    start, hooks = mix.client_start({"adapter": glob}, ClientState(adapter=local), CTX)
    assert _equal(start, {k: glob[k] * 0.3 + local[k] * 0.7 for k in glob})
    start2, hooks2 = twin.client_start({"adapter": glob}, ClientState(adapter=local), CTX)
    assert _equal(start, start2) and hooks.diagnostics == hooks2.diagnostics == {}
    ups = [ClientUpdate("a", glob, 10), ClientUpdate("b", local, 30)]
    srv = mix.server_init(glob)
    a, _ = mix.aggregate(srv, ups, CTX)
    b, _ = twin.aggregate(srv, ups, CTX)
    assert _equal(a.adapter, b.adapter)
    for k in glob:
        torch.testing.assert_close(a.adapter[k], 0.25 * glob[k] + 0.75 * local[k])
    one = build_strategy("fedavg-mix", mix=1.0)  # λ = 1: the client starts from G (FedAvg)
    assert _equal(one.client_start({"adapter": glob}, ClientState(adapter=local), CTX)[0], glob)
    with pytest.raises(ValueError, match="mix"):
        build_strategy("fedavg-mix", mix=2.0)
    with pytest.raises(ValueError, match="client_margin"):
        FedPIA(client_margin=1.0)
    with pytest.raises(ValueError, match="distance"):
        FedPIA(distance="both")


def test_fedpia_client_weight_cost_reports_its_alignment():
    gen = torch.Generator().manual_seed(1)
    local = _adapter(gen)
    perm = torch.tensor([2, 0, 3, 1])
    glob = {k: (v[perm] if k.endswith("down.weight") or k.endswith("down.bias") else
                v[:, perm] if k.endswith("up.weight") else v) for k, v in local.items()}
    strat = FedPIA(client_cost="weight", mix=1.0)
    start, hooks = strat.client_start({"adapter": glob}, ClientState(adapter=local), CTX)
    assert _equal(start, local)  # the permuted copy is mapped back onto the local units
    d = hooks.diagnostics
    assert d["groups"] == ["enc.layer.0.adapter"] and d["moved"] == [4] and d["accepted"] == [True]
    assert d["widths"] == [4]
    assert d["cost_after"] == [0.0] and d["gain"] == [1.0] and d["cost_before"][0] > 0
    held = FedPIA(client_cost="weight", mix=1.0, client_margin=0.5)
    _, h2 = held.client_start({"adapter": glob}, ClientState(adapter=local), CTX)
    assert h2.diagnostics["accepted"] == [True]  # gain 1.0 passes a 0.5 margin


def test_round_records_carry_pia_diagnostics(make_sim):
    state = make_sim("fedpia", rounds=2).run()
    json.dumps(state.history)  # records stay JSON
    names = [g.name for g in unit_groups(state.server.adapter)]
    for rec in state.history:
        diag = rec["diagnostics"]
        k = len(diag["clients"])
        assert sorted(diag["groups"]) == sorted(names)
        assert sum(diag["fedavg_weights"]) == pytest.approx(1.0, abs=1e-5)
        for g in diag["groups"].values():
            assert len(g["moved"]) == len(g["gain"]) == len(g["distance"]) == k
            assert all(0 <= m <= g["width"] for m in g["moved"])
            assert all(a <= b + 1e-6 for a, b in zip(g["cost_after"], g["cost_before"],
                                                     strict=True))
    assert all("pia" not in info for info in state.history[0]["clients"].values())  # round 1
    for info in state.history[1]["clients"].values():
        pia = info["pia"]
        assert pia["cost"] == "activation" and sorted(pia["groups"]) == sorted(names)
        assert all(0.0 <= g <= 1.0 for g in pia["gain"]) and all(pia["accepted"])
        assert pia["moved"] == pia["proposed_moved"]  # margin 0: every optimum applied


def test_fedavg_mix_simulation_equals_fedpia_without_permutation(make_sim):
    a = make_sim(build_strategy("fedavg-mix", mix=0.5)).run()
    b = make_sim(FedPIA(server_pia=False, client_permute=False, mix=0.5)).run()
    assert _equal(a.server.adapter, b.server.adapter)
    assert a.history[-1]["eval"] == b.history[-1]["eval"]
    c = make_sim("fedavg").run()
    assert not _equal(a.server.adapter, c.server.adapter)  # the mix does change round 2


def test_variants_define_the_controls():
    base = get_preset("demo").with_overrides(["strategy_options.mix=0.7"])
    mix = apply_variant(base, "fedavg-mix")
    assert mix.strategy == "fedavg-mix" and mix.strategy_options == {"mix": 0.7}
    srv_mix = apply_variant(base, "fedpia-server-mix")
    assert srv_mix.strategy_options["client_permute"] is False
    assert srv_mix.strategy_options["mix"] == 0.7
    assert apply_variant(base, "fedpia-server-only").strategy_options["client_pia"] is False
    assert apply_variant(base, "fedpia-layer-distance").strategy_options["distance"] == "layer"
    for name in ("fedpia-client-weight", "fedpia-paper-weights", "fedavg-mix", "fedpia-server-ref",
                 "fedpia-gamma0", "fedpia-paper-client", "fedpia-margin"):
        apply_variant(base, name).validate()
