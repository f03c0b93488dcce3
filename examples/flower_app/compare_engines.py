"""Wall time of the same tiny FedPIA run on the in-process simulator and on Flower + Ray.

    .venv/bin/python examples/flower_app/compare_engines.py [--rounds 2] [--strategy fedpia]

Prints both wall times and whether the final global adapters are bit-identical (the in-process
run uses one torch thread, like the Ray actors with num_cpus=1).
"""

from __future__ import annotations

import argparse
import logging
import time

import torch

from fedpia.experiments import ExperimentConfig
from fedpia.flower import run_flower_simulation
from fedpia.rounds import build_run
from fedpia.sim import Simulator


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--strategy", default="fedpia")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cfg = ExperimentConfig.from_dict({
        "setting": "synthetic",
        "setting_options": {"modalities": ["x-ray", "ct", "fundus"]},
        "model": {"backbone": "vilt", "pretrained": "tiny", "peft": "houlsby", "adapter_width": 8},
        "strategy": args.strategy,
        "sim": {"rounds": args.rounds, "seed": 0},
        "train": {"lr": 2e-3, "batch_size": 8, "local_steps": 2, "warmup_frac": 0.0},
    })
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    state = Simulator.from_run(build_run(cfg)).run()
    t_inproc = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = run_flower_simulation(cfg)  # flwr run on a private --simulation SuperLink
    t_flower = time.perf_counter() - t0
    same = all(torch.equal(state.server.adapter[k], v) for k, v in res.server.adapter.items())
    print(f"in-process: {t_inproc:.1f} s   flower+ray: {t_flower:.1f} s   identical global: {same}")


if __name__ == "__main__":
    main()
