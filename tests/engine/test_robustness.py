"""Rounds no single client can break, on the real (tiny) model: bounded influence of a 1000x
client, a rejected upload = a dropout bit for bit, and runs that survive full dropout (and
resume past it)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from fedpia.experiments import ExperimentConfig, run_experiment
from fedpia.rounds import RobustConfig


def _move(state, start) -> float:
    return math.sqrt(sum(float((state.server.adapter[k] - start[k]).norm() ** 2) for k in start))


@pytest.mark.parametrize("strategy", ["fedavg", "fedpia"])
def test_1000x_client_moves_global_at_most_2x_an_honest_round(make_sim, initial_adapter, tiny_data,
                                                             strategy):
    attack = [{"client": 1, "round": 1, "kind": "scale:1000"}]
    honest = _move(make_sim(strategy, rounds=1).run(), initial_adapter)
    bounded = make_sim(strategy, rounds=1, faults=attack).run()
    unbounded = make_sim(strategy, rounds=1, faults=attack, robust=RobustConfig(norm_bound="off")).run()
    rec, victim = bounded.history[-1], tiny_data.clients[1].name
    assert rec["faults"] == {victim: ["scale:1000"]} and list(rec["influence"]["clipped"]) == [victim]
    assert _move(bounded, initial_adapter) <= 2.0 * honest
    assert _move(unbounded, initial_adapter) > 50 * honest  # what the bound prevents


@pytest.mark.parametrize("strategy", ["fedavg", "fedpia"])
def test_rejected_upload_equals_dropout_bit_for_bit(make_sim, strategy):
    rejected = make_sim(strategy, rounds=1, faults=[{"client": 1, "round": 1, "kind": "inf"}]).run()
    dropped = make_sim(strategy, rounds=1, faults=[{"client": 1, "round": 1, "kind": "drop"}]).run()
    (victim,) = rejected.history[0]["rejected"]
    assert dropped.history[0]["failed"] == {victim: "ClientFailure: injected fault: drop"}
    a, b = rejected.server.adapter, dropped.server.adapter
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def _config(**sim):
    return ExperimentConfig.from_dict({
        "name": "dropout", "setting": "synthetic", "strategy": "fedavg",
        "setting_options": {"modalities": ["x-ray", "ct"], "n_train": 16, "n_val": 4, "n_test": 8,
                            "image_size": 32},
        "model": {"backbone": "vilt", "pretrained": "tiny", "peft": "houlsby", "adapter_width": 8},
        "sim": sim, "train": {"lr": 2e-3, "batch_size": 8, "local_steps": 1},
    })


def test_every_client_failing_still_writes_results(tmp_path):
    cfg = _config(rounds=2, failure_prob=1.0)
    res = run_experiment(cfg, out_dir=tmp_path / "all")
    assert (tmp_path / "all" / "results.json").is_file()
    assert res["summary"]["skipped_rounds"] == [1, 2]
    assert all("2/2 clients failed" in h["skipped"] for h in res["history"])
    assert set(res["summary"]["mean"]) == {"global"}  # nobody trained: the global view only


class _Stop(Exception):
    pass


def test_resume_continues_past_a_skipped_round(tmp_path):
    drop_all = [{"client": k, "round": 2, "kind": "drop"} for k in (0, 1)]
    cfg = _config(rounds=3, faults=drop_all)
    full = run_experiment(cfg, out_dir=tmp_path / "full")
    assert full["summary"]["skipped_rounds"] == [2]

    def stop_in_round_3(event, info):  # a kill after round 2's checkpoint
        if event == "round_start" and info["round"] == 3:
            raise _Stop

    with pytest.raises(_Stop):
        run_experiment(cfg, out_dir=tmp_path / "cut", on_event=stop_in_round_3)
    meta = json.loads((tmp_path / "cut" / "checkpoints" / "checkpoint" / "meta.json").read_text())
    assert meta["round"] == 2 and meta["history"][-1]["skipped"]
    resumed = run_experiment(cfg, out_dir=tmp_path / "cut", resume=True)
    assert [h["eval"] for h in resumed["history"]] == [h["eval"] for h in full["history"]]
    assert [h["skipped"] is not None for h in resumed["history"]] == [False, True, False]
