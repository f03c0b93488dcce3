"""ModelConfig validation, the offline BERT tokenizer and the PIL image pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fedpia.models import ModelConfig, build_model
from fedpia.models.processors import CLIP_MEAN_STD, VLProcessor, bert_tokenizer, to_pil_rgb


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"backbone": "gpt"}, "backbone"),
        ({"peft": "adapterfusion"}, "peft"),
        ({"adapter_width": 0}, "adapter_width"),
        ({"peft": "compacter", "adapter_width": 6, "phm_dim": 4}, "adapter_width"),
        ({"clip_fusion": "sum"}, "clip_fusion"),
        ({"seed": -1}, "seed"),
        ({"lora_dropout": 1.5}, "lora_dropout"),
        ({"pretrained": ""}, "pretrained"),
    ],
)
def test_config_rejects_bad_fields_naming_them(kwargs, field):
    with pytest.raises(ValueError, match=field):
        ModelConfig(**kwargs)


def test_tokenizer_is_real_bert_vocab():
    tok = bert_tokenizer()
    assert len(tok) == 30522
    ids = tok("is there a pneumothorax in the left lung?")["input_ids"]
    assert tok.unk_token_id not in ids
    assert ids[0] == tok.cls_token_id == 101 and ids[-1] == tok.sep_token_id == 102
    assert tok.convert_ids_to_tokens(ids[1:4]) == ["is", "there", "a"]


def test_to_pil_rgb_accepts_grey_rgb_chw_float_and_paths(real_inputs, tmp_path):
    grey = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)
    assert to_pil_rgb(grey).mode == "RGB" and to_pil_rgb(grey).size == (28, 28)
    chw = np.zeros((3, 10, 12), dtype=np.float32)
    chw[0] = 1.0
    pil = to_pil_rgb(chw)
    assert pil.size == (12, 10) and pil.getpixel((0, 0)) == (255, 0, 0)
    png = tmp_path / "grey.png"
    Image.fromarray(grey).save(png)
    assert np.asarray(to_pil_rgb(png))[..., 1].tolist() == grey.tolist()
    assert to_pil_rgb(real_inputs[0][0]).mode == "RGB"  # a VQA-RAD JPEG path
    with pytest.raises(ValueError, match="not found"):
        to_pil_rgb(tmp_path / "missing.jpg")
    with pytest.raises(ValueError, match="shape"):
        to_pil_rgb(np.zeros((2, 3, 4, 5), dtype=np.uint8))


def test_processor_normalises_to_model_size(real_inputs):
    proc = VLProcessor(bert_tokenizer(), 32, CLIP_MEAN_STD, 16, with_token_types=True)
    white = np.full((28, 28), 255, dtype=np.uint8)
    out = proc([white, *real_inputs[0][:3]], ["a"] + real_inputs[1][:3])
    assert out["pixel_values"].shape == (4, 3, 32, 32)
    expected = (1 - torch.tensor(CLIP_MEAN_STD[0])) / torch.tensor(CLIP_MEAN_STD[1])
    assert torch.allclose(out["pixel_values"][0, :, 5, 5], expected, atol=1e-5)
    assert out["input_ids"].shape[1] <= 16 and out["input_ids"].shape == out["token_type_ids"].shape
    assert out["attention_mask"][0].sum() == 3  # [CLS] a [SEP]
    with pytest.raises(ValueError, match="2 images but 1 texts"):
        proc([white, white], ["a"])


def test_model_processor_matches_backbone(real_inputs):
    model = build_model(ModelConfig(pretrained="tiny", backbone="clip", peft="prompt", n_prompts=4, max_text_len=12))
    batch = model.processor(*real_inputs)
    assert batch["pixel_values"].shape[-1] == model.backbone.image_size == 32
    assert batch["input_ids"].shape[1] <= 12 - 4
    assert "token_type_ids" not in batch
