"""``FedModel``: one backbone + one PEFT method, with a named trainable state.

``trainable_state()`` returns detached clones keyed exactly like ``named_parameters()``; this
is the only thing clients upload / servers aggregate. ``load_trainable_state`` is exact (same key
set) and resizes bottleneck adapters whose width differs from the incoming state, so one frozen
backbone can serve clients with different adapter widths.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from fedpia.device import model_device

from .adapters import BottleneckAdapter, CompacterAdapter, PHMLinear
from .backbones import BACKBONES, ClipBackbone
from .config import ModelConfig
from .minilm_vl import MiniLMVLBackbone
from .peft_methods import BOTTLENECK, PEFT_METHODS
from .processors import load_tokenizer

logger = logging.getLogger(__name__)

_RESIZABLE = re.compile(r"(.*\.adapter)\.(down|up)\.(weight|bias|phm_w)$")
PROMPT_PLACEHOLDER_ID = 0


class FedModel(nn.Module):
    """Backbone + PEFT. ``forward(batch) -> [B, hidden_size]`` pooled multimodal features."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.precision = "fp32"  # autocast precision, set by fedpia.device.place
        self.backbone = _build_backbone(cfg)
        self.backbone.eval()
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.prompt = None
        self.phm_rules = None
        generator = torch.Generator().manual_seed(cfg.seed + 1)
        PEFT_METHODS[cfg.peft](self, cfg, generator)
        if getattr(self.backbone, "train_projector", False):  # minilm-vl: for every method
            for p in self.backbone.image_proj.parameters():
                p.requires_grad_(True)
        n_prompt = cfg.n_prompts if cfg.peft == "prompt" else 0
        max_len = min(cfg.max_text_len or 10**9, self.backbone.max_text_positions) - n_prompt
        if max_len < 2:
            raise ValueError(f"ModelConfig.max_text_len too small for {n_prompt} prompts")
        self.processor = self.backbone.make_processor(load_tokenizer(cfg.pretrained),
                                                      max_text_len=max_len)

    @property
    def hidden_size(self) -> int:
        return self.backbone.hidden_size

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.prompt is not None:
            batch = self._with_prompt_slots(batch)
        return self.backbone(batch)

    def token_mask(self, module_name: str, batch: dict[str, torch.Tensor], length: int):
        """Real-token mask ``[B, length]`` for the sequence ``module_name`` sees on ``batch``
        (None: every token counts); see :meth:`Backbone.token_mask`."""
        if self.prompt is not None:
            batch = self._with_prompt_slots(batch)
        return self.backbone.token_mask(module_name, batch, length)

    def _with_prompt_slots(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Insert P placeholder tokens after position 0 (their embeddings become the prompt)."""
        n = self.prompt.embeddings.shape[0]
        out = dict(batch)
        for key, fill in (("input_ids", PROMPT_PLACEHOLDER_ID), ("attention_mask", 1),
                          ("token_type_ids", 0)):
            if key in batch:
                t = batch[key]
                slot = torch.full((t.shape[0], n), fill, dtype=t.dtype, device=t.device)
                out[key] = torch.cat([t[:, :1], slot, t[:, 1:]], dim=1)
        return out

    # ------------------------------------------------------------------ state
    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.named_parameters() if p.requires_grad}

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Detached CPU clones of the trainable parameters, keyed like ``named_parameters()``
        (what clients upload and servers aggregate is device-agnostic)."""
        cpu = torch.device("cpu")
        return {n: p.detach().to(cpu, copy=True) for n, p in self.trainable_parameters().items()}

    def backbone_parameters(self) -> dict[str, nn.Parameter]:
        """Frozen backbone parameters (the shared part; identity/memory checks)."""
        return {n: p for n, p in self.backbone.named_parameters() if not p.requires_grad}

    def load_trainable_state(self, state: dict[str, torch.Tensor], *, strict: bool = True) -> None:
        """Copy ``state`` into the trainable parameters.

        Exact key set when ``strict`` (else unknown keys still raise, missing keys are kept).
        Bottleneck adapter tensors (``*.adapter.down|up.*``) whose shape differs are resized:
        the modules are rebuilt at the incoming width m' (same d), which must be consistent
        between down and up of the same adapter.
        Raises: ValueError naming unknown / missing keys or incompatible shapes.
        """
        params = self.trainable_parameters()
        unknown = sorted(set(state) - set(params))
        missing = sorted(set(params) - set(state))
        if unknown or (strict and missing):
            raise ValueError(
                f"load_trainable_state: unknown keys {unknown[:5]} ({len(unknown)}), "
                f"missing keys {missing[:5]} ({len(missing)})"
            )
        resized = self._resize_adapters(state, params)
        params = self.trainable_parameters()
        with torch.no_grad():
            for key, value in state.items():
                if params[key].shape != value.shape:
                    raise ValueError(
                        f"load_trainable_state: key {key!r} has shape {tuple(value.shape)}, "
                        f"model expects {tuple(params[key].shape)}"
                    )
                params[key].copy_(value)
        if resized:
            logger.info("resized %d adapters to the incoming widths", len(resized))

    def _resize_adapters(self, state, params) -> set[str]:
        prefixes = set()
        for key, value in state.items():
            if params[key].shape != value.shape:
                m = _RESIZABLE.fullmatch(key)
                if m is None or self.cfg.peft not in BOTTLENECK:
                    raise ValueError(
                        f"load_trainable_state: key {key!r} has shape {tuple(value.shape)}, "
                        f"model expects {tuple(params[key].shape)} (not a resizable adapter)"
                    )
                prefixes.add(m.group(1))
        for prefix in prefixes:
            self._resize_one(prefix, state)
        return prefixes

    def _resize_one(self, prefix: str, state) -> None:
        adapter = self.get_submodule(prefix)
        if isinstance(adapter, CompacterAdapter):
            n = adapter.down.n
            m = state[f"{prefix}.down.phm_w"].shape[1] * n
            d = adapter.down.in_features
            rules = (adapter.down._rule_owner[0], adapter.up._rule_owner[0])
            adapter.down = PHMLinear(d, m, n, rule_owner=rules[0])
            adapter.up = PHMLinear(m, d, n, rule_owner=rules[1])
        elif isinstance(adapter, BottleneckAdapter):
            m, d = state[f"{prefix}.down.weight"].shape
            adapter.down = nn.Linear(d, m)
            adapter.up = nn.Linear(m, d)
        else:  # pragma: no cover - _RESIZABLE only matches adapters
            raise ValueError(f"{prefix!r} is not a bottleneck adapter")
        adapter.to(model_device(self.backbone))
        for p in adapter.parameters():
            p.requires_grad_(True)


def _build_backbone(cfg: ModelConfig):
    cls = BACKBONES[cfg.backbone]
    kw = {}
    if cls is ClipBackbone:
        kw = {"fusion": cfg.clip_fusion}
    elif cls is MiniLMVLBackbone:
        kw = {"image_size": cfg.image_size, "image_layer": cfg.image_layer,
              "image_tokens": cfg.image_tokens, "pooling": cfg.pooling,
              "train_projector": cfg.train_projector}
    return cls.build(cfg.pretrained, seed=cfg.seed, **kw)


def build_model(cfg: ModelConfig) -> FedModel:
    """Build backbone + PEFT method from a validated :class:`ModelConfig` (on the CPU, fp32;
    :func:`fedpia.device.place` moves it)."""
    return FedModel(cfg)


def save_trainable_state(path: str | Path, state: dict[str, torch.Tensor]) -> None:
    """Write a named state to a ``.safetensors`` file (exact round trip with load_state_file)."""
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(path))


def load_state_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a named state written by :func:`save_trainable_state`."""
    if not Path(path).is_file():
        raise ValueError(f"state file not found: {path}")
    return load_file(str(path))


def set_frozen_companion(model: FedModel, state: dict[str, torch.Tensor] | None) -> None:
    """Attach (or with None remove) a frozen copy of another adapter state beside each adapter.

    For FedPIA's parallel client integration: every bottleneck adapter computes
    a_L(x) + a_G(x), a_L trainable, a_G built from ``state`` (same keys as trainable_state, any
    width) and stored in non-persistent buffers: not parameters, not in trainable_state.
    ``None`` is a no-op for non-bottleneck methods; a state raises ValueError for them.
    """
    if model.cfg.peft not in BOTTLENECK:
        if state is None:
            return  # nothing attached, nothing to remove
        raise ValueError(f"set_frozen_companion needs a bottleneck peft {BOTTLENECK}, "
                         f"got {model.cfg.peft!r}")
    adapters = {n: m for n, m in model.named_modules()
                if isinstance(m, (BottleneckAdapter, CompacterAdapter))}
    if state is None:
        for mod in adapters.values():
            mod.set_companion(None)
        return
    shadow = build_shadow(model, state)
    for name, mod in adapters.items():
        dev = mod.up.bias.device
        mod.set_companion({k: v.detach().to(dev) for k, v in shadow[name].items()})


def build_shadow(model: FedModel, state: dict[str, torch.Tensor]) -> dict[str, dict]:
    """Dense matrices of every adapter of ``state`` (PHM products computed with its rules)."""
    missing = sorted(set(model.trainable_parameters()) - set(state))
    if missing:
        raise ValueError(f"companion state is missing keys {missing[:5]} ({len(missing)})")
    out = {}
    with torch.no_grad():
        for name, mod in model.named_modules():
            if isinstance(mod, BottleneckAdapter):
                out[name] = {f"{a}_{b}": state[f"{name}.{a}.{b}"]
                             for a in ("down", "up") for b in ("weight", "bias")}
            elif isinstance(mod, CompacterAdapter):
                out[name] = _phm_dense(name, mod, state)
    return out


def _phm_dense(name: str, mod: CompacterAdapter, state) -> dict[str, torch.Tensor]:
    res = {}
    for part in ("down", "up"):
        rule = state["phm_rules." + part + ".phm_rule"]
        w = state[f"{name}.{part}.phm_w"]
        n, o, i = w.shape
        res[f"{part}_weight"] = torch.einsum("iac,ibe->abce", rule, w).reshape(n * o, n * i)
        res[f"{part}_bias"] = state[f"{name}.{part}.bias"]
    return res


def set_base_delta(model: FedModel, deltas: dict[str, torch.Tensor] | None) -> None:
    """Add weight-space deltas to the frozen base weights of LoRA-wrapped layers (or, with None,
    restore the original base weights exactly).

    ``deltas`` maps a LoRA group prefix (``<prefix>.lora_A[.<name>].weight`` ->  ``<prefix>``) to
    a ``d_out x d_in`` tensor added to ``<prefix>.base_layer.weight``. Used by FLoRA (stacked
    updates merged into the base) and FedEx-LoRA (exact-aggregation residual). The originals are
    kept on the model, so calls do not accumulate: each call sets base = original + delta.
    """
    saved: dict[str, torch.Tensor] = model.__dict__.setdefault("_base_originals", {})
    params = dict(model.named_parameters())
    for key, original in list(saved.items()):
        params[key].data.copy_(original)
        if deltas is None or key.removesuffix(".base_layer.weight") not in deltas:
            del saved[key]
    for prefix, delta in (deltas or {}).items():
        key = f"{prefix}.base_layer.weight"
        if key not in params:
            raise ValueError(f"set_base_delta: no LoRA base weight {key!r} in the model")
        p = params[key]
        if tuple(delta.shape) != tuple(p.shape):
            raise ValueError(f"set_base_delta: {prefix!r} delta has shape {tuple(delta.shape)}, "
                             f"base weight {tuple(p.shape)}")
        if key not in saved:
            saved[key] = p.detach().clone()
        p.data.copy_(saved[key] + delta.to(p.device, p.dtype))
