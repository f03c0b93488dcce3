"""Tiny FedPIA / FedAvg runs on Flower's Ray simulation engine and in the in-process simulator.

Ray start-up is the slow part (~5 s per simulation), so each Flower run happens once per test
session and is shared by every assertion that needs it.
"""

from __future__ import annotations

import logging

import pytest
import torch

from fedpia.client import TrainConfig
from fedpia.flower import FlowerRunConfig, run_flower_simulation
from fedpia.sim import SimConfig

TINY_SETTING = {
    "modalities": ("x-ray", "ct", "fundus"),
    "n_train": 24,
    "n_val": 4,
    "n_test": 12,
    "image_size": 32,
}
TINY_MODEL = {"backbone": "vilt", "pretrained": "tiny", "peft": "houlsby", "adapter_width": 8}
TINY_TRAIN = TrainConfig(lr=2e-3, batch_size=8, local_steps=2, warmup_frac=0.0)


def tiny_config(
    strategy: str = "fedpia", *, rounds: int = 2, seed: int = 0, **kw
) -> FlowerRunConfig:
    return FlowerRunConfig(
        setting="synthetic",
        setting_options=dict(TINY_SETTING),
        model=dict(TINY_MODEL),
        strategy=strategy,
        sim=SimConfig(rounds=rounds, seed=seed, **kw),
        train=TINY_TRAIN,
    )


def run_inprocess(cfg: FlowerRunConfig):
    """The same run on the in-process simulator (fresh model, same data and seed)."""
    from fedpia.data import get_setting
    from fedpia.models import build_model
    from fedpia.sim import Simulator

    model = build_model(cfg.model_config())
    data = get_setting(cfg.setting, seed=cfg.sim.seed, **cfg.setting_options)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the Ray actors (num_cpus=1 -> OMP_NUM_THREADS=1)
    try:
        return Simulator(model, data, cfg.build_strategy(), sim=cfg.sim, train=cfg.train).run()
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def fedpia_runs():
    cfg = tiny_config("fedpia")
    history, strategy = run_flower_simulation(cfg, return_strategy=True)
    return {"cfg": cfg, "flower": (history, strategy), "inprocess": run_inprocess(cfg)}


@pytest.fixture(scope="session")
def fedavg_runs():
    cfg = tiny_config("fedavg")
    history, strategy = run_flower_simulation(cfg, return_strategy=True)
    return {"cfg": cfg, "flower": (history, strategy), "inprocess": run_inprocess(cfg)}


@pytest.fixture(scope="session")
def corrupted_run():
    """FedAvg, 1 round, partition 1 uploads NaN: rejected, the round completes."""
    from fedpia.flower.faults import corrupt_update_mod

    cfg = tiny_config("fedavg", rounds=1)
    mod = corrupt_update_mod(partitions=[1], rounds=[1])
    history, strategy = run_flower_simulation(cfg, client_mods=[mod], return_strategy=True)
    return cfg, history, strategy


@pytest.fixture(autouse=True)
def _quiet_flower():
    logging.getLogger("flwr").setLevel(logging.WARNING)
    yield
