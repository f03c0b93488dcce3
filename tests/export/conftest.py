"""Tiny finished runs (tiny minilm-vl backbone, synthetic data, 1-2 rounds) to export from."""

from __future__ import annotations

import pytest

from fedpia.experiments import ExperimentConfig, run_experiment

TINY = {"n_train": 8, "n_val": 2, "n_test": 4}
TRAIN = {"lr": 5e-3, "batch_size": 8, "local_steps": 2, "warmup_frac": 0.0}


def _run(tmp_path_factory, name: str, raw: dict) -> tuple:
    out = tmp_path_factory.mktemp(name) / "run"
    cfg = ExperimentConfig.from_dict({"name": name, "train": TRAIN, **raw})
    run_experiment(cfg, out_dir=out, loggers=())
    return out, cfg


@pytest.fixture(scope="session")
def mixed_run(tmp_path_factory):
    """FedPIA + Houlsby on t5-synthetic (2 VQA, 2 multiclass, 1 multilabel client), 2 rounds of
    2 sampled clients out of 5: some clients have trained, some never have."""
    return _run(tmp_path_factory, "mixed", {
        "setting": "t5-synthetic", "setting_options": TINY,
        "model": {"pretrained": "tiny", "peft": "houlsby", "adapter_width": 8},
        "strategy": "fedpia", "sim": {"rounds": 2, "seed": 1, "fraction_fit": 0.4}})


@pytest.fixture(scope="session")
def lora_dp_run(tmp_path_factory):
    """FedAvg + LoRA (rank 4) with central DP, 1 round, 2 VQA clients."""
    return _run(tmp_path_factory, "loradp", {
        "setting": "synthetic", "setting_options": {**TINY, "modalities": ["x-ray", "ct"]},
        "model": {"pretrained": "tiny", "peft": "lora", "lora_rank": 4, "lora_alpha": 8},
        "strategy": "fedavg", "sim": {"rounds": 1, "seed": 2},
        "dp": {"mode": "central", "clip": 1.0, "noise_multiplier": 0.5}})


@pytest.fixture(scope="session")
def flora_run(tmp_path_factory):
    """FLoRA (LoRA products merged into the base weights each round), 2 rounds, 2 clients."""
    return _run(tmp_path_factory, "flora", {
        "setting": "synthetic", "setting_options": {**TINY, "modalities": ["x-ray", "ct"]},
        "model": {"pretrained": "tiny", "peft": "lora", "lora_rank": 4, "lora_alpha": 8},
        "strategy": "flora", "sim": {"rounds": 2, "seed": 3}})
