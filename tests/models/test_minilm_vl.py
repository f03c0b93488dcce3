"""The minilm-vl backbone (tiny random variant): multimodal forward, PEFT keys, projector,
padding invariance, pooling, config errors."""

from __future__ import annotations

import pytest
import torch

from fedpia.align import unit_groups
from fedpia.models import PEFT_NAMES, ModelConfig, build_model

TINY = {"backbone": "minilm-vl", "pretrained": "tiny"}


def _tiny(**kw):
    return build_model(ModelConfig(**{**TINY, "adapter_width": 8, **kw}))


def test_batch_holds_cached_image_tokens_not_pixels(real_inputs):
    model = _tiny()
    batch = model.processor(*real_inputs)
    assert "pixel_values" not in batch and "token_type_ids" not in batch
    assert batch["image_feats"].shape == (4, 16, 16) and batch["image_feats"].dtype == torch.float16
    with torch.no_grad():
        assert model.eval()(batch).shape == (4, model.hidden_size) == (4, 32)
    assert model.backbone.max_text_positions == 64 - 16  # image tokens use the last 16 positions


@pytest.mark.parametrize("peft", PEFT_NAMES)
def test_projector_trains_with_every_method_and_groups_are_found(peft):
    model = _tiny(peft=peft, lora_rank=4, train_projector=True)
    state = model.trainable_state()
    assert {"backbone.image_proj.weight", "backbone.image_proj.bias"} <= set(state)
    # default: the projector stays frozen, except where the method itself trains it
    w, b = "backbone.image_proj.weight", "backbone.image_proj.bias"
    own = {"bias": {b}, "full": {w, b}}.get(peft, set())
    assert set(_tiny(peft=peft, lora_rank=4).trainable_state()) == (set(state) - {w, b}) | own
    groups = {g.name for g in unit_groups(state)}
    if peft in ("houlsby", "compacter"):  # attention-output and FFN-output sites of 2 layers
        assert len(groups) == 4 and all(".encoder.layer." in g for g in groups)
    elif peft in ("parallel", "lora"):
        assert len(groups) == (2 if peft == "parallel" else 4)
    else:
        assert groups == set()
    assert not any(g.startswith("backbone.image_proj") for g in groups)  # never permuted
    if peft == "classifier":
        assert set(state) == {"backbone.image_proj.weight", "backbone.image_proj.bias"}


def test_frozen_projector_is_seeded_and_not_trainable():
    a = _tiny(peft="classifier", seed=3)  # train_projector=False is the default
    b = _tiny(peft="classifier", train_projector=False, seed=3)
    assert a.trainable_state() == {}
    assert torch.equal(a.backbone.image_proj.weight, b.backbone.image_proj.weight)
    c = _tiny(peft="classifier", train_projector=False, seed=4)
    assert not torch.equal(a.backbone.image_proj.weight, c.backbone.image_proj.weight)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_output_does_not_depend_on_batch_padding(pooling, real_inputs):
    """Image tokens sit at fixed positions (not after the padded text) and padding is masked, so a
    sample's pooled feature is the same alone or next to a much longer question."""
    images, texts = real_inputs
    model = _tiny(pooling=pooling).eval()
    long_q = "is there " + " and ".join(["a large mass in the left upper lobe"] * 3) + "?"
    padded = model.processor([images[0], images[1]], [texts[0], long_q])
    alone = model.processor([images[0]], [texts[0]])
    assert padded["attention_mask"].shape[1] > alone["attention_mask"].shape[1] + 10
    with torch.no_grad():
        assert torch.allclose(model(padded)[:1], model(alone), atol=1e-5)


def test_image_and_question_both_change_the_output(real_inputs):
    images, texts = real_inputs
    model = _tiny().eval()
    with torch.no_grad():
        y = model(model.processor([images[0], images[0]], [texts[0], texts[1]]))
        z = model(model.processor([images[0], images[2]], [texts[0], texts[0]]))
    assert not torch.allclose(y[0], y[1], atol=1e-4)  # same image, other question
    assert not torch.allclose(z[0], z[1], atol=1e-4)  # same question, other image


def test_cls_and_mean_pooling_differ_and_cls_uses_the_pooler(real_inputs):
    mean, cls = _tiny(pooling="mean").eval(), _tiny(pooling="cls").eval()
    assert cls.backbone.hf.pooler is not None and mean.backbone.hf.pooler is None
    batch = mean.processor(*real_inputs)
    with torch.no_grad():
        out = cls(batch)
    assert out.abs().max() <= 1.0  # tanh(W h_CLS)
    with torch.no_grad():
        assert not torch.allclose(mean(batch), out)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"backbone": "vilt"}, "needs a hub id"),
        ({"backbone": "clip", "pretrained": "random"}, "needs a hub id"),
        ({"pretrained": "/some/checkpoint"}, "takes None"),
        ({"image_tokens": 15}, "image_tokens=15 must be a square"),
        ({"image_layer": "stage9"}, "image_layer"),
        ({"pooling": "max"}, "pooling"),
        ({"image_size": 16}, "image_size=16"),
        ({"train_projector": "yes"}, "train_projector"),
    ],
)
def test_config_errors_are_clear(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        ModelConfig(**kwargs)


def test_default_is_the_pretrained_minilm_vl():
    cfg = ModelConfig()
    assert cfg.backbone == "minilm-vl" and cfg.pretrained is None


def test_tiny_is_seeded_and_leaves_global_rng_alone(real_inputs):
    rng = torch.random.get_rng_state()
    a, b = _tiny(peft="lora", seed=5), _tiny(peft="lora", seed=5)
    assert torch.equal(rng, torch.random.get_rng_state())
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    batch = a.processor(*real_inputs)
    with torch.no_grad():
        assert torch.equal(a.eval()(batch), b.eval()(batch))
