"""What an occupied output folder allows: refuse it, resume the run in it, or extend that run.

A run folder holds ``config.json`` (written when the run starts), ``checkpoints/`` (one per
round) and, once finished, ``results.json``. :func:`refuse_existing_run` keeps an earlier run
from being replaced by accident; :func:`check_resume_config` decides which config a resumed run
continues with:

- the same config as the saved one (only ``data_root`` and the ``logging`` section may differ):
  the run continues from its last checkpoint, and a finished run is not run again;
- a larger ``sim.rounds`` (``--resume --set sim.rounds=N``): the run is *extended*. Its first R
  rounds are the saved ones; the lr schedule is not stretched over the new total, since rounds
  1..R already trained with the schedule over R rounds. So the extension records
  ``train.schedule_rounds = R`` and the new rounds keep the schedule's last lr
  (:func:`fedpia.client.round_lr`). The extended run is then exactly the config it saves
  (``sim.rounds=N``, ``train.schedule_rounds=R``) run from scratch;
- anything else (another seed, strategy, lr, fewer rounds, another ``train.schedule_rounds``) is
  refused with the changed fields named.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from fedpia.experiments.config import ExperimentConfig

log = logging.getLogger(__name__)

# may differ on resume (the data moved; where metrics are logged): dotted-key prefixes
RESUME_FREE = ("data_root", "logging")


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


def check_resume_config(out: Path, cfg: ExperimentConfig) -> ExperimentConfig:
    """The config a resumed run in ``out`` continues with (module docstring): ``cfg``, with
    ``train.schedule_rounds`` fixed to the saved run's schedule when ``cfg`` keeps or extends
    its rounds. ValueError for any other difference from the saved config (naming the fields),
    and with the Flower engine (no fedpia checkpoints). The saved config is ``out/config.json``
    (``results.json`` of runs from before it existed); a folder with nothing to resume yet (no
    checkpoint, no results) accepts any config."""
    if cfg.engine == "flower":
        raise ValueError("resume is not supported with engine 'flower' (a Flower run keeps no "
                         "fedpia checkpoints); start over with overwrite (--overwrite)")
    saved = _saved_config(out)
    if saved is None:
        return cfg
    defaults = json.loads(json.dumps(ExperimentConfig().to_dict()))
    saved = _with_defaults(saved, defaults)  # fields newer than the saved run: their defaults
    rounds, schedule = saved["sim"]["rounds"], saved["train"]["schedule_rounds"]
    cfg = _keep_schedule(cfg, rounds, schedule)
    if cfg.sim.rounds > rounds:  # schedule 0 meant "over the saved rounds": the same schedule
        saved["train"]["schedule_rounds"] = schedule or rounds
    now = json.loads(json.dumps(cfg.to_dict()))  # tuples as lists, like the saved JSON
    diffs = [f"{k}: {a!r} -> {b!r}" for k, a, b in _diff(saved, now)
             if not k.startswith(RESUME_FREE) and not (k == "sim.rounds" and b > a)]
    if diffs:
        hint = (" (sim.rounds may only grow: --resume --set sim.rounds=N extends a run)"
                if any(d.startswith("sim.rounds:") for d in diffs) else "")
        raise ValueError(f"cannot resume the run in {out} with a different config ({'; '.join(diffs)})"
                         f"{hint}; resume with the same settings, or start over with overwrite "
                         "(--overwrite)")
    if cfg.sim.rounds > rounds:
        log.info("%s: extending the run in %s from %d to %d rounds (rounds after %d keep the lr "
                 "of round %d: train.schedule_rounds=%d)", cfg.name, out, rounds, cfg.sim.rounds,
                 cfg.train.schedule_rounds, cfg.train.schedule_rounds, cfg.train.schedule_rounds)
    return cfg


def finished_results(out: Path, cfg: ExperimentConfig) -> dict[str, Any] | None:
    """The saved results of a finished run in ``out`` (all ``sim.rounds`` rounds), else None."""
    path = out / "results.json"
    if not path.is_file():
        return None
    results = json.loads(path.read_text())
    history = results.get("history", [])
    return results if history and history[-1].get("round") == cfg.sim.rounds else None


def _keep_schedule(cfg: ExperimentConfig, saved_rounds: int, saved_schedule: int) -> ExperimentConfig:
    """``cfg`` with the saved run's lr schedule when it keeps (same ``sim.rounds``) or extends
    (more) the saved rounds and leaves ``train.schedule_rounds`` unset or at the saved horizon."""
    horizon = saved_schedule or saved_rounds
    if cfg.sim.rounds < saved_rounds or cfg.train.schedule_rounds not in (0, horizon):
        return cfg  # refused below, naming the field
    schedule = saved_schedule if cfg.sim.rounds == saved_rounds else horizon
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, schedule_rounds=schedule))


def _saved_config(out: Path) -> dict[str, Any] | None:
    """The saved config of a run in ``out`` that has progress to resume, else None."""
    ckpt = out / "checkpoints"
    progress = [ckpt / "checkpoint", ckpt / "checkpoint.old", out / "results.json"]
    if not any(p.exists() for p in progress):
        return None
    for name in ("config.json", "results.json"):
        path = out / name
        if path.is_file():
            raw = json.loads(path.read_text())
            return raw if name == "config.json" else raw.get("config")
    if ckpt.exists():
        log.warning("%s has checkpoints but no saved config: cannot check that it matches", out)
    return None


def _with_defaults(saved: Any, defaults: Any) -> Any:
    """``saved`` with the keys it lacks taken from ``defaults`` (nested dicts merged)."""
    if not (isinstance(saved, dict) and isinstance(defaults, dict)):
        return saved
    return {**defaults, **{k: _with_defaults(v, defaults.get(k)) for k, v in saved.items()}}


def _diff(a: Any, b: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [(prefix.rstrip("."), a, b)]
