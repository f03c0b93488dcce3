"""Trainable-state I/O: exact round trips, unequal widths, clear errors, pretrained path, seeds."""

from __future__ import annotations

import pytest
import torch

from fedpia.models import (
    BACKBONES,
    ModelConfig,
    build_model,
    load_state_file,
    save_trainable_state,
    set_frozen_companion,
)


def _randomised(state, seed=0, scale=0.1):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) * scale for k, v in state.items()}


@pytest.mark.parametrize("peft", ["houlsby", "compacter", "lora", "prompt"])
def test_safetensors_round_trip_is_exact(peft, tmp_path):
    model = build_model(ModelConfig(pretrained="tiny", backbone="vilt", peft=peft, adapter_width=8))
    state = _randomised(model.trainable_state())
    save_trainable_state(tmp_path / "s.safetensors", state)
    back = load_state_file(tmp_path / "s.safetensors")
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)
    model.load_trainable_state(back)
    assert all(torch.equal(v, state[k]) for k, v in model.trainable_state().items())
    with pytest.raises(ValueError, match="not found"):
        load_state_file(tmp_path / "nope.safetensors")


def test_same_seed_same_init_and_global_rng_untouched(real_inputs):
    rng = torch.random.get_rng_state()
    a = build_model(ModelConfig(pretrained="tiny", backbone="vilt", peft="lora", seed=5))
    b = build_model(ModelConfig(pretrained="tiny", backbone="vilt", peft="lora", seed=5))
    c = build_model(ModelConfig(pretrained="tiny", backbone="vilt", peft="lora", seed=6))
    assert torch.equal(rng, torch.random.get_rng_state())
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    batch = a.processor(*real_inputs)
    with torch.no_grad():
        assert torch.equal(a.eval()(batch), b.eval()(batch))


@pytest.mark.parametrize("peft", ["houlsby", "parallel", "compacter"])
def test_load_unequal_width_resizes_adapters(peft, real_inputs):
    small = build_model(ModelConfig(pretrained="tiny", backbone="vilt", peft=peft, adapter_width=4, seed=0))
    wide = build_model(ModelConfig(pretrained="tiny", backbone="vilt", peft=peft, adapter_width=12, seed=0))
    state = _randomised(wide.trainable_state(), seed=1)
    small.load_trainable_state(state)
    got = small.trainable_state()
    assert all(torch.equal(got[k], state[k]) for k in state)
    wide.load_trainable_state(state)
    batch = small.processor(*real_inputs)
    with torch.no_grad():
        assert torch.allclose(small.eval()(batch), wide.eval()(batch), atol=1e-6)
    down = [k for k in state if k.endswith(("down.weight", "down.phm_w"))][0]
    assert state[down].shape[-2] == (12 if peft != "compacter" else 3)
    # and back to the narrow width
    small.load_trainable_state(_randomised(build_model(ModelConfig(pretrained="tiny",
        backbone="vilt", peft=peft, adapter_width=4)).trainable_state()))
    assert small.trainable_state()[down].shape[-2] == (4 if peft != "compacter" else 1)


def test_bad_keys_and_shapes_raise_clear_errors():
    model = build_model(ModelConfig(pretrained="tiny", backbone="vilt", peft="houlsby", adapter_width=8))
    state = model.trainable_state()
    key = next(iter(state))
    with pytest.raises(ValueError, match="unknown keys.*bogus"):
        model.load_trainable_state({**state, "bogus.weight": torch.zeros(1)})
    partial = dict(state)
    partial.pop(key)
    with pytest.raises(ValueError, match="missing keys"):
        model.load_trainable_state(partial)
    model.load_trainable_state(partial, strict=False)  # missing allowed when not strict
    up_bias = next(k for k in state if k.endswith("up.bias"))
    with pytest.raises(ValueError, match="up.bias.*shape"):
        model.load_trainable_state({**state, up_bias: torch.zeros(3)})
    lora = build_model(ModelConfig(pretrained="tiny", backbone="vilt", peft="lora", lora_rank=4))
    ls = lora.trainable_state()
    a_key = next(k for k in ls if "lora_A" in k)
    with pytest.raises(ValueError, match="not a resizable adapter"):
        lora.load_trainable_state({**ls, a_key: torch.zeros(2, ls[a_key].shape[1])})


@pytest.mark.parametrize("backbone", ["vilt", "blip", "clip"])
def test_from_pretrained_local_dir_matches_tiny(backbone, tmp_path, real_inputs):
    BACKBONES[backbone].build_hf("tiny", seed=3).save_pretrained(tmp_path)
    tiny = build_model(ModelConfig(pretrained="tiny", backbone=backbone, peft="houlsby", adapter_width=8, seed=3))
    loaded = build_model(ModelConfig(backbone=backbone, pretrained=str(tmp_path),
                                     peft="houlsby", adapter_width=8, seed=3))
    bb_t, bb_l = tiny.backbone_parameters(), loaded.backbone_parameters()
    assert bb_t.keys() == bb_l.keys() and all(torch.equal(bb_t[k], bb_l[k]) for k in bb_t)
    batch = tiny.processor(*real_inputs)
    with torch.no_grad():
        assert torch.allclose(tiny.eval()(batch), loaded.eval()(batch), atol=1e-6)


@pytest.mark.parametrize("peft", ["houlsby", "compacter"])
def test_frozen_companion_adds_output_and_is_not_trainable(peft, real_inputs):
    model = build_model(ModelConfig(pretrained="tiny", backbone="vilt", peft=peft, adapter_width=8)).eval()
    batch = model.processor(*real_inputs)
    own = _randomised(model.trainable_state(), seed=2)
    other = _randomised(build_model(ModelConfig(pretrained="tiny", backbone="vilt", peft=peft, adapter_width=4))
                        .trainable_state(), seed=3)
    model.load_trainable_state(own)
    with torch.no_grad():
        y_own = model(batch)
        set_frozen_companion(model, other)
        y_both = model(batch)
        keys = set(model.trainable_state())
        assert keys == set(own) and not any("companion" in k for k in model.state_dict())
        assert not torch.allclose(y_own, y_both)
        # zero trainable adapter + companion == model holding the companion state itself
        zero = {k: torch.zeros_like(v) if ".adapter." in k else v for k, v in own.items()}
        model.load_trainable_state(zero)
        y_comp = model(batch)
        set_frozen_companion(model, None)
        model.load_trainable_state(other)
        assert torch.allclose(y_comp, model(batch), atol=1e-5)
    with pytest.raises(ValueError, match="bottleneck"):
        set_frozen_companion(build_model(ModelConfig(pretrained="tiny", backbone="vilt", peft="lora")), other)
