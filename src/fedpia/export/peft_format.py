"""LoRA adapters in Hugging Face peft's own format, loadable with ``PeftModel.from_pretrained``.

fedpia injects LoRA with peft into the backbone's transformers model (``FedModel.backbone.hf``:
the MiniLM ``BertModel`` text encoder of ``minilm-vl``, ``ViltModel``, ``BlipForQuestionAnswering``,
``CLIPModel``), so a trainable key ``backbone.hf.<module>.lora_A.default.weight`` is peft's
``base_model.model.<module>.lora_A.weight`` on that transformers model (peft drops the adapter
name when saving). The folder holds ``adapter_config.json`` (written by peft's ``LoraConfig``)
and ``adapter_model.safetensors`` (metadata ``format=pt``, as peft writes it)::

    base = hf_base_model(model_config)       # the same transformers model, without LoRA
    peft_model = PeftModel.from_pretrained(base, "DIR/peft")

Only the LoRA matrices are in this format: anything else the fedpia model trains
(``train_projector``'s image projector) is not part of the transformers model and is listed
under ``peft.not_included`` in ``fedpia_adapter.json``; base-weight deltas (FLoRA, FedEx-LoRA)
have no peft LoRA form, so such adapters get no peft folder.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from torch import nn

from fedpia.models import ModelConfig, build_model
from fedpia.strategies.base import State

HF_PREFIX = "backbone.hf."
_LORA = re.compile(r"backbone\.hf\.(.+)\.(lora_[AB])\.([^.]+)\.weight")
#: the hub id of the weights shipped for ``minilm-vl`` (pretrained=None)
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
#: the transformers class of each backbone's ``.hf`` model (what peft wraps)
HF_CLASSES = {"minilm-vl": "BertModel", "vilt": "ViltModel", "blip": "BlipForQuestionAnswering",
              "clip": "CLIPModel"}


def base_model_id(cfg: ModelConfig) -> str | None:
    """What ``base_model_name_or_path`` names: the checkpoint of vilt/blip/clip, the hub id of
    minilm-vl's shipped MiniLM weights, None for in-code weights ("tiny", "random")."""
    if cfg.backbone == "minilm-vl":
        return MINILM_HUB_ID if cfg.pretrained is None else None
    return None if cfg.pretrained == "tiny" else cfg.pretrained


def peft_lora_state(adapter: State) -> tuple[dict[str, Any], list[str], list[str]]:
    """``(peft state, target modules, keys not included)`` of a fedpia LoRA trainable state.

    peft state: ``{"base_model.model.<module>.lora_A|lora_B.weight": tensor}`` (one adapter name
    only; ValueError for several). Target modules: the ``<module>`` names, sorted."""
    out, targets, names, rest = {}, set(), set(), []
    for key, value in adapter.items():
        m = _LORA.fullmatch(key)
        if m is None:
            rest.append(key)
            continue
        module, part, name = m.groups()
        names.add(name)
        targets.add(module)
        out[f"base_model.model.{module}.{part}.weight"] = value.detach().contiguous().cpu()
    if len(names) > 1:
        raise ValueError(f"LoRA state holds several adapter names {sorted(names)}")
    if not out:
        raise ValueError("the adapter holds no LoRA matrices (backbone.hf.*.lora_A|B.*.weight)")
    return out, sorted(targets), sorted(rest)


def write_peft_lora(folder: Path, adapter: State, cfg: ModelConfig) -> dict[str, Any]:
    """Write ``folder/adapter_config.json`` + ``folder/adapter_model.safetensors``; returns what
    ``fedpia_adapter.json`` records about it (base model, target count, keys not included)."""
    from peft import LoraConfig
    from safetensors.torch import save_file

    state, targets, rest = peft_lora_state(adapter)
    folder.mkdir(parents=True)
    conf = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=targets, base_model_name_or_path=base_model_id(cfg),
                      inference_mode=True)
    conf.save_pretrained(str(folder))
    save_file(state, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    return {"dir": folder.name, "base_model_name_or_path": base_model_id(cfg),
            "base_model_class": HF_CLASSES[cfg.backbone],
            "target_modules": len(targets), "not_included": rest}


def hf_base_model(cfg: ModelConfig) -> nn.Module:
    """The backbone's transformers model exactly as fedpia builds it for ``cfg`` (same weights:
    shipped / checkpoint / seeded), without any PEFT method: the base that
    ``PeftModel.from_pretrained`` wraps."""
    return build_model(dataclasses.replace(cfg, peft="classifier")).backbone.hf
