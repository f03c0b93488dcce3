"""Centralized (pooled data) baseline and experiment-level config plumbing."""

from __future__ import annotations

import pytest

from fedpia.client import TrainConfig
from fedpia.data import get_setting
from fedpia.experiments import ExperimentConfig, apply_variant, get_preset
from fedpia.sim import SimConfig
from fedpia.sim.centralized import run_centralized

TINY_TRAIN = TrainConfig(lr=2e-3, batch_size=8, local_steps=2, warmup_frac=0.0)


def test_centralized_trains_on_pooled_data_and_scores_every_client(tiny_model, tiny_data, initial_adapter):
    tiny_model.load_trainable_state(initial_adapter)
    hist = run_centralized(tiny_model, tiny_data, sim=SimConfig(rounds=2), train=TINY_TRAIN)
    assert len(hist) == 2
    assert set(hist[-1]["eval"]) == {c.name for c in tiny_data.clients}
    assert hist[-1]["diagnostics"]["pooled_train"] == sum(len(c.train) for c in tiny_data.clients)
    assert all(0.0 <= r["personalized"]["accuracy"] <= 1.0 for r in hist[-1]["eval"].values())


def test_centralized_refuses_mixed_tasks(tiny_model):
    mixed = get_setting("t5-synthetic", seed=0, n_train=8, n_val=2, n_test=4)
    with pytest.raises(ValueError, match="one task kind"):
        run_centralized(tiny_model, mixed, sim=SimConfig(rounds=1), train=TINY_TRAIN)


def test_config_overrides_and_errors():
    cfg = get_preset("demo").with_overrides(["sim.rounds=3", "strategy_options.gamma=2.5", "model.peft=lora"])
    assert cfg.sim.rounds == 3 and cfg.strategy_options["gamma"] == 2.5 and cfg.model["peft"] == "lora"
    with pytest.raises(ValueError, match="unknown field 'roundz' in sim"):
        get_preset("demo").with_overrides(["sim.roundz=3"])
    with pytest.raises(ValueError, match="key=value"):
        get_preset("demo").with_overrides(["sim.rounds"])
    with pytest.raises(ValueError, match="engine='gpu'"):
        ExperimentConfig(engine="gpu")
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        get_preset("nope")
    bad = get_preset("demo").with_overrides(["strategy_options.gama=1"])
    with pytest.raises(ValueError, match="gama"):
        bad.validate()
    with pytest.raises(ValueError, match="backbone"):
        get_preset("demo").with_overrides(["model.backbone=resnet"]).validate()
    assert apply_variant(get_preset("demo"), "fedavg-lora").model["peft"] == "lora"
    assert apply_variant(get_preset("demo"), "fedpia-server-only").strategy_options["client_pia"] is False
    with pytest.raises(ValueError, match="unknown method"):
        apply_variant(get_preset("demo"), "fedmagic")
