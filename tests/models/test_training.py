"""Every PEFT method trains only its own parameters; tiny backbones on real images."""

from __future__ import annotations

import pytest
import torch

from fedpia.models import PEFT_NAMES, ModelConfig, build_head, build_model, loss_fn

CASES = [("vilt", p) for p in PEFT_NAMES] + [("minilm-vl", p) for p in PEFT_NAMES] + [
    ("blip", "houlsby"), ("blip", "lora"), ("clip", "houlsby"), ("clip", "lora"),
]


def _step(model, batch, *, task="vqa"):
    head = build_head(task, model.hidden_size, 3, seed=0)
    params = list(model.trainable_parameters().values()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.0)
    model.train()
    target = torch.tensor([0, 1, 2, 1]) if task == "vqa" else torch.eye(3)[[0, 1, 2, 1]]
    loss = loss_fn(task)(head(model(batch)), target)
    loss.backward()
    opt.step()
    return loss, head


@pytest.mark.parametrize("backbone, peft", CASES)
def test_only_trainable_parameters_change(backbone, peft, real_inputs):
    model = build_model(ModelConfig(pretrained="tiny", backbone=backbone, peft=peft, adapter_width=8, seed=1))
    batch = model.processor(*real_inputs)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    trainable = set(model.trainable_state())
    assert trainable == {n for n, p in model.named_parameters() if p.requires_grad}
    loss, head = _step(model, batch)
    assert torch.isfinite(loss)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed <= trainable, f"frozen parameters changed: {sorted(changed - trainable)[:3]}"
    with_grad = {n for n, p in model.named_parameters()
                 if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad <= trainable
    strong = {n for n in with_grad if dict(model.named_parameters())[n].grad.abs().max() > 1e-6}
    assert strong <= changed  # every parameter with a non-negligible gradient moved
    if peft == "classifier":  # only the head (minilm-vl's projector is frozen by default)
        assert trainable == set() and all(p.grad is not None for p in head.parameters())
    else:
        assert changed, "no trainable parameter moved"
    if peft == "full":
        assert trainable == set(before)
    else:
        n_train = sum(before[n].numel() for n in trainable)
        assert n_train < 0.05 * sum(v.numel() for v in before.values())
    assert all(torch.equal(b, buffers[n]) for n, b in model.named_buffers())


@pytest.mark.parametrize("peft, expected", [
    ("bias", lambda n: n.endswith(".bias")),
    ("layernorm", lambda n: "norm" in n.lower() and ".ln_tuning_layers.default." in n),
    ("prompt", lambda n: n == "prompt.embeddings"),
    ("lora", lambda n: ".lora_A.default." in n or ".lora_B.default." in n),
    ("compacter", lambda n: n.endswith((".phm_w", ".adapter.down.bias", ".adapter.up.bias",
                                        ".phm_rule"))),
])
def test_trainable_keys_follow_method(peft, expected):
    model = build_model(ModelConfig(pretrained="tiny", backbone="vilt", peft=peft, adapter_width=8))
    keys = list(model.trainable_state())
    assert keys and all(expected(k) for k in keys), keys[:3]


def test_multilabel_backward_on_blip(real_inputs):
    model = build_model(ModelConfig(pretrained="tiny", backbone="blip", peft="parallel", adapter_width=4))
    loss, _ = _step(model, model.processor(*real_inputs), task="multilabel")
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.trainable_parameters().values())


def test_adapters_start_close_to_backbone(real_inputs):
    """Up projections start ~0: the adapted model ≈ the backbone at init."""
    plain = build_model(ModelConfig(pretrained="tiny", backbone="vilt", peft="classifier", seed=2)).eval()
    adapted = build_model(ModelConfig(pretrained="tiny", backbone="vilt", peft="houlsby", adapter_width=8, seed=2))
    batch = plain.processor(*real_inputs)
    with torch.no_grad():
        diff = (adapted.eval()(batch) - plain(batch)).abs().max()
    assert 0 < diff < 1e-2


@pytest.mark.parametrize("backbone", ["vilt", "blip", "clip", "minilm-vl"])
def test_pooled_features_depend_on_image_and_text(backbone, real_inputs):
    model = build_model(ModelConfig(pretrained="tiny", backbone=backbone, peft="classifier")).eval()
    images, texts = real_inputs
    with torch.no_grad():
        y = model(model.processor(images[:2], texts[:2]))
        y_img = model(model.processor(images[2:], texts[:2]))
        y_txt = model(model.processor(images[:2], texts[2:]))
    assert y.shape == (2, model.hidden_size)
    assert (y - y_img).abs().max() > 1e-5 and (y - y_txt).abs().max() > 1e-5  # float noise ~1e-7
