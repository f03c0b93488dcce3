"""Load an export folder and predict: ``load_exported(dir) -> ExportedModel``, ``predict``.

:func:`load_exported` checks the manifest and every file's sha256, rebuilds the model from
``model_config`` (the backbone from its shipped / pinned / seeded weights), checks the rebuilt
backbone's fingerprint against the one recorded at export, loads the adapter (and base-weight
deltas) and the heads, and places everything on ``device``. :func:`predict` scores one
(image, text) pair with one head:

- ``vqa`` / ``multiclass``: p = softmax(z) over the head's vocabulary; the ``top_k`` largest,
  as ``[(label, p), ...]`` sorted by p, descending;
- ``multilabel``: p_j = sigmoid(z_j) per label; every label with p_j >= ``threshold`` (default
  0.5, the threshold of the run's F1), sorted by p, descending (possibly empty).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from fedpia.data import load_image
from fedpia.device import autocast, model_device, model_precision, place
from fedpia.export.manifest import (
    ADAPTER_FILE,
    BASE_DELTA_FILE,
    MULTILABEL_THRESHOLD,
    backbone_fingerprint,
    read_manifest,
)
from fedpia.export.source import ExportError
from fedpia.models import FedModel, ModelConfig, build_head, build_model, set_base_delta
from fedpia.typecheck import build_dataclass


@dataclass
class ExportedHead:
    """One task head: ``labels[i]`` is the string of output ``i``."""

    name: str
    task: str
    labels: tuple[str, ...]
    module: nn.Module


@dataclass
class ExportedModel:
    """An export folder loaded for inference: the model with its adapter, the heads by client
    name, and the manifest (``fedpia_adapter.json``)."""

    path: Path
    manifest: dict[str, Any]
    model: FedModel
    heads: dict[str, ExportedHead]

    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    def head(self, name: str | None = None) -> ExportedHead:
        """Head ``name``; None = the only head (ExportError when there are several)."""
        if name is None:
            if len(self.heads) == 1:
                return next(iter(self.heads.values()))
            raise ExportError(f"{self.path} holds {len(self.heads)} heads (one per client): choose "
                              f"one with head= (--head): {sorted(self.heads)}")
        if name not in self.heads:
            raise ExportError(f"no head {name!r} in {self.path}; heads: {sorted(self.heads)}")
        return self.heads[name]

    @torch.no_grad()
    def logits(self, images: Sequence[Any], texts: Sequence[str], *,
               head: str | None = None) -> torch.Tensor:
        """Logits ``[B, num_labels]`` (float32, CPU) of head ``head`` for B (image, text) pairs.
        Images: paths, PIL images or arrays (:func:`fedpia.data.load_image`)."""
        if len(images) != len(texts):
            raise ValueError(f"got {len(images)} images but {len(texts)} texts")
        h = self.head(head)
        batch = self.model.processor([load_image(im) for im in images], list(texts))
        dev = self.device
        batch = {k: v.to(dev) for k, v in batch.items()}
        self.model.eval()
        h.module.eval()
        with autocast(dev, model_precision(self.model)):
            return h.module(self.model(batch)).float().cpu()


def _load_heads(folder: Path, manifest: dict[str, Any], hidden: int) -> dict[str, ExportedHead]:
    heads = {}
    for name, entry in manifest["heads"].items():
        desc = json.loads((folder / entry["vocabulary"]).read_text())
        module = build_head(desc["task"], hidden, len(desc["labels"]), seed=0)
        module.load_state_dict(load_file(str(folder / entry["weights"])))
        heads[name] = ExportedHead(name, desc["task"], tuple(desc["labels"]), module)
    return heads


def load_exported(path: str | Path, *, device: str = "auto", precision: str = "fp32",
                  verify: bool = True) -> ExportedModel:
    """Load export folder ``path`` (module docstring) on ``device`` (``auto`` | ``cpu`` |
    ``cuda[:n]`` | ``mps``) at autocast ``precision``. ``verify`` checks the files' sha256 and
    the rebuilt backbone's fingerprint; a mismatch is an ExportError (the adapter would run on
    other weights than it was trained with)."""
    folder = Path(path)
    manifest = read_manifest(folder, check_files=verify)
    cfg = build_dataclass(ModelConfig, manifest["model_config"], "model_config")
    model = build_model(cfg)
    if verify:
        got, want = backbone_fingerprint(model), manifest["backbone"]["fingerprint"]
        if got != want:
            raise ExportError(
                f"{folder}: the backbone rebuilt from model_config has fingerprint {got}, the "
                f"export was trained on {want}: other weights ({manifest['backbone']['weights']}); "
                "check the weight packages / checkpoint and the torch version")
    model.load_trainable_state(load_file(str(folder / ADAPTER_FILE)))
    if manifest["adapter"].get("base_delta"):
        set_base_delta(model, load_file(str(folder / BASE_DELTA_FILE)))
    heads = _load_heads(folder, manifest, model.hidden_size)
    dev = place(model, device=device, precision=precision)
    for h in heads.values():
        h.module.to(dev)
    return ExportedModel(folder, manifest, model, heads)


def predict(exported: ExportedModel, image: Any, question: str, *, head: str | None = None,
            top_k: int = 5, threshold: float | None = None) -> list[tuple[str, float]]:
    """``[(label, score), ...]`` for one image (path or PIL image) and question / text, sorted
    by score, descending (module docstring for the scores; ``top_k`` applies to vqa /
    multiclass, ``threshold`` to multilabel)."""
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    h = exported.head(head)
    z = exported.logits([image], [question], head=h.name)[0]
    if h.task == "multilabel":
        p = torch.sigmoid(z)
        cut = MULTILABEL_THRESHOLD if threshold is None else threshold
        idx = [int(i) for i in torch.argsort(p, descending=True) if p[i] >= cut]
    else:
        p = torch.softmax(z, dim=0)
        idx = [int(i) for i in torch.argsort(p, descending=True)[:top_k]]
    return [(h.labels[i], float(p[i])) for i in idx]
