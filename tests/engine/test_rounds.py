"""The round protocol on tiny named states (no model): seed streams, sampling, faults, screening
of whole uploads, bounded influence, the failure policy and the round record."""

from __future__ import annotations

import math
import zlib
from dataclasses import replace

import pytest
import torch

from fedpia.client import TrainConfig
from fedpia.rounds import (
    RECORD_KEYS,
    ClientFailure,
    RobustConfig,
    RoundFailed,
    RoundRules,
    SimConfig,
    apply_fault,
    derive_seed,
    parse_faults,
    sample_clients,
    seed_for,
    server_step,
)
from fedpia.strategies import ClientUpdate, build_strategy

NAMES = ["c0", "c1", "c2", "c3"]


def _state(seed: int = 0, scale: float = 1.0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "layer.0.adapter.down.weight": scale * torch.randn(4, 6, generator=g),
        "layer.0.adapter.down.bias": scale * torch.randn(4, generator=g),
        "layer.0.adapter.up.weight": scale * torch.randn(6, 4, generator=g),
        "layer.0.adapter.up.bias": scale * torch.randn(6, generator=g),
    }


GLOBAL = _state(0)


def _near(seed: int, step: float = 0.1) -> dict[str, torch.Tensor]:
    """A client state G + step·noise (an honest-looking update)."""
    return {k: GLOBAL[k] + step * v for k, v in _state(seed).items()}


def _rules(strategy: str = "fedavg", *, robust: RobustConfig | None = None, **sim) -> RoundRules:
    return RoundRules.make(build_strategy(strategy), sim=SimConfig(rounds=3, **sim),
                           train=TrainConfig(), robust=robust, num_clients=len(NAMES),
                           initial_adapter=GLOBAL)


def _step(rules, updates, failed=None, chosen=None):
    server = rules.strategy.server_init(GLOBAL)
    chosen = chosen or list(enumerate(NAMES))
    return server_step(rules, server, 1, chosen=chosen, updates=updates, failed=failed or {},
                       payload=rules.strategy.client_payload(server))


def _ups(n: int = 4, counts=(10, 20, 30, 40)) -> list[ClientUpdate]:
    return [ClientUpdate(NAMES[k], _near(k + 1), counts[k], metrics={"loss": 1.0}) for k in range(n)]


# ------------------------------------------------------------------ seeds and sampling
def test_seed_streams_are_named_distinct_and_stable():
    assert seed_for(3, "sample", 2) == derive_seed(3, zlib.crc32(b"sample"), 2)
    seeds = {seed_for(0, s, 1, 0) for s in ("sample", "failure", "client", "second", "probe", "head",
                                             "server")}
    assert len(seeds) == 7  # no two streams share a seed
    assert seed_for(0, "head", 0) != seed_for(0, "head", 1) != seed_for(1, "head", 1)
    with pytest.raises(ValueError, match="unknown seed stream 'sampel'"):
        seed_for(0, "sampel", 1)


def test_sample_clients_is_seeded_and_bounded():
    assert sample_clients(5, 1, SimConfig(rounds=3)) == [0, 1, 2, 3, 4]
    half = SimConfig(rounds=3, fraction_fit=0.4, seed=3)
    a, b = sample_clients(5, 1, half), sample_clients(5, 1, half)
    assert a == b and len(a) == 2 and a == sorted(a)
    assert len({tuple(sample_clients(5, r, half)) for r in range(1, 30)}) > 1
    assert len(sample_clients(5, 1, SimConfig(fraction_fit=0.1, min_clients=3))) == 3


# ------------------------------------------------------------------ faults
def test_fault_specs_parse_and_fail_clearly():
    (f,) = parse_faults([{"client": "ct", "round": 2, "kind": "scale:1000"}])
    assert (f.client, f.round, f.kind, f.arg, f.label) == ("ct", 2, "scale", 1000.0, "scale:1000")
    assert f.matches(2, 7, "ct") and not f.matches(1, 7, "ct") and not f.matches(2, 7, "x")
    (g,) = parse_faults([{"client": 1, "kind": "count:none"}])
    assert g.round is None and g.arg is None and g.matches(5, 1, "any")
    for bad, needle in (({"client": 1, "kind": "explode"}, "kind='explode'"),
                        ({"client": 1, "kind": "scale"}, "kind='scale'"),
                        ({"client": 1, "kind": "nan:3"}, "kind='nan:3'"),
                        ({"client": 1, "kind": "scale:x"}, "X must be a number"),
                        ({"client": 1, "round": 0, "kind": "nan"}, "round must be"),
                        ({"client": -1, "kind": "nan"}, "client must be >= 0"),
                        ({"kind": "nan"}, "needs keys client and kind")):
        with pytest.raises(ValueError, match=r"sim\.faults\[0\]"):
            parse_faults([bad])
        with pytest.raises(ValueError, match=needle):
            SimConfig(faults=[bad])


def test_apply_fault_closed_forms():
    up = ClientUpdate("c1", _near(1), 24)
    first = sorted(GLOBAL)[0]
    fault = parse_faults([{"client": 1, "kind": "scale:1000"}])[0]
    scaled = apply_fault(fault, up, GLOBAL).state
    for k in GLOBAL:  # G + 1000 (W - G)
        assert torch.allclose(scaled[k], GLOBAL[k] + 1000 * (up.state[k] - GLOBAL[k]), atol=1e-3)
    assert torch.equal(up.state[first], _near(1)[first])  # the original upload is untouched
    def one(kind):
        return apply_fault(parse_faults([{"client": 1, "kind": kind}])[0], up, GLOBAL)
    assert math.isnan(one("nan").state[first].view(-1)[0]) and one("inf").state[first].view(-1)[0] == math.inf
    assert torch.all(one("fill:-1e30").state[first] == -1e30)
    assert one("count:-5").num_examples == -5 and one("count:none").num_examples is None
    assert first not in one("missing_key").state
    assert one("wrong_shape").state[first].shape[-1] == GLOBAL[first].shape[-1] + 1
    with pytest.raises(ClientFailure, match="drop"):
        one("drop")


# ------------------------------------------------------------------ screening
@pytest.mark.parametrize(("count", "reason"), [
    (-5, "must be >= 1"), (0, "must be >= 1"), (float("nan"), "not finite"),
    (float("inf"), "not finite"), (None, "not a number"), (2.5, "not an integer"),
    (1e15, "exceeds the cap robust.max_examples=10000000"), (True, "not a number"),
])
def test_bad_counts_are_rejected_and_the_round_goes_on(count, reason):
    ups = _ups()
    ups[1] = replace(ups[1], num_examples=count)
    out = _step(_rules(), ups)
    assert out.record["skipped"] is None and list(out.record["rejected"]) == ["c1"]
    assert reason in out.record["rejected"]["c1"]
    assert out.kept == ["c0", "c2", "c3"]


def _sparse(s):
    s["layer.0.adapter.down.bias"] = s["layer.0.adapter.down.bias"].to_sparse()


def _meta(s):
    s["layer.0.adapter.down.bias"] = torch.empty(4, device="meta")


def _huge(s):
    s["layer.0.adapter.up.bias"] = torch.full((6,), 1e30)


def _neg_huge(s):
    s["layer.0.adapter.up.bias"] = torch.full((6,), -1e30)


def _int(s):
    s["layer.0.adapter.up.bias"] = torch.zeros(6, dtype=torch.int64)


@pytest.mark.parametrize(("corrupt", "reason"), [
    (_sparse, "not a dense tensor"), (_meta, "meta tensor"), (_huge, "max |x| = 1e+30"),
    (_neg_huge, "max |x| = 1e+30"), (_int, "dtype torch.int64"),
])
def test_bad_tensors_are_rejected_without_crashing(corrupt, reason):
    ups = _ups()
    corrupt(ups[2].state)
    out = _step(_rules(), ups)
    assert list(out.record["rejected"]) == ["c2"] and reason in out.record["rejected"]["c2"]
    assert all(torch.isfinite(v).all() and v.abs().max() < 10 for v in out.server.adapter.values())


def test_extras_are_screened_too():
    ups = _ups()
    ups[0] = replace(ups[0], extra={"delta_c": {"w": torch.tensor([float("nan")])}})
    out = _step(_rules(), ups)
    assert "extra key 'delta_c/w' has 1 NaN/Inf" in out.record["rejected"]["c0"]


@pytest.mark.parametrize("strategy", ["fedavg", "fedpia", "scaffold", "fedadam", "fedmedian"])
def test_a_rejected_upload_is_exactly_a_dropout(strategy):
    """Same global state bit for bit whether client c1's upload is rejected or never arrives."""
    rules = _rules(strategy, max_failure_frac=1.0)
    ups = _ups()
    if strategy == "scaffold":
        ups = [replace(u, extra={"delta_c": {k: 0.01 * v for k, v in _state(9).items()}}) for u in ups]
    bad = list(ups)
    bad[1] = replace(ups[1], num_examples=float("nan"))
    rejected = _step(rules, bad)
    dropped = _step(rules, [ups[0], ups[2], ups[3]], failed={"c1": "gone"})
    assert "c1" in rejected.record["rejected"] and "c1" in dropped.record["failed"]
    a, b = rejected.server.adapter, dropped.server.adapter
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert rejected.record["influence"] == dropped.record["influence"]


# ------------------------------------------------------------------ bounded influence
def _move(state) -> float:
    return math.sqrt(sum(float((state[k] - GLOBAL[k]).norm() ** 2) for k in GLOBAL))


@pytest.mark.parametrize("strategy", ["fedavg", "fedpia"])
def test_one_1000x_client_moves_the_global_at_most_2x(strategy):
    honest = _step(_rules(strategy), _ups())
    ups = _ups()
    ups[1] = replace(ups[1], state={k: GLOBAL[k] + 1000 * (v - GLOBAL[k]) for k, v in ups[1].state.items()})
    attacked = _step(_rules(strategy), ups)
    unbounded = _step(_rules(strategy, robust=RobustConfig(norm_bound="off")), ups)
    ratio = _move(attacked.server.adapter) / _move(honest.server.adapter)
    assert list(attacked.record["influence"]["clipped"]) == ["c1"]
    assert ratio <= 2.0
    assert _move(unbounded.server.adapter) / _move(honest.server.adapter) > 20  # the defect
    rejecting = _step(_rules(strategy, robust=RobustConfig(norm_bound="reject")), ups)
    assert "update norm" in rejecting.record["rejected"]["c1"] and "c1" not in rejecting.kept


def test_honest_updates_below_the_bound_are_untouched():
    ups = _ups()
    out = _step(_rules(), ups)
    norms = out.record["influence"]["norms"]
    assert out.record["influence"]["clipped"] == {}
    assert out.record["influence"]["bound"] == pytest.approx(2.0 * sorted(norms.values())[1])
    off = _step(_rules(robust=RobustConfig(norm_bound="off")), ups)
    assert all(torch.equal(out.server.adapter[k], off.server.adapter[k]) for k in GLOBAL)


# ------------------------------------------------------------------ failure policy and record
def test_too_many_failures_skip_or_raise():
    failed = {"c0": "x", "c1": "y", "c2": "z"}
    out = _step(_rules(), _ups(1), failed=failed)
    assert "3/4 clients failed" in out.record["skipped"] and out.kept == []
    assert all(torch.equal(out.server.adapter[k], GLOBAL[k]) for k in GLOBAL)
    assert out.server.round == 1
    with pytest.raises(RoundFailed, match="3/4 clients failed") as info:
        _step(_rules(on_failure="raise"), _ups(1), failed=failed)
    assert info.value.record["failed"] == failed


def test_failing_aggregation_is_a_skipped_round():
    class Broken(type(build_strategy("fedavg"))):
        def aggregate(self, server, updates, ctx):
            raise ArithmeticError("cost infeasible")

    rules = replace(_rules(), strategy=Broken())
    out = _step(rules, _ups())
    assert out.record["skipped"] == "aggregation failed: ArithmeticError: cost infeasible"
    assert all(torch.equal(out.server.adapter[k], GLOBAL[k]) for k in GLOBAL)


def test_round_record_shape_and_injected_faults():
    rules = _rules(faults=[{"client": "c2", "round": 1, "kind": "nan"},
                           {"client": 3, "kind": "count:7"}])
    out = _step(rules, _ups())
    rec = out.record
    assert set(rec) | {"eval", "eval_time", "round_time"} == set(RECORD_KEYS)
    assert rec["faults"] == {"c2": ["nan"], "c3": ["count:7"]}  # from the config, both engines
    assert rec["clients"]["c0"] == {"loss": 1.0}
    assert rec["bytes_down"] == 4 * sum(v.numel() * 4 for v in GLOBAL.values())


@pytest.mark.parametrize("strategy", ["fedavg", "fedpia"])
def test_1e30_values_without_magnitude_screen_are_clipped_not_fatal(strategy):
    """With ``robust.max_abs=inf`` a ±1e30 upload passes screening; the norm bound still keeps
    it from corrupting the average (before: FedAvg off by up to 7e37, FedPIA's cost infeasible)."""
    ups = _ups()
    ups[3].state["layer.0.adapter.down.weight"] = torch.full((4, 6), -1e30)
    out = _step(_rules(strategy, robust=RobustConfig(max_abs=float("inf"))), ups)
    assert out.record["skipped"] is None and list(out.record["influence"]["clipped"]) == ["c3"]
    assert _move(out.server.adapter) <= 2.0 * _move(_step(_rules(strategy), _ups()).server.adapter)
