"""DP wired into the round layer (in-process engine): local DP in the client step, central DP in
the server step, σ for a target ε resolved once, the ledger in every round record, in
results.json and report.md, and carried across a resume."""

from __future__ import annotations

import json
import math

import pytest
import torch

from fedpia.experiments import ExperimentConfig, run_experiment
from fedpia.privacy import DPConfig, clip_update, global_norm, local_epsilon, update_delta
from fedpia.rounds import (
    build_run,
    client_step,
    initial_client_state,
    new_ledger,
    server_step,
)


def _config(strategy="fedpia", *, dp=None, rounds=2, **sim):
    return ExperimentConfig.from_dict({
        "name": "dp", "setting": "synthetic", "strategy": strategy,
        "setting_options": {"modalities": ["x-ray", "ct"], "n_train": 16, "n_val": 4, "n_test": 8,
                            "image_size": 32},
        "model": {"backbone": "vilt", "pretrained": "tiny", "peft": "houlsby", "adapter_width": 8},
        "sim": {"rounds": rounds, **sim}, "train": {"lr": 2e-3, "batch_size": 8, "local_steps": 1},
        "dp": dp or {},
    })


def _one_client_round(cfg, *, secret=None):
    run = build_run(cfg)
    rules, rt = run.rules(), run.runtime(0)
    payload = run.strategy.client_payload(run.strategy.server_init(run.initial_adapter))
    update, cstate = client_step(rules, rt, payload, initial_client_state(rt), 1,
                                 noise_secret=secret)
    return update, cstate, payload


def test_local_dp_upload_is_clipped_and_the_client_keeps_its_own_adapter():
    cfg = _config(dp={"mode": "local", "clip": 1e-3, "noise_multiplier": 0.0})
    update, cstate, payload = _one_client_round(cfg)
    received = payload["adapter"]
    own = global_norm(update_delta(cstate.adapter, received))
    assert own > 1e-2  # the client's (un-noised) adapter moved well beyond C ...
    assert global_norm(update_delta(update.state, received)) == pytest.approx(1e-3, rel=1e-4)
    clipped, _ = clip_update(update_delta(cstate.adapter, received), 1e-3)  # ... the upload is
    assert all(torch.allclose(update.state[k] - received[k], clipped[k], atol=1e-6) for k in clipped)
    assert "loss" not in update.metrics and "start_shift" not in update.metrics  # not private
    assert update.metrics["rounds_trained"] == 1


def test_local_dp_noise_is_seeded_in_simulation_and_a_node_secret_changes_it():
    cfg = _config(dp={"mode": "local", "clip": 1e-3, "noise_multiplier": 2.0})
    a, _, payload = _one_client_round(cfg)
    b, _, _ = _one_client_round(cfg)
    c, _, _ = _one_client_round(cfg, secret=b"node-local")
    assert all(torch.equal(a.state[k], b.state[k]) for k in a.state)  # seeded: reproducible
    assert any(not torch.equal(a.state[k], c.state[k]) for k in a.state)
    noise = torch.cat([(a.state[k] - payload["adapter"][k]).flatten() for k in a.state])
    assert float(noise.std()) == pytest.approx(2.0 * 1e-3, rel=0.05)  # σ·C (signal ≤ C spread)


def test_central_dp_is_the_clipped_noised_mean_and_fedpia_is_refused():
    with pytest.raises(ValueError, match="dp.mode='central'.*fedpia"):
        build_run(_config("fedpia", dp={"mode": "central", "noise_multiplier": 1.0}))
    cfg = _config("fedavg", dp={"mode": "central", "clip": 1e-3, "noise_multiplier": 0.0})
    run = build_run(cfg)
    rules = run.rules()
    server = run.strategy.server_init(run.initial_adapter)
    payload = run.strategy.client_payload(server)
    ups = [client_step(rules, run.runtime(i), payload, initial_client_state(run.runtime(i)), 1)[0]
           for i in range(2)]
    out = server_step(rules, server, 1, chosen=[(0, ups[0].client), (1, ups[1].client)],
                      updates=ups, failed={}, payload=payload, ledger=new_ledger(rules, noise="t"))
    g = server.adapter
    clipped = [clip_update(update_delta(u.state, g), 1e-3)[0] for u in ups]
    for k in g:  # θ_G + (1/k) Σ clip_C(Δ_i), k = 2 clients per round
        assert torch.allclose(out.server.adapter[k], g[k] + (clipped[0][k] + clipped[1][k]) / 2,
                              atol=1e-7)
    assert out.record["diagnostics"]["dp"]["denominator"] == 2.0
    assert out.record["privacy"]["mode"] == "central" and out.ledger.rounds == 1


def test_target_epsilon_is_resolved_once_for_the_planned_rounds():
    cfg = _config(dp={"mode": "local", "target_epsilon": 5.0}, rounds=3)
    rules = build_run(cfg).rules()
    assert rules.dp.target_epsilon is None and rules.dp.noise_multiplier > 0
    assert 4.9 <= local_epsilon(rules.dp, participations=3) <= 5.0


def test_dp_run_reports_epsilon_in_every_record_results_and_report(tmp_path):
    dp = {"mode": "local", "clip": 0.5, "noise_multiplier": 4.0}
    drop = [{"client": 1, "round": 2, "kind": "drop"}]  # client 1 uploads once, client 0 twice
    res = run_experiment(_config(dp=dp, faults=drop), out_dir=tmp_path / "run")
    names = list(res["data"])
    want = DPConfig(**dp)
    for rec, uploads in zip(res["history"], ({names[0]: 1, names[1]: 1}, {names[0]: 2, names[1]: 1}),
                            strict=True):
        per = rec["privacy"]["epsilon_per_client"]
        assert per == {n: pytest.approx(local_epsilon(want, participations=u)) for n, u in uploads.items()}
        assert rec["privacy"]["epsilon"] == max(per.values())
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["privacy"] == res["history"][-1]["privacy"] and saved["status"] == "completed"
    assert "NO real privacy" in saved["privacy"]["noise"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert f"ε = {saved['privacy']['epsilon']:.3f} at δ = 1e-05" in report and "NO real privacy" in report


class _Stop(Exception):
    pass


def test_resume_continues_the_ledger(tmp_path):
    cfg = _config("fedavg", dp={"mode": "central", "clip": 0.5, "noise_multiplier": 1.0}, rounds=3)
    full = run_experiment(cfg, out_dir=tmp_path / "full")

    def stop_in_round_3(event, info):  # a kill after round 2's checkpoint
        if event == "round_start" and info["round"] == 3:
            raise _Stop

    with pytest.raises(_Stop):
        run_experiment(cfg, out_dir=tmp_path / "cut", on_event=stop_in_round_3)
    meta = json.loads((tmp_path / "cut" / "checkpoints" / "checkpoint" / "meta.json").read_text())
    assert meta["privacy"]["rounds"] == 2
    resumed = run_experiment(cfg, out_dir=tmp_path / "cut", resume=True)
    assert resumed["privacy"] == full["privacy"] and resumed["privacy"]["rounds"] == 3
    eps = [h["privacy"]["epsilon"] for h in resumed["history"]]
    assert eps[0] < eps[1] < eps[2] and math.isfinite(eps[2])
    assert all(torch.equal(a, b) for a, b in zip(_adapter(tmp_path / "full"), _adapter(tmp_path / "cut"),
                                                 strict=True))


def _adapter(out):
    from safetensors.torch import load_file

    tensors = load_file(str(out / "checkpoints" / "checkpoint" / "tensors.safetensors"))
    return [tensors[k] for k in sorted(tensors) if k.startswith("server/adapter/")]
