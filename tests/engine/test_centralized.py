"""Centralized (pooled data) baseline and experiment-level config plumbing."""

from __future__ import annotations

import pytest
import torch

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


def test_train_epochs_follows_the_schedule_and_leaves_each_pass_loaded(tiny_model, tiny_data, initial_adapter):
    """The shared centralized epoch loop: lr per pass from the federated schedule, on_start
    before each pass, and after each yield the model holds exactly that pass's trained state
    (equal to running train_local by hand from the previous pass)."""
    from fedpia.client import encode_split, round_lr, train_local
    from fedpia.data import LabelSpace
    from fedpia.models import build_head
    from fedpia.sim.centralized import train_epochs

    samples = tiny_data.clients[0].train
    space = LabelSpace.from_samples(samples)
    enc = encode_split(tiny_model.processor, samples, space)
    cfg = TrainConfig(lr=2e-3, batch_size=8, local_steps=2, warmup_frac=0.5)
    head = build_head(enc.task, tiny_model.hidden_size, len(space), seed=0)
    head0 = {k: v.clone() for k, v in head.state_dict().items()}
    tiny_model.load_trainable_state(initial_adapter)
    calls, seen = [], []
    for epoch, lr, stats, seconds in train_epochs(tiny_model, head, enc, cfg=cfg, epochs=3,
                                                  seed_of=lambda e: 100 + e, on_start=calls.append):
        assert calls[-1] == epoch and lr == round_lr(cfg, epoch, 3) and seconds >= 0
        seen.append(({k: v.clone() for k, v in tiny_model.trainable_state().items()},
                     {k: v.clone() for k, v in head.state_dict().items()}, stats["loss"]))
    assert calls == [1, 2, 3]
    # replay by hand from the same start
    tiny_model.load_trainable_state(initial_adapter)
    head.load_state_dict(head0)
    adapter, hstate = tiny_model.trainable_state(), head0
    for epoch in (1, 2, 3):
        adapter, hstate, stats = train_local(tiny_model, head, enc, start=adapter, head_state=hstate, cfg=cfg,
                                             lr=round_lr(cfg, epoch, 3), seed=100 + epoch)
        want_a, want_h, want_loss = seen[epoch - 1]
        assert stats["loss"] == want_loss
        assert all(torch.equal(adapter[k], want_a[k]) for k in want_a)
        assert all(torch.equal(hstate[k], want_h[k]) for k in want_h)
    assert not all(torch.equal(seen[0][0][k], seen[2][0][k]) for k in seen[0][0])  # it trained
