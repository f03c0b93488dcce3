"""Run one experiment end to end and write results with provenance (JSON, never pickle).

``run_experiment(cfg, out_dir)`` builds data, model and strategy from the config, drives the chosen
engine (in-process simulator by default, Flower simulation on request), checkpoints every round
under ``out_dir/checkpoints`` and writes ``out_dir/results.json`` and ``out_dir/report.md``.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from fedpia.experiments.config import ExperimentConfig

log = logging.getLogger(__name__)

_PACKAGES = ("fedpia", "torch", "transformers", "peft", "POT", "numpy", "flwr")


def provenance() -> dict[str, Any]:
    """Versions, git hash, host facts: what a reader needs to reproduce a result."""
    versions = {}
    for pkg in _PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    try:
        git = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        git = None
    return {
        "versions": versions,
        "git_hash": git,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def summarize(history: list[dict[str, Any]], tasks: dict[str, str]) -> dict[str, Any]:
    """Final-round metrics per client and their mean, for the personalised and global views.

    The headline metric of a client is overall accuracy (VQA / multiclass) or micro F1
    (multilabel); ``mean`` is the unweighted mean over clients (as in the paper's tables).
    """
    from fedpia.client import primary_metric

    if not history:
        return {}
    final = history[-1]["eval"]
    out: dict[str, Any] = {"round": history[-1]["round"], "per_client": {}, "mean": {}}
    for view in ("personalized", "global"):
        values = []
        for client, res in final.items():
            if view in res:
                value = res[view][primary_metric(tasks[client])]
                out["per_client"].setdefault(client, {})[view] = value
                values.append(value)
        if values:
            out["mean"][view] = float(np.mean(values))
    out["bytes_communicated"] = int(sum(h["bytes_up"] + h["bytes_down"] for h in history))
    out["wall_time"] = float(sum(h["round_time"] for h in history))
    return out


def run_experiment(
    cfg: ExperimentConfig,
    *,
    out_dir: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run ``cfg`` and write ``results.json`` + ``report.md`` into ``out_dir``; returns the results.

    An ``out_dir`` that already holds a run (``results.json`` or checkpoints) is refused with
    ``FileExistsError`` unless ``resume`` (continue it) or ``overwrite`` (start over) is set, so
    an earlier run is never replaced by accident.
    """
    from fedpia.data import get_setting
    from fedpia.device import place
    from fedpia.models import build_model
    from fedpia.sim import Simulator
    from fedpia.sim.simulator import check_min_clients
    from fedpia.strategies import build_strategy

    cfg.validate()
    out = Path(out_dir)
    ckpt = out / "checkpoints"
    refuse_existing_run(out, resume=resume, overwrite=overwrite)
    if resume:
        check_resume_config(out, cfg)
        done = _finished_results(out, cfg)
        if done is not None:
            log.info("%s: the run in %s is already finished (%d rounds)", cfg.name, out, cfg.sim.rounds)
            return done
    t0 = time.perf_counter()
    model = build_model(cfg.model_config()) if cfg.engine != "flower" else None
    if model is not None:  # device + precision once, before the data are encoded
        place(model, device=cfg.train.device, precision=cfg.train.precision)
    data = get_setting(cfg.setting, data_root=cfg.data_root, seed=cfg.sim.seed, **cfg.setting_options)
    check_min_clients(cfg.sim, data)  # before the folder exists (the Flower engine needs it too)
    if resume and cfg.strategy == "centralized":
        log.warning("centralized training keeps no checkpoints: %s starts from round 1", out)
    out.mkdir(parents=True, exist_ok=True)  # only now: a config, data or model error leaves no folder
    if overwrite:  # start over: no stale checkpoint a later resume could pick up
        shutil.rmtree(ckpt, ignore_errors=True)
        for name in ("results.json", "report.md"):
            (out / name).unlink(missing_ok=True)
    _write_json(out / "config.json", cfg.to_dict())
    tasks = {c.name: c.task for c in data.clients}
    if cfg.engine == "flower":
        from fedpia.flower import run_flower_simulation

        history = run_flower_simulation(cfg)
    elif cfg.strategy == "centralized":
        from fedpia.sim.centralized import run_centralized

        history = run_centralized(model, data, sim=cfg.sim, train=cfg.train,
                                  on_event=on_event)
    else:
        strategy = build_strategy(cfg.strategy, **_with_lora_scaling(cfg))
        sim = Simulator(
            model, data, strategy, sim=cfg.sim, train=cfg.train, checkpoint_dir=ckpt, on_event=on_event
        )
        state = None
        if resume:
            if (ckpt / "checkpoint").exists() or (ckpt / "checkpoint.old").exists():
                state = sim.resume_state()
                log.info("resuming %s after round %d", cfg.name, state.round)
            else:
                log.info("no checkpoint under %s: starting from round 1", ckpt)
        history = sim.run(state).history
    results = {
        "config": cfg.to_dict(),
        "provenance": provenance(),
        "data": {c.name: {"task": c.task, "train": len(c.train), "test": len(c.test)} for c in data.clients},
        "history": history,
        "summary": summarize(history, tasks),
        "elapsed": time.perf_counter() - t0,
    }
    _write_json(out / "results.json", results)
    from fedpia.experiments.report import experiment_report

    (out / "report.md").write_text(experiment_report(results))
    return results


_RESUME_FREE = ("data_root",)  # may differ on resume (the data moved); everything else may not


def _finished_results(out: Path, cfg: ExperimentConfig) -> dict[str, Any] | None:
    """The saved results of a finished run in ``out`` (all ``sim.rounds`` rounds), else None."""
    path = out / "results.json"
    if not path.is_file():
        return None
    results = json.loads(path.read_text())
    return results if len(results.get("history", [])) == cfg.sim.rounds else None


def check_resume_config(out: Path, cfg: ExperimentConfig) -> None:
    """Refuse to resume a run in ``out`` under a different config (a resumed run must equal the
    uninterrupted one: seeds, client heads, the lr schedule over ``sim.rounds`` depend on it),
    and with the Flower engine (no fedpia checkpoints). The saved config is ``out/config.json``
    (written when a run starts; ``results.json`` of runs from before it existed). A folder with
    nothing to resume yet (no checkpoint, no results) accepts any config."""
    if cfg.engine == "flower":
        raise ValueError("resume is not supported with engine 'flower' (a Flower run keeps no "
                         "fedpia checkpoints); start over with overwrite (--overwrite)")
    ckpt = out / "checkpoints"
    progress = [ckpt / "checkpoint", ckpt / "checkpoint.old", out / "results.json"]
    if not any(p.exists() for p in progress):
        return
    saved = None
    for name in ("config.json", "results.json"):
        path = out / name
        if path.is_file():
            raw = json.loads(path.read_text())
            saved = raw if name == "config.json" else raw.get("config")
            break
    if saved is None:
        if ckpt.exists():
            log.warning("%s has checkpoints but no saved config: cannot check that it matches", out)
        return
    now = json.loads(json.dumps(cfg.to_dict()))  # tuples as lists, like the saved JSON
    diffs = [f"{k}: {a!r} -> {b!r}" for k, a, b in _diff(saved, now) if k not in _RESUME_FREE]
    if diffs:
        raise ValueError(f"cannot resume the run in {out} with a different config ({'; '.join(diffs)}); "
                         "resume with the same settings, or start over with overwrite (--overwrite)")


def _diff(a: Any, b: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [(prefix.rstrip("."), a, b)]


def refuse_existing_run(out: Path, *, resume: bool, overwrite: bool,
                        markers: tuple[str, ...] = ("results.json", "checkpoints")) -> None:
    """FileExistsError if ``out`` holds a run (any of ``markers``) and neither ``resume`` nor
    ``overwrite`` is set (ValueError if both are)."""
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: resume (--resume) continues the "
                         "run in the output folder, overwrite (--overwrite) starts over")
    if resume or overwrite:
        return
    found = [out / m for m in markers if (out / m).exists()]
    if found:
        raise FileExistsError(
            f"{out} already holds a run ({', '.join(p.name for p in found)}); "
            "pass resume=True (--resume) to continue it, overwrite=True (--overwrite) to start over, "
            "or choose another output folder"
        )


def _with_lora_scaling(cfg: ExperimentConfig) -> dict[str, Any]:
    """Strategy knobs, with ``lora_scaling`` = lora_alpha / lora_rank filled in from the model
    config for strategies that merge LoRA products into base weights (unless set explicitly)."""
    from fedpia.strategies import strategy_fields

    knobs = dict(cfg.strategy_options)
    if "lora_scaling" in strategy_fields(cfg.strategy) and "lora_scaling" not in knobs:
        mc = cfg.model_config()
        knobs["lora_scaling"] = mc.lora_alpha / mc.lora_rank
    return knobs


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=_default))
    os.replace(tmp, path)


def _default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
