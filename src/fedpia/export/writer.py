"""``export_run``: a run folder's global or personalised adapter -> a self-describing folder.

The export is checked before anything is written: the model is rebuilt from the run's config,
the adapter is loaded into it (exact keys and shapes), every head is loaded into a head built
for its vocabulary size, and the frozen backbone is fingerprinted. The folder is written under a
temporary name beside ``out`` and renamed into place, so ``out`` is either the complete export
or untouched. Layout and manifest: :mod:`fedpia.export.manifest`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from fedpia.align import unit_groups
from fedpia.export.manifest import (
    ADAPTER_FILE,
    BASE_DELTA_FILE,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    MULTILABEL_THRESHOLD,
    backbone_fingerprint,
    head_stems,
    privacy_section,
    weights_note,
)
from fedpia.export.peft_format import write_peft_lora
from fedpia.export.source import ExportError, RunSnapshot, Selection, read_run, select_adapter
from fedpia.models import ModelConfig, build_head, build_model, set_base_delta
from fedpia.models.weights import file_sha256
from fedpia.provenance import git_hash, package_versions
from fedpia.strategies.base import State

log = logging.getLogger(__name__)


def _check_out(out: Path, *, force: bool) -> None:
    """Refuse an occupied ``out`` unless ``force``; even then only an earlier export is replaced."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise ExportError(f"--out {out} exists and is not empty; choose another folder or pass "
                              "force=True (--force) to replace an earlier export there")
        if not (out / MANIFEST).is_file():
            raise ExportError(f"--out {out} is not empty and holds no earlier export ({MANIFEST}): "
                              "not replacing it, even with --force")


def _verified_model(cfg: ModelConfig, sel: Selection, vocab: dict[str, dict[str, Any]]):
    """(fingerprint, hidden size): the adapter, base deltas and heads fit the rebuilt model."""
    model = build_model(cfg)
    fingerprint = backbone_fingerprint(model)
    model.load_trainable_state(sel.adapter)
    if sel.base_delta:
        set_base_delta(model, sel.base_delta)
    for name, state in sel.heads.items():
        labels = vocab.get(name, {}).get("labels")
        if labels is None:
            raise ExportError(f"the checkpoint has no vocabulary for head {name!r}")
        head = build_head(vocab[name]["task"], model.hidden_size, len(labels), seed=0)
        try:
            head.load_state_dict(state)
        except RuntimeError as exc:
            raise ExportError(f"head {name!r} does not fit its vocabulary of {len(labels)} "
                              f"labels: {exc}") from exc
    return fingerprint, model.hidden_size


def _save(path: Path, state: State) -> None:
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(path))


def _write_heads(tmp: Path, sel: Selection, vocab: dict[str, dict[str, Any]],
                 hidden: int) -> dict[str, Any]:
    (tmp / "heads").mkdir()
    out = {}
    for name, stem in head_stems(sorted(sel.heads)).items():
        task, labels = vocab[name]["task"], list(vocab[name]["labels"])
        _save(tmp / "heads" / f"{stem}.safetensors", sel.heads[name])
        desc = {"name": name, "task": task, "hidden_size": hidden, "num_labels": len(labels),
                "architecture": "Linear(h, 2h) -> LayerNorm -> GELU -> Linear(2h, num_labels)",
                "scores": "sigmoid per label" if task == "multilabel" else "softmax over labels",
                "threshold": MULTILABEL_THRESHOLD if task == "multilabel" else None,
                "labels": labels}
        (tmp / "heads" / f"{stem}.json").write_text(json.dumps(desc, indent=1))
        out[name] = {"task": task, "num_labels": len(labels),
                     "weights": f"heads/{stem}.safetensors", "vocabulary": f"heads/{stem}.json",
                     "metrics": sel.metrics.get(name)}
    return out


def _adapter_section(cfg: ModelConfig, sel: Selection, round_: int) -> dict[str, Any]:
    section = {"kind": sel.kind, "client": sel.client, "round": round_, "peft": cfg.peft,
               "file": ADAPTER_FILE, "num_tensors": len(sel.adapter),
               "num_parameters": int(sum(v.numel() for v in sel.adapter.values())),
               "widths": {g.name: g.width for g in unit_groups(sel.adapter)},
               "base_delta": BASE_DELTA_FILE if sel.base_delta else None}
    if cfg.peft == "lora":
        section["lora"] = {"rank": cfg.lora_rank, "alpha": cfg.lora_alpha,
                           "scaling": cfg.lora_alpha / cfg.lora_rank}
    return section


def _provenance(snap: RunSnapshot) -> dict[str, Any]:
    cfg, res = snap.config, snap.results or {}
    if res and res.get("summary", {}).get("round") == snap.round:
        status = res.get("status")
    else:
        status = f"not finished: checkpoint after round {snap.round} of {cfg.sim.rounds}"
    trained = res.get("provenance") or {}
    return {"run_dir": str(snap.run_dir.resolve()), "run_name": cfg.name, "setting": cfg.setting,
            "strategy": cfg.strategy, "strategy_options": cfg.strategy_options,
            "seed": cfg.sim.seed, "rounds": cfg.sim.rounds, "round": snap.round,
            "run_status": status,
            "trained_with": {k: trained.get(k) for k in ("versions", "git_hash", "python")}
            if trained else None,
            "exported_with": {"versions": package_versions(), "git_hash": git_hash()}}


def _write_peft(tmp: Path, cfg: ModelConfig, sel: Selection) -> dict[str, Any] | None:
    if cfg.peft != "lora":
        return None
    if sel.base_delta:
        log.warning("no peft-format folder: this adapter carries base-weight deltas (FLoRA / "
                    "FedEx-LoRA), which peft's LoRA format cannot hold")
        return {"dir": None, "reason": "base-weight deltas (FLoRA / FedEx-LoRA) have no peft LoRA form"}
    return write_peft_lora(tmp / "peft", sel.adapter, cfg)


def _write(tmp: Path, snap: RunSnapshot, sel: Selection) -> None:
    cfg = snap.config.model_config()
    fingerprint, hidden = _verified_model(cfg, sel, snap.vocab)
    privacy = privacy_section(snap, sel.kind)
    _save(tmp / ADAPTER_FILE, sel.adapter)
    if sel.base_delta:
        _save(tmp / BASE_DELTA_FILE, sel.base_delta)
    heads = _write_heads(tmp, sel, snap.vocab, hidden)
    peft = _write_peft(tmp, cfg, sel)
    files = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*.safetensors"))
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "backbone": {"name": cfg.backbone, "pretrained": cfg.pretrained,
                     "weights": weights_note(cfg), "fingerprint": fingerprint},
        "model_config": dataclasses.asdict(cfg),
        "adapter": _adapter_section(cfg, sel, snap.round),
        "heads": heads,
        "heads_left_out": sel.left_out,
        "tasks": sorted({h["task"] for h in heads.values()}),
        "privacy": privacy,
        "peft": peft,
        "provenance": _provenance(snap),
        "files": {rel: file_sha256(tmp / rel) for rel in files},
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))


def export_run(run_dir: str | Path, out: str | Path, adapter: str = "global", *,
               force: bool = False) -> Path:
    """Export ``adapter`` ("global" or a client name) of the run in ``run_dir`` to the folder
    ``out`` (module docstring); returns ``out``. ExportError (a ValueError) for a folder without
    a checkpoint, an unknown or untrained client, an occupied ``out`` (unless ``force`` and it
    holds an earlier export), a DP run without its privacy report, or an adapter that does not
    fit the model rebuilt from the run's config."""
    out = Path(out)
    _check_out(out, force=force)
    snap = read_run(run_dir)
    sel = select_adapter(snap, adapter)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        _write(tmp, snap, sel)
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        if out.exists():  # an earlier export (force): swapped out, then removed
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if snap.config.dp.enabled:
        log.warning("%s: DP run; the heads (and a personalised adapter) carry no DP noise: see "
                    "privacy.not_covered in %s", out, MANIFEST)
    log.info("exported the %s adapter of %s (round %d) to %s", adapter, run_dir, snap.round, out)
    return out
