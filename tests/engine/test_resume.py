"""Checkpoint/resume: a run killed mid-way and resumed ends with the same results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

JOB = """
import sys
from fedpia.experiments import ExperimentConfig, run_experiment
cfg = ExperimentConfig.from_dict({
    "name": "resume", "setting": "synthetic",
    "setting_options": {"modalities": ["x-ray", "ct"], "n_train": 16, "n_val": 4, "n_test": 8},
    "model": {"backbone": "vilt", "pretrained": "tiny", "peft": "houlsby", "adapter_width": 8},
    "strategy": "fedpia", "sim": {"rounds": 5, "seed": 3},
    "train": {"lr": 2e-3, "batch_size": 8, "local_steps": 2},
})
run_experiment(cfg, out_dir=sys.argv[1], resume=True)
"""


def _run(out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.Popen([sys.executable, "-c", JOB, str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _ckpt_round(out: Path) -> int:
    meta = out / "checkpoints" / "checkpoint" / "meta.json"
    try:
        return json.loads(meta.read_text())["round"]
    except (OSError, ValueError):
        return 0


def _csv_without_timings(out: Path) -> list[dict[str, str]]:
    import csv

    with (out / "rounds.csv").open(newline="") as f:
        return [{k: v for k, v in row.items() if not k.endswith("_time")} for row in csv.DictReader(f)]


def test_kill_and_resume_matches_uninterrupted(tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    p = _run(full)
    q = _run(killed)
    deadline = time.time() + 300
    while _ckpt_round(killed) < 2 and time.time() < deadline and q.poll() is None:
        time.sleep(0.05)
    assert q.poll() is None, "job ended before it could be killed"
    q.send_signal(signal.SIGKILL)
    q.wait()
    assert 2 <= _ckpt_round(killed) < 5
    assert not (killed / "results.json").exists()
    logged = {int(row["round"]) for row in _csv_without_timings(killed)}  # flushed before the kill
    assert set(range(1, _ckpt_round(killed) + 1)) <= logged
    assert _run(killed).wait(timeout=600) == 0
    assert p.wait(timeout=600) == 0
    a = json.loads((full / "results.json").read_text())
    b = json.loads((killed / "results.json").read_text())
    assert [h["eval"] for h in a["history"]] == [h["eval"] for h in b["history"]]
    # rounds.csv survived the kill and the resume appended to it: no round twice, same numbers
    assert _csv_without_timings(killed) == _csv_without_timings(full)
    assert len(_csv_without_timings(full)) == 5 * 2 * 2  # rounds x clients x views
    ta = load_file(str(full / "checkpoints" / "checkpoint" / "tensors.safetensors"))
    tb = load_file(str(killed / "checkpoints" / "checkpoint" / "tensors.safetensors"))
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


TINY = {
    "name": "extend", "setting": "synthetic",
    "setting_options": {"modalities": ["x-ray", "ct"], "n_train": 16, "n_val": 4, "n_test": 8},
    "model": {"backbone": "vilt", "pretrained": "tiny", "peft": "houlsby", "adapter_width": 8},
    "strategy": "fedpia", "sim": {"rounds": 2, "seed": 3},
    "train": {"lr": 2e-3, "batch_size": 8, "local_steps": 2, "warmup_frac": 0.4},
}


def test_round_lr_closed_form_and_the_schedule_of_an_extended_run():
    from fedpia.client import TrainConfig, round_lr

    cfg = TrainConfig(lr=1.0, warmup_frac=0.1, local_steps=1)  # R = 10: W = 1 warm-up round
    lrs = [round_lr(cfg, r, 10) for r in range(1, 11)]
    assert lrs[0] == 0.5 and lrs[1] == 1.0  # warm-up r/(W+1), then (R-r+1)/(R-W)
    assert lrs[-1] == 1 / 9 and all(a > b for a, b in zip(lrs[1:], lrs[2:], strict=False))
    # extended to 14 rounds with the schedule of the first 10: rounds 1..10 as before, then the last lr
    ext = TrainConfig(lr=1.0, warmup_frac=0.1, local_steps=1, schedule_rounds=10)
    assert [round_lr(ext, r, 14) for r in range(1, 15)] == lrs + [1 / 9] * 4
    with pytest.raises(ValueError, match="train.schedule_rounds must be >= 0"):
        TrainConfig(schedule_rounds=-1)


def test_resume_extends_a_finished_run(tmp_path):
    """R=2 -> 3 rounds: the first two rounds are the saved ones, one more round follows at the
    lr of round 2, and the result equals the config it saves (rounds=3, schedule_rounds=2) run
    from scratch; any other change, and fewer rounds, are still refused."""
    from fedpia.client import TrainConfig, round_lr
    from fedpia.experiments import ExperimentConfig, run_experiment

    base = ExperimentConfig.from_dict(TINY)
    out = tmp_path / "run"
    first = run_experiment(base, out_dir=out)
    more = base.with_overrides(["sim.rounds=3"])
    ext = run_experiment(more, out_dir=out, resume=True)
    assert len(ext["history"]) == 3
    assert [h["eval"] for h in ext["history"][:2]] == [h["eval"] for h in first["history"]]
    assert [h["clients"] for h in ext["history"][:2]] == [h["clients"] for h in first["history"]]
    lr2 = round_lr(TrainConfig(**TINY["train"]), 2, 2)
    assert {c["lr"] for c in ext["history"][2]["clients"].values()} == {lr2}
    saved = json.loads((out / "config.json").read_text())
    assert (saved["sim"]["rounds"], saved["train"]["schedule_rounds"]) == (3, 2)
    assert json.loads(json.dumps(ext["config"])) == saved
    fresh = run_experiment(ExperimentConfig.from_dict(saved), out_dir=tmp_path / "fresh")
    assert [h["eval"] for h in fresh["history"]] == [h["eval"] for h in ext["history"]]
    # the same command again: finished, nothing more runs; then extend the extension (4 rounds)
    again = run_experiment(more, out_dir=out, resume=True)
    assert [h["eval"] for h in again["history"]] == [h["eval"] for h in ext["history"]]
    four = run_experiment(base.with_overrides(["sim.rounds=4"]), out_dir=out, resume=True)
    assert len(four["history"]) == 4 and four["config"]["train"]["schedule_rounds"] == 2
    assert four["history"][3]["clients"]["client0-x-ray-vqa"]["lr"] == lr2
    for sets, needle in ((["sim.rounds=2"], r"sim.rounds: 4 -> 2.*\(sim.rounds may only grow"),
                         (["sim.rounds=5", "sim.seed=4"], "sim.seed: 3 -> 4"),
                         (["sim.rounds=5", "train.schedule_rounds=5"], "train.schedule_rounds: 2 -> 5"),
                         (["sim.rounds=5", "train.lr=0.1"], "train.lr: 0.002 -> 0.1")):
        with pytest.raises(ValueError, match=needle):
            run_experiment(base.with_overrides(sets), out_dir=out, resume=True)
    assert len(json.loads((out / "results.json").read_text())["history"]) == 4
