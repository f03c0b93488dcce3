"""Recorded adapter inputs (fedpia.models.InputRecorder / adapter_inputs / activations_from_inputs):
the token-pooled activation is the producer applied to the token-pooled input, so activations
computed from recorded inputs equal a forward pass's activations exactly, for every adapter kind."""

from __future__ import annotations

import pytest
import torch

from fedpia.align import permute_units, unit_groups
from fedpia.models import (
    ALIGNABLE,
    InputRecorder,
    ModelConfig,
    activations_from_inputs,
    adapter_activations,
    adapter_inputs,
    build_model,
)


def _random_state(state, seed):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) * 0.2 for k, v in state.items()}


@pytest.mark.parametrize("backbone", ["vilt", "minilm-vl"])
@pytest.mark.parametrize("peft", ALIGNABLE)
def test_activations_from_inputs_equal_a_forward(backbone, peft, real_inputs):
    model = build_model(ModelConfig(pretrained="tiny", backbone=backbone, peft=peft, adapter_width=8,
                                    lora_rank=4, phm_dim=4, seed=0)).eval()
    images, texts = real_inputs
    long_q = texts[1] + " " + " and ".join(["is the heart enlarged on this film"] * 2)
    batch = model.processor(images, [texts[0], long_q] + list(texts[2:]))  # padded batch
    local = _random_state(model.trainable_state(), seed=1)
    glob = _random_state(model.trainable_state(), seed=2)
    model.load_trainable_state(local)
    with torch.no_grad():
        want = adapter_activations(model, batch)
    xs = adapter_inputs(model, batch)
    assert set(xs) == {g.name for g in unit_groups(local)}
    got = activations_from_inputs(model, xs, local)
    assert set(got) == set(want)
    for name in want:
        assert got[name].shape == want[name].shape
        assert torch.allclose(got[name], want[name], atol=1e-5), (name, (got[name] - want[name]).abs().max())
    # another adapter on the same inputs: its own producer weights, the units permute along
    other = activations_from_inputs(model, xs, glob)
    assert any(not torch.allclose(other[n], got[n], atol=1e-3) for n in got)
    perms = {g.name: torch.randperm(g.width, generator=torch.Generator().manual_seed(3))
             for g in unit_groups(glob)}
    permuted = activations_from_inputs(model, xs, permute_units(glob, perms))
    for name, p in perms.items():
        assert torch.allclose(permuted[name], other[name][:, p], atol=1e-5)


def test_recorder_keeps_the_last_samples_and_matches_eval_inputs(real_inputs):
    model = build_model(ModelConfig(pretrained="tiny", backbone="minilm-vl", peft="houlsby",
                                    adapter_width=8, seed=0)).eval()
    images, texts = real_inputs
    first = model.processor(images[:2], texts[:2])
    second = model.processor(images[2:], texts[2:])
    with InputRecorder(model, keep=3) as rec, torch.no_grad():
        model(first)
        model(second)
    got = rec.inputs()
    n2 = second["input_ids"].shape[0]
    want_first, want_second = adapter_inputs(model, first), adapter_inputs(model, second)
    for name, x in got.items():
        assert x.shape[0] == 3  # the last 3 samples seen: 1 of the first batch, all of the second
        assert torch.allclose(x[-n2:], want_second[name], atol=1e-5)
        assert torch.allclose(x[:1], want_first[name][-1:], atol=1e-5)
    # hooks are removed on exit: later forwards are not recorded
    with torch.no_grad():
        model(first)
    assert all(torch.equal(rec.inputs()[n], got[n]) for n in got)
    with pytest.raises(ValueError, match="keep"):
        InputRecorder(model, keep=0)


def test_missing_inputs_are_a_clear_error(real_inputs):
    model = build_model(ModelConfig(pretrained="tiny", backbone="vilt", peft="houlsby", adapter_width=8))
    xs = adapter_inputs(model, model.processor(*real_inputs))
    name = sorted(xs)[0]
    del xs[name]
    with pytest.raises(ValueError, match="no recorded inputs"):
        activations_from_inputs(model, xs, model.trainable_state())
