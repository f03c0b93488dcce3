"""The deployment rules of the Flower apps, without processes (Flower's own round loop over a
fake Grid): node identity from authenticated keys, site-local data, the operator's output
folder, failed runs raising, DP on the Flower engine, and a ClientApp import that loads nothing
heavy."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
import torch
from flower_helpers import FakeGrid, run_fake_flower, run_inprocess, tiny_config

from fedpia.deploy.operator import ExpectedClient, OperatorConfig
from fedpia.flower.server_app import check_flower_config, serve

HEAVY = ("torch", "transformers", "ot", "pandas", "opacus", "scipy", "sklearn", "fedpia.models",
         "fedpia.rounds", "fedpia.strategies")
SITE = {"data-format": "synthetic:x-ray", "data-n-train": 24, "data-n-val": 4, "data-n-test": 12}


def test_client_app_import_loads_nothing_heavy():
    code = ("import json, sys, fedpia.flower.client_app as m; from flwr.clientapp import ClientApp;"
            "print(json.dumps([isinstance(m.app, ClientApp), sorted(sys.modules)]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    is_app, modules = json.loads(out.stdout.strip().splitlines()[-1])
    assert is_app
    assert [m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY] == []


def _operator(tmp_path, names=("hospital-a", "hospital-b")):
    return OperatorConfig(tmp_path / "runs", tuple(ExpectedClient(n, f"KEY-{n}".encode())
                                                   for n in names))


def test_nodes_are_their_keys_a_rogue_cannot_stand_in_for_an_offline_hospital(
        tmp_path, task_identity, caplog):
    """hospital-b is offline; a node with an unlisted key (which would gladly serve) is ignored:
    hospital-b's sampled round counts as failed, the rogue gets no message."""
    cfg = tiny_config("fedpia", rounds=1).with_overrides(["flower.timeout=1.0"])  # wait 1 s for b
    grid = FakeGrid(cfg, 2, node_configs=[SITE, SITE], keys=[b"KEY-hospital-a", b"ROGUE"])
    with caplog.at_level(logging.WARNING):
        strategy = run_fake_flower(cfg, operator=_operator(tmp_path), grid=grid)
    (rec,) = strategy.history
    assert rec["failed"] == {"hospital-b": "offline: no node authenticated as this client"}
    assert list(rec["clients"]) == ["hospital-a"] and list(rec["eval"]) == ["hospital-a"]
    assert rec["skipped"] is None and {n for n, _ in grid.sent} == {100}
    assert "ignoring node 101" in caplog.text and "starting without ['hospital-b']" in caplog.text


def test_site_nodes_train_on_their_own_data_under_server_given_names(tmp_path, task_identity):
    cfg = tiny_config("fedpia", rounds=2)
    keys = [b"KEY-hospital-b", b"KEY-hospital-a"]  # node order does not matter: keys do
    grid = FakeGrid(cfg, 2, node_configs=[SITE, {**SITE, "data-format": "synthetic:ct"}],
                    keys=keys)
    strategy = run_fake_flower(cfg, operator=_operator(tmp_path), grid=grid)
    for rec in strategy.history:
        assert rec["skipped"] is None and list(rec["clients"]) == ["hospital-a", "hospital-b"]
        assert {int(m["rounds_trained"]) for m in rec["clients"].values()} == {rec["round"]}
    # the ct site serves hospital-a (its key), its node trained 24 examples of its own data
    assert grid.contexts[101].state.config_records["fedpia/client/meta"]["rounds_trained"] == 2


def test_site_nodes_keep_the_recorded_probe_inputs_between_rounds(tmp_path, task_identity, monkeypatch):
    """probe=recorded on Flower nodes: round 2 aligns on the inputs recorded in round 1 and kept
    in the node's own state (a fallback probe forward would call adapter_inputs and fail)."""
    import fedpia.models

    cfg = tiny_config("fedpia", rounds=2).with_overrides(["strategy_options.probe=recorded"])
    grid = FakeGrid(cfg, 2, node_configs=[SITE, {**SITE, "data-format": "synthetic:ct"}],
                    keys=[b"KEY-hospital-b", b"KEY-hospital-a"])

    def no_fallback(*a, **k):
        raise AssertionError("the node lost its recording: fallback probe forward")

    monkeypatch.setattr(fedpia.models, "adapter_inputs", no_fallback)
    strategy = run_fake_flower(cfg, operator=_operator(tmp_path), grid=grid)
    last = strategy.history[-1]
    assert last["round"] == 2 and last["skipped"] is None
    assert all("pia" in m for m in last["clients"].values())  # the client step ran in round 2
    for node in (100, 101):
        assert "fedpia/client/extra/probe_inputs" in grid.contexts[node].state.array_records


def test_deployment_refuses_run_config_data_paths_and_size_mismatch(tmp_path):
    op = _operator(tmp_path)
    with pytest.raises(ValueError, match="data_root.*refused"):
        check_flower_config(tiny_config().with_overrides(["data_root='/hospital/data'"]), op)
    with pytest.raises(ValueError, match="flower.num_clients=3 but the server operator lists 2"):
        check_flower_config(tiny_config().with_overrides(["flower.num_clients=3"]), op)
    with pytest.raises(ValueError, match="sim.min_clients=3 but the server operator lists 2"):
        check_flower_config(tiny_config().with_overrides(["sim.min_clients=3"]), op)
    check_flower_config(tiny_config().with_overrides(["data_root='/x'"]),
                        OperatorConfig(tmp_path))  # simulation: partitions of a preset


def test_serve_writes_under_the_operator_run_dir_and_raises_when_every_round_skipped(
        tmp_path, task_identity):
    op = OperatorConfig(tmp_path / "runs")
    ok = tiny_config("fedavg", rounds=1)
    serve(FakeGrid(ok, 3), ok, op, run_id=7)
    res = json.loads((tmp_path / "runs" / "7" / "results.json").read_text())
    assert res["status"] == "completed" and res["run_id"] == 7 and len(res["history"]) == 1
    assert (tmp_path / "runs" / "7" / "global_adapter.safetensors").is_file()
    dead = tiny_config("fedavg", rounds=1, faults=[{"client": k, "round": 1, "kind": "drop"}
                                                   for k in range(3)])
    with pytest.raises(RuntimeError, match="every round was skipped"):
        serve(FakeGrid(dead, 3), dead, op, run_id=8)
    res = json.loads((tmp_path / "runs" / "8" / "results.json").read_text())
    assert res["status"] == "failed" and "3/3 clients failed" in res["failure"]


DP = [{"client": 1, "round": 2, "kind": "drop"}]


def test_flower_and_inprocess_report_the_same_epsilon_with_node_noise(task_identity):
    cfg = tiny_config("fedpia", rounds=2, faults=DP).with_overrides(
        ["dp.mode=local", "dp.clip=0.5", "dp.noise_multiplier=4.0"])
    flower, ref = run_fake_flower(cfg), run_inprocess(cfg)
    eps = [[h["privacy"][k] for k in ("epsilon", "epsilon_per_client", "rounds")]
           for h in flower.history]
    assert eps == [[h["privacy"][k] for k in ("epsilon", "epsilon_per_client", "rounds")]
                   for h in ref.history]
    assert eps[1][1][flower.names[1]] < eps[1][1][flower.names[0]]  # one upload fewer
    assert "NO real privacy" in ref.history[0]["privacy"]["noise"]
    assert "node-local" not in ref.history[0]["privacy"]["noise"]
    assert "OS entropy" in flower.history[0]["privacy"]["noise"]
    a, b = flower.server.adapter, ref.server.adapter  # nodes do not use the seeded noise
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_node_secret_file_makes_its_noise_reproducible_and_the_floor_is_enforced(
        tmp_path, task_identity):
    cfg = tiny_config("fedpia", rounds=1).with_overrides(
        ["dp.mode=local", "dp.clip=0.5", "dp.noise_multiplier=4.0"])
    secret = tmp_path / "secret"
    secret.write_bytes(bytes(range(32)))
    confs = [{"partition-id": k, "dp-secret-file": str(secret)} for k in range(3)]
    one = run_fake_flower(cfg, grid=FakeGrid(cfg, 3, node_configs=confs))
    two = run_fake_flower(cfg, grid=FakeGrid(cfg, 3, node_configs=confs))
    assert all(torch.equal(one.server.adapter[k], two.server.adapter[k]) for k in one.server.adapter)
    floor = [{"partition-id": 0, "dp-min-noise": 8.0}, {"partition-id": 1}, {"partition-id": 2}]
    (rec,) = run_fake_flower(cfg, grid=FakeGrid(cfg, 3, node_configs=floor)).history
    assert "noise multiplier >= 8.0" in rec["failed"][one.names[0]] and rec["skipped"] is None
