"""Permuting adapter hidden units (fedpia.align.permute_units) leaves the model's function
unchanged, and adapter_activations permutes along (columns follow the units)."""

from __future__ import annotations

import pytest
import torch

from fedpia.align import permute_units, unit_groups
from fedpia.models import ALIGNABLE, ModelConfig, adapter_activations, build_model


def _random_state(state, seed):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) * 0.2 for k, v in state.items()}


def _random_perms(groups, seed):
    g = torch.Generator().manual_seed(seed)
    return {grp.name: torch.randperm(grp.width, generator=g) for grp in groups}


@pytest.mark.parametrize("backbone", ["vilt", "blip", "clip", "minilm-vl"])
@pytest.mark.parametrize("peft", ALIGNABLE)
def test_permuting_units_preserves_outputs(backbone, peft, real_inputs):
    model = build_model(ModelConfig(pretrained="tiny", backbone=backbone, peft=peft, adapter_width=8,
                                    lora_rank=4, seed=0)).eval()
    batch = model.processor(*real_inputs)
    state = _random_state(model.trainable_state(), seed=1)
    groups = unit_groups(state)
    marker = ".lora_A." if peft == "lora" else ".adapter.down."
    assert groups and len(groups) == sum(marker in k and k.endswith(("weight", "phm_w"))
                                         for k in state)
    perms = _random_perms(groups, seed=2)
    permuted = permute_units(state, perms)
    assert any(not torch.equal(permuted[k], state[k]) for k in state)
    model.load_trainable_state(state)
    with torch.no_grad():
        y = model(batch)
        acts = adapter_activations(model, batch)
        model.load_trainable_state(permuted)
        y_perm = model(batch)
        acts_perm = adapter_activations(model, batch)
    assert torch.allclose(y, y_perm, atol=1e-5), (y - y_perm).abs().max()
    # a non-permutation change of the same adapter does change the output (test is not vacuous)
    broken = dict(permuted)
    key = groups[0].members[0].key
    broken[key] = torch.roll(permuted[key], 1, dims=-1)
    model.load_trainable_state(broken)
    with torch.no_grad():
        assert not torch.allclose(y, model(batch), atol=1e-5)
    for g in groups:
        assert acts[g.name].shape[1] == g.width
        assert torch.allclose(acts_perm[g.name], acts[g.name][:, perms[g.name]], atol=1e-5)


def test_activation_shapes_per_method(real_inputs):
    images, texts = real_inputs
    for peft, n_rows in (("houlsby", 4), ("compacter", 4 * 4), ("lora", 4)):
        model = build_model(ModelConfig(pretrained="tiny", backbone="vilt", peft=peft, adapter_width=8,
                                        lora_rank=4, phm_dim=4)).eval()
        acts = adapter_activations(model, model.processor(images, texts))
        groups = unit_groups(model.trainable_state())
        assert set(acts) == {g.name for g in groups}
        width = {"houlsby": 8, "compacter": 2, "lora": 4}[peft]
        assert all(a.shape == (n_rows, width) for a in acts.values())
    with pytest.raises(ValueError):
        model.load_trainable_state({})  # strict: every key missing


@pytest.mark.parametrize("backbone", ["vilt", "blip", "clip", "minilm-vl"])
@pytest.mark.parametrize("peft", ["houlsby", "lora"])
def test_activations_ignore_padding(backbone, peft, real_inputs):
    """Token pooling covers a sample's real tokens only: its activations are the same whether its
    batch is padded to a much longer question or not (padding used to be averaged in)."""
    images, texts = real_inputs
    model = build_model(ModelConfig(pretrained="tiny", backbone=backbone, peft=peft, adapter_width=8, lora_rank=4,
                                    seed=0)).eval()
    model.load_trainable_state(_random_state(model.trainable_state(), seed=3))
    long_q = "is there " + " and ".join(["a large mass in the left upper lobe of the lung"] * 3) + "?"
    padded = model.processor([images[0], images[1]], [texts[0], long_q])
    alone = model.processor([images[0]], [texts[0]])
    assert padded["attention_mask"].shape[1] > alone["attention_mask"].shape[1] + 10
    with torch.no_grad():
        a_pad = adapter_activations(model, padded)
        a_one = adapter_activations(model, alone)
    assert set(a_one) == set(a_pad)
    for name, a in a_one.items():
        assert torch.allclose(a_pad[name][:1], a, atol=1e-4), (name, (a_pad[name][:1] - a).abs().max())
