"""Typed, validated configuration of a federated model (backbone + PEFT method)."""

from __future__ import annotations

import os
from dataclasses import dataclass

BACKBONE_NAMES = ("vilt", "blip", "clip")
PEFT_NAMES = (
    "houlsby",
    "parallel",
    "compacter",
    "lora",
    "layernorm",
    "bias",
    "classifier",
    "full",
    "prompt",
)
CLIP_FUSIONS = ("concat", "product_concat")


def _positive(name: str, value: int | None, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"ModelConfig.{name} must be a positive int, got {value!r}")


@dataclass(frozen=True)
class ModelConfig:
    """Configuration of :func:`fedpia.models.build_model`.

    Args:
        backbone: one of ``BACKBONE_NAMES`` ("vilt", "blip", "clip").
        pretrained: hub id or local directory for ``from_pretrained``; ``None`` builds the tiny
            in-code configuration with a seeded random init.
        peft: one of ``PEFT_NAMES``.
        seed: seed of every random init done by the library (tiny backbone, adapters, prompts).
        adapter_width: hidden width m of bottleneck adapters (houlsby / parallel / compacter).
            ``None`` -> ``max(1, d // reduction_factor)`` (rounded up to a multiple of
            ``phm_dim`` for compacter). Clients may use different widths.
        reduction_factor: d / m when ``adapter_width`` is None.
        phm_dim: n, the PHM (Kronecker) dimension of compacter; must divide d and m.
        lora_rank, lora_alpha, lora_dropout: LoRA hyper-parameters (peft ``LoraConfig``).
        n_prompts: number of learnable prompt tokens for ``peft="prompt"``.
        max_text_len: maximum number of text tokens after tokenisation (incl. special tokens and
            prompts); ``None`` -> the backbone's maximum position count.
        clip_fusion: fusion of CLIP image/text embeddings: "concat" -> [u, v] (2p);
            "product_concat" -> [u, v, u*v] (3p), u, v L2-normalised projected embeddings.
    """

    backbone: str = "vilt"
    pretrained: str | None = None
    peft: str = "houlsby"
    seed: int = 0
    adapter_width: int | None = None
    reduction_factor: int = 16
    phm_dim: int = 4
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    n_prompts: int = 4
    max_text_len: int | None = None
    clip_fusion: str = "product_concat"

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONE_NAMES:
            raise ValueError(
                f"ModelConfig.backbone={self.backbone!r} not in allowed values {BACKBONE_NAMES}"
            )
        if self.peft not in PEFT_NAMES:
            raise ValueError(f"ModelConfig.peft={self.peft!r} not in allowed values {PEFT_NAMES}")
        if self.clip_fusion not in CLIP_FUSIONS:
            raise ValueError(
                f"ModelConfig.clip_fusion={self.clip_fusion!r} not in allowed values {CLIP_FUSIONS}"
            )
        if self.pretrained is not None and (
            not isinstance(self.pretrained, str) or not self.pretrained
        ):
            raise ValueError(
                f"ModelConfig.pretrained must be None or a non-empty str, got {self.pretrained!r}"
            )
        if self.pretrained is not None and self.pretrained.startswith("~"):
            # one expanded path for the backbone and the tokenizer alike
            object.__setattr__(self, "pretrained", os.path.expanduser(self.pretrained))
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"ModelConfig.seed must be an int >= 0, got {self.seed!r}")
        _positive("adapter_width", self.adapter_width, allow_none=True)
        _positive("max_text_len", self.max_text_len, allow_none=True)
        for name in ("reduction_factor", "phm_dim", "lora_rank", "lora_alpha", "n_prompts"):
            _positive(name, getattr(self, name))
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"ModelConfig.lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if (
            self.peft == "compacter"
            and self.adapter_width is not None
            and self.adapter_width % self.phm_dim
        ):
            raise ValueError(
                f"ModelConfig.adapter_width={self.adapter_width} must be a multiple of "
                f"phm_dim={self.phm_dim} for peft='compacter'"
            )
