"""Backbones (transformers 5): ViLT, BLIP (ALBEF family) and CLIP, behind one small interface.

Every backbone is an ``nn.Module`` holding the transformers model as ``.hf`` and mapping a
processor batch to pooled multimodal features ``[B, hidden_size]``:

- ViLT (Kim et al. 2021, arXiv:2102.03334): single-stream encoder; pooled = ``pooler_output``
  (tanh(W h_CLS)).
- BLIP (Li et al. 2022, arXiv:2201.12086): ViT image encoder + BERT text encoder with
  cross-attention to the image tokens (the multimodal encoder); pooled = its [CLS] output.
- CLIP (Radford et al. 2021): dual encoder; u, v = L2-normalised projected image / text embeds;
  pooled = [u, v] ("concat") or [u, v, u*v] ("product_concat").

These three need a checkpoint: ``pretrained`` = a hub id or a local directory
(``from_pretrained``); ``pretrained="tiny"`` builds a tiny in-code config for unit tests (hidden
32, 2 layers, image 32, patch 8, the 30522-token BERT vocab) with a seeded init under
``torch.random.fork_rng`` (global RNG untouched). ``None`` is an error (no silent tiny fallback).
The default backbone, ``minilm-vl`` (:mod:`fedpia.models.minilm_vl`), ships its weights. ``LayerFamily`` entries tell the PEFT code
where attention outputs / FFNs / LoRA targets sit (relative module names inside each layer).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .processors import BERT_VOCAB_SIZE, CLIP_MEAN_STD, IMAGENET_HALF, VLProcessor

logger = logging.getLogger(__name__)

_TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, initializer_range=0.2)
_TINY_TEXT = dict(_TINY, vocab_size=BERT_VOCAB_SIZE, max_position_embeddings=40)
_TINY_VISION = dict(_TINY, image_size=32, patch_size=8)
_BERT_IDS = dict(pad_token_id=0, bos_token_id=101, eos_token_id=102)


@dataclass(frozen=True)
class LayerFamily:
    """Transformer layers matching ``pattern`` (full module name) and sites inside each layer."""

    pattern: str
    attn_out: tuple[str, ...]  # Linear(s) producing an attention sub-block output (Houlsby)
    ffn_in: str  # module whose *input* is the FFN input (parallel adapter input)
    ffn_out: str  # Linear producing the FFN output (Houlsby site, parallel adapter added here)
    lora: tuple[str, ...]  # LoRA target Linears


def seeded_init(cls, config, seed: int):
    """``cls(config)`` (any callable) with weights drawn from ``torch.manual_seed(seed)`` inside ``fork_rng``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(config)


class Backbone(nn.Module):
    """Base class: subclasses set the class attributes and implement ``hf_class``/``pool``."""

    name: str = ""
    families: tuple[LayerFamily, ...] = ()
    mean_std: tuple = IMAGENET_HALF
    with_token_types: bool = False
    embeddings_path: str = ""
    #: modules (regex on the full module name) whose token axis is the text sequence
    text_modules: str | None = None
    #: the encoder's token axis is [text tokens; image tokens], every image token valid (ViLT)
    joint_text_first: bool = False

    def __init__(self, hf: nn.Module) -> None:
        super().__init__()
        self.hf = hf

    def token_mask(self, module_name: str, batch: dict[str, torch.Tensor], length: int):
        """``[B, length]`` mask of the real (non-padding) tokens seen by ``module_name``, or None
        when every token is real (image towers) or the layout is unknown."""
        am = batch.get("attention_mask")
        if am is None:
            return None
        if self.joint_text_first:
            if length < am.shape[1]:
                return None
            return torch.cat([am, am.new_ones(am.shape[0], length - am.shape[1])], dim=1)
        if self.text_modules and re.search(self.text_modules, module_name) and length == am.shape[1]:
            return am
        return None

    @classmethod
    def tiny_config(cls):
        raise NotImplementedError

    @classmethod
    def hf_class(cls):
        raise NotImplementedError

    @classmethod
    def build_hf(cls, pretrained: str | None, *, seed: int = 0) -> nn.Module:
        """The full transformers model: ``from_pretrained(pretrained)``, or the tiny seeded init
        for ``pretrained="tiny"``. ValueError for None / "random" (no checkpoint named)."""
        if pretrained == "tiny":
            return seeded_init(cls.hf_class(), cls.tiny_config(), seed)
        if pretrained in (None, "random"):
            raise ValueError(
                f"backbone {cls.name!r} needs model.pretrained = a hub id or a local checkpoint "
                f"directory (got {pretrained!r}); 'tiny' builds the tiny random test model. The "
                "default backbone 'minilm-vl' ships pretrained weights."
            )
        logger.info("loading %s backbone from %s", cls.name, pretrained)
        if pretrained.startswith(("/", ".")) and not Path(pretrained).is_dir():  # a path, not a hub id
            raise ValueError(f"model.pretrained={pretrained!r}: no such checkpoint directory")
        try:
            return cls.hf_class().from_pretrained(pretrained)
        except OSError as exc:  # no such directory, hub id not cached and no network, ...
            raise ValueError(
                f"model.pretrained={pretrained!r}: could not load a {cls.name} checkpoint from this "
                f"local directory or hub id ({str(exc).splitlines()[0]}). Without network access, "
                "download the checkpoint elsewhere and pass its directory."
            ) from exc

    @classmethod
    def build(cls, pretrained: str | None, *, seed: int = 0, **kw) -> Backbone:
        return cls(cls.build_hf(pretrained, seed=seed), **kw)

    def make_processor(self, tokenizer, *, max_text_len: int) -> VLProcessor:
        """The processor producing this backbone's batches (pixels at ``image_size``)."""
        return VLProcessor(tokenizer=tokenizer, image_size=self.image_size,
                           mean_std=self.mean_std, max_text_len=max_text_len,
                           with_token_types=self.with_token_types)

    # --- properties used by the PEFT code and the processor
    @property
    def hidden_size(self) -> int:
        raise NotImplementedError

    @property
    def image_size(self) -> int:
        raise NotImplementedError

    @property
    def max_text_positions(self) -> int:
        raise NotImplementedError

    def word_embeddings(self) -> nn.Embedding:
        return self.hf.get_submodule(self.embeddings_path)

    def layers(self):
        """Yield ``(layer_name, layer_module, family)`` for every adapted transformer layer."""
        for fam in self.families:
            for name, mod in self.hf.named_modules():
                if re.fullmatch(fam.pattern, name):
                    yield name, mod, fam


class ViltBackbone(Backbone):
    name = "vilt"
    families = (
        LayerFamily(
            r"encoder\.layer\.\d+",
            ("attention.output.dense",),
            "intermediate",
            "output.dense",
            ("attention.attention.query", "attention.attention.value"),
        ),
    )
    with_token_types = True
    embeddings_path = "embeddings.text_embeddings.word_embeddings"
    joint_text_first = True  # pixel_mask all ones and max_image_length=-1: every patch is kept

    def __init__(self, hf: nn.Module) -> None:
        super().__init__(hf)
        # ViLT samples patches with torch.multinomial; -1 keeps every patch. The sampling order
        # is fixed in forward() with a forked RNG (output is order-invariant, RNG untouched).
        hf.config.max_image_length = -1

    @classmethod
    def tiny_config(cls):
        from transformers import ViltConfig

        return ViltConfig(**_TINY_TEXT, image_size=32, patch_size=8, max_image_length=-1)

    @classmethod
    def hf_class(cls):
        from transformers import ViltModel

        return ViltModel

    @property
    def hidden_size(self) -> int:
        return self.hf.config.hidden_size

    @property
    def image_size(self) -> int:
        return self.hf.config.image_size

    @property
    def max_text_positions(self) -> int:
        return self.hf.config.max_position_embeddings

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        pix = batch["pixel_values"]
        mask = torch.ones(pix.shape[0], *pix.shape[2:], dtype=torch.long, device=pix.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            out = self.hf(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                token_type_ids=batch.get("token_type_ids"),
                pixel_values=pix,
                pixel_mask=mask,
            )
        return out.pooler_output


class BlipBackbone(Backbone):
    name = "blip"
    families = (
        LayerFamily(
            r"text_encoder\.encoder\.layer\.\d+",
            ("attention.output.dense", "crossattention.output.dense"),
            "intermediate",
            "output.dense",
            ("attention.self.query", "attention.self.value"),
        ),
        LayerFamily(
            r"vision_model\.encoder\.layers\.\d+",
            ("self_attn.projection",),
            "mlp",
            "mlp.fc2",
            ("self_attn.qkv",),
        ),
    )
    mean_std = CLIP_MEAN_STD
    embeddings_path = "text_encoder.embeddings.word_embeddings"
    text_modules = r"(^|\.)text_encoder\."

    def __init__(self, hf: nn.Module) -> None:
        super().__init__(hf)
        if hasattr(hf, "text_decoder"):
            del hf.text_decoder  # answer decoder unused: classification heads on pooled [CLS]

    @classmethod
    def tiny_config(cls):
        from transformers import BlipConfig

        text = dict(_TINY_TEXT, encoder_hidden_size=32, sep_token_id=102, **_BERT_IDS)
        # BlipVisionConfig defaults to initializer_range=1e-10 (image features ~0 at random init)
        vision = dict(_TINY_VISION)
        return BlipConfig(text_config=text, vision_config=vision)

    @classmethod
    def hf_class(cls):
        from transformers import BlipForQuestionAnswering

        return BlipForQuestionAnswering

    @property
    def hidden_size(self) -> int:
        return self.hf.config.text_config.hidden_size

    @property
    def image_size(self) -> int:
        return self.hf.config.vision_config.image_size

    @property
    def max_text_positions(self) -> int:
        return self.hf.config.text_config.max_position_embeddings

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        img = self.hf.vision_model(pixel_values=batch["pixel_values"]).last_hidden_state
        img_mask = torch.ones(img.shape[:2], dtype=torch.long, device=img.device)
        txt = self.hf.text_encoder(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            encoder_hidden_states=img,
            encoder_attention_mask=img_mask,
        )
        return txt.last_hidden_state[:, 0]


class ClipBackbone(Backbone):
    name = "clip"
    families = (
        LayerFamily(
            r"(text|vision)_model\.encoder\.layers\.\d+",
            ("self_attn.out_proj",),
            "mlp",
            "mlp.fc2",
            ("self_attn.q_proj", "self_attn.v_proj"),
        ),
    )
    mean_std = CLIP_MEAN_STD
    embeddings_path = "text_model.embeddings.token_embedding"
    text_modules = r"(^|\.)text_model\."

    def __init__(self, hf: nn.Module, *, fusion: str = "product_concat") -> None:
        super().__init__(hf)
        self.fusion = fusion

    @classmethod
    def tiny_config(cls):
        from transformers import CLIPConfig

        text = dict(_TINY_TEXT, **_BERT_IDS)
        return CLIPConfig(text_config=text, vision_config=dict(_TINY_VISION), projection_dim=32)

    @classmethod
    def hf_class(cls):
        from transformers import CLIPModel

        return CLIPModel

    @property
    def hidden_size(self) -> int:
        return self.hf.config.projection_dim * (2 if self.fusion == "concat" else 3)

    @property
    def image_size(self) -> int:
        return self.hf.config.vision_config.image_size

    @property
    def max_text_positions(self) -> int:
        return self.hf.config.text_config.max_position_embeddings

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        vis = self.hf.vision_model(pixel_values=batch["pixel_values"]).pooler_output
        txt = self.hf.text_model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).pooler_output
        u = F.normalize(self.hf.visual_projection(vis), dim=-1)
        v = F.normalize(self.hf.text_projection(txt), dim=-1)
        return torch.cat([u, v] if self.fusion == "concat" else [u, v, u * v], dim=-1)


BACKBONES: dict[str, type[Backbone]] = {
    ViltBackbone.name: ViltBackbone,
    BlipBackbone.name: BlipBackbone,
    ClipBackbone.name: ClipBackbone,
}
