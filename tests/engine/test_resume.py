"""Checkpoint/resume: a run killed mid-way and resumed ends with the same results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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
    assert _run(killed).wait(timeout=600) == 0
    assert p.wait(timeout=600) == 0
    a = json.loads((full / "results.json").read_text())
    b = json.loads((killed / "results.json").read_text())
    assert [h["eval"] for h in a["history"]] == [h["eval"] for h in b["history"]]
    ta = load_file(str(full / "checkpoints" / "checkpoint" / "tensors.safetensors"))
    tb = load_file(str(killed / "checkpoints" / "checkpoint" / "tensors.safetensors"))
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
