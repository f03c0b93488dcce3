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

from fedpia.client import TrainConfig
from fedpia.data import get_setting
from fedpia.flower import FlowerRunConfig, run_flower_simulation
from fedpia.models import build_model
from fedpia.sim import SimConfig, Simulator


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--strategy", default="fedpia")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cfg = FlowerRunConfig(
        setting="synthetic",
        setting_options={"modalities": ("x-ray", "ct", "fundus")},
        model={"backbone": "vilt", "pretrained": "tiny", "peft": "houlsby", "adapter_width": 8},
        strategy=args.strategy,
        sim=SimConfig(rounds=args.rounds, seed=0),
        train=TrainConfig(lr=2e-3, batch_size=8, local_steps=2, warmup_frac=0.0),
    )
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    model = build_model(cfg.model_config())
    data = get_setting(cfg.setting, seed=cfg.sim.seed, **cfg.setting_options)
    state = Simulator(model, data, cfg.build_strategy(), sim=cfg.sim, train=cfg.train).run()
    t_inproc = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, strategy = run_flower_simulation(cfg, return_strategy=True)
    t_flower = time.perf_counter() - t0
    same = all(torch.equal(state.server.adapter[k], v) for k, v in strategy.server.adapter.items())
    print(f"in-process: {t_inproc:.1f} s   flower+ray: {t_flower:.1f} s   identical global: {same}")


if __name__ == "__main__":
    main()
