"""Tiny model + tiny synthetic federation shared by the engine tests."""

from __future__ import annotations

import pytest

from fedpia.client import TrainConfig
from fedpia.data import get_setting
from fedpia.models import ModelConfig, build_model
from fedpia.sim import SimConfig, Simulator
from fedpia.strategies import build_strategy

TINY_TRAIN = TrainConfig(lr=2e-3, batch_size=8, local_steps=2, warmup_frac=0.0)


@pytest.fixture(scope="session")
def tiny_data():
    return get_setting("synthetic", seed=0, modalities=("x-ray", "ct", "fundus"),
                       n_train=24, n_val=4, n_test=12, image_size=32)


@pytest.fixture(scope="session")
def tiny_model():
    return build_model(ModelConfig(pretrained="tiny", backbone="vilt", peft="houlsby", adapter_width=8, seed=0))


@pytest.fixture(scope="session")
def initial_adapter(tiny_model):
    return tiny_model.trainable_state()


@pytest.fixture()
def make_sim(tiny_model, tiny_data, initial_adapter):
    def make(strategy="fedavg", *, rounds=2, data=None, train=TINY_TRAIN, robust=None, **sim_kw):
        strat = build_strategy(strategy) if isinstance(strategy, str) else strategy
        return Simulator(tiny_model, data or tiny_data, strat, sim=SimConfig(rounds=rounds, **sim_kw),
                         train=train, robust=robust, initial_adapter=initial_adapter)

    return make
