"""Shared by the FedPIA measurement scripts (bench_probe, bench_independent): build a simulator
from a preset plus ``--set`` overrides, and describe the run (command, git, load, versions)."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from fedpia.experiments import get_preset

ROOT = Path(__file__).resolve().parents[1]


def build(preset: str, overrides: list[str], data_root: str | None):
    """``(cfg, model, data, strategy, Simulator)`` for ``preset`` with ``overrides``, assembled by
    the round layer (:func:`fedpia.rounds.build_run`: derived knobs, client heads, probe size)."""
    from fedpia.rounds import build_run
    from fedpia.sim import Simulator

    sets = list(overrides) + ([f"data_root={data_root}"] if data_root else [])
    cfg = get_preset(preset).with_overrides(sets)
    cfg.validate()
    run = build_run(cfg)
    sim = Simulator.from_run(run)
    return cfg, run.model, run.data, run.strategy, sim


def describe(argv: list[str] | None, script: str) -> dict[str, Any]:
    """Command line, git hash, load averages, thread count and versions of a measurement."""
    args = sys.argv[1:] if argv is None else argv
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                         text=True).stdout.strip()
    return {"command": " ".join(["python", script, *map(shlex.quote, args)]), "git": git,
            "loadavg_start": os.getloadavg(), "torch_threads": torch.get_num_threads(),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__}
