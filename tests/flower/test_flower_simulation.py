"""The one real Flower + Ray simulation (FedPIA, 3 clients, 2 rounds, client 1 uploads NaN in
round 1): it reproduces the in-process simulator exactly, keeps client state on the node between
rounds (client PIA in round 2 starts from the node's own adapter, not from the global), and
rejects the corrupted upload without failing the round."""

from __future__ import annotations

import json
import math

import torch
from flower_helpers import run_inprocess

from fedpia.rounds import RECORD_KEYS

TIMING = ("server_time", "eval_time", "round_time")
CLIENT_TIMING = ("client_pia_time", "train_time")


def _comparable(rec):
    out = {k: v for k, v in rec.items() if k not in TIMING}
    out["clients"] = {c: {k: v for k, v in m.items() if k not in CLIENT_TIMING}
                      for c, m in rec["clients"].items()}
    return out


def test_ray_run_matches_inprocess_bit_for_bit(ray_run):
    history, strategy = ray_run["flower"]
    ref = ray_run["inprocess"]
    assert strategy.server.round == ref.server.round == 2
    a, b = strategy.server.adapter, ref.server.adapter
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert [_comparable(h) for h in history] == [_comparable(h) for h in ref.history]
    for rec in history:
        assert set(rec) == set(RECORD_KEYS) and len(rec["eval"]) == 3
        for res in rec["eval"].values():
            assert set(res) == {"personalized", "global"}


def test_client_state_persists_and_client_pia_ran(ray_run):
    """Each node reloads its own ClientState from Context.state: round r reports r rounds
    trained (client 1 trained in round 1 too: only its upload was rejected). Client PIA ran in
    round 2: every client started local training from λ·perm(G) + (1−λ)·L, away from the
    received global G (start_shift > 0; exactly 0 in round 1, where everyone starts from G); a
    stateless node would have started from G."""
    history, _ = ray_run["flower"]
    for rec in history:
        assert {c: int(i["rounds_trained"]) for c, i in rec["clients"].items()} == {
            c: rec["round"] for c in rec["clients"]
        }
    assert all(i["start_shift"] == 0.0 for i in history[0]["clients"].values())
    assert all(i["start_shift"] > 1e-4 for i in history[1]["clients"].values())


def test_corrupted_upload_is_rejected_and_the_round_completes(ray_run):
    history, strategy = ray_run["flower"]
    rec = history[0]
    bad = list(rec["eval"])[1]
    assert rec["faults"] == {bad: ["nan"]} and set(rec["rejected"]) == {bad}
    assert "NaN/Inf" in rec["rejected"][bad] and rec["skipped"] is None and rec["failed"] == {}
    assert set(rec["influence"]["norms"]) == set(rec["eval"]) - {bad}
    assert all(math.isfinite(v.abs().max().item()) for v in strategy.server.adapter.values())


def test_without_client_pia_round_2_differs(ray_run):
    """The round-2 equality above is not vacuous: the same run without client PIA ends elsewhere."""
    cfg = ray_run["cfg"]
    off = cfg.with_overrides(["strategy_options.client_pia=False"])
    other = run_inprocess(off)
    ref = ray_run["inprocess"]
    assert other.history[0]["eval"] == ref.history[0]["eval"]  # round 1: client PIA is a no-op
    assert any(not torch.equal(other.server.adapter[k], ref.server.adapter[k])
               for k in ref.server.adapter)


def test_fedpia_run_engine_flower_exits_1_when_every_round_is_skipped(tmp_path):
    """Every client drops out in the only round: the ServerApp writes its results with status
    "failed" and raises, Flower marks the run finished:failed, ``fedpia run`` writes
    results.json and exits 1 (as the in-process engine does)."""
    from typer.testing import CliRunner

    from fedpia.cli import app

    (tmp_path / "dead.toml").write_text("""
setting = "synthetic"
strategy = "fedavg"
[setting_options]
modalities = ["x-ray", "ct"]
n_train = 8
n_val = 2
n_test = 4
[model]
backbone = "vilt"
pretrained = "tiny"
peft = "houlsby"
adapter_width = 8
[sim]
rounds = 1
faults = [{client = 0, round = 1, kind = "drop"}, {client = 1, round = 1, kind = "drop"}]
[train]
local_steps = 1
""")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["run", "--config", str(tmp_path / "dead.toml"), "--engine",
                                   "flower", "--out", str(out)])
    assert res.exit_code == 1, res.output
    saved = json.loads((out / "results.json").read_text())
    assert saved["status"] == "failed" and "every round was skipped" in saved["failure"]
    assert saved["history"][0]["failed"] and "run failed" in res.output
