"""Run one experiment end to end and write results with provenance (JSON, never pickle).

``run_experiment(cfg, out_dir)`` assembles the run with :func:`fedpia.rounds.build_run` (the same
assembly both engines use), drives the chosen engine (in-process simulator by default, Flower
simulation on request), checkpoints every round under ``out_dir/checkpoints``, logs every round
(``out_dir/rounds.csv`` and the other ``logging.backends``) and writes ``out_dir/results.json``
and ``out_dir/report.md``. ``results["status"]`` is ``"failed"`` when no round completed
(:func:`fedpia.rounds.run_failure`; ``fedpia run`` then exits non-zero); ``results["privacy"]``
is the privacy ledger's report after the last round (ε for δ; None without DP).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fedpia.experiments.config import ExperimentConfig
from fedpia.experiments.loggers import RunLogger, RunLoggers, build_loggers
from fedpia.experiments.resume import check_resume_config, finished_results, refuse_existing_run
from fedpia.provenance import provenance  # re-exported: fedpia.experiments.provenance

log = logging.getLogger(__name__)

__all__ = ["provenance", "run_experiment", "summarize"]


def summarize(history: list[dict[str, Any]], tasks: dict[str, str]) -> dict[str, Any]:
    """Final-round metrics per client and their mean, for the personalised and global views,
    plus bytes, wall time and the rounds skipped by the failure policy.

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
    out["skipped_rounds"] = [h["round"] for h in history if h.get("skipped")]
    out["wall_time"] = float(sum(h["round_time"] for h in history))
    return out


def run_experiment(
    cfg: ExperimentConfig,
    *,
    out_dir: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
    loggers: Sequence[RunLogger] = (),
) -> dict[str, Any]:
    """Run ``cfg`` and write ``results.json`` + ``report.md`` into ``out_dir``; returns the results.

    An ``out_dir`` that already holds a run (``results.json`` or checkpoints) is refused with
    ``FileExistsError`` unless ``resume`` (continue it) or ``overwrite`` (start over) is set, so
    an earlier run is never replaced by accident. ``resume`` with a larger ``sim.rounds``
    extends the run (:mod:`fedpia.experiments.resume`). Per-round metrics also go to the
    loggers of ``cfg.logging.backends`` (``rounds.csv`` by default) and to ``loggers``
    (:class:`~fedpia.experiments.loggers.RunLogger`); ``on_event(event, info)`` sees the
    engine's progress events (``round_start``, ``client_done``, ``round_end``, ...).
    """
    from fedpia.rounds import build_run

    out = Path(out_dir)
    refuse_existing_run(out, resume=resume, overwrite=overwrite)
    if resume:
        cfg = check_resume_config(out, cfg)
        done = finished_results(out, cfg)
        if done is not None:
            log.info("%s: the run in %s is already finished (%d rounds)", cfg.name, out, cfg.sim.rounds)
            return done
    run = build_run(cfg)
    t0 = time.perf_counter()
    if cfg.engine != "flower":
        run.model  # noqa: B018  (built now: a model error leaves no folder behind)
    data = run.data  # checks sim.min_clients too (before the folder exists)
    events = RunLoggers([*build_loggers(cfg, out), *loggers], on_event)  # a missing package too
    if resume and cfg.strategy == "centralized":
        log.warning("centralized training keeps no checkpoints: %s starts from round 1", out)
    out.mkdir(parents=True, exist_ok=True)  # only now: a config, data or model error leaves no folder
    if overwrite:  # start over: no stale checkpoint a later resume could pick up
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        shutil.rmtree(out / "tensorboard", ignore_errors=True)
        for name in ("results.json", "report.md", "rounds.csv", "mlflow_run_id"):
            (out / name).unlink(missing_ok=True)
    _write_json(out / "config.json", cfg.to_dict())
    tasks = {c.name: c.task for c in data.clients}
    try:
        history, failure = _run_engine(cfg, run, out / "checkpoints", resume=resume, events=events,
                                       tasks=tasks)
        results = {
            "config": cfg.to_dict(),
            "provenance": provenance(),
            "data": {c.name: {"task": c.task, "train": len(c.train), "test": len(c.test)}
                     for c in data.clients},
            "history": history,
            "summary": summarize(history, tasks),
            "status": "completed" if failure is None else "failed",
            "failure": failure,
            "privacy": history[-1].get("privacy") if history else None,
            "elapsed": time.perf_counter() - t0,
        }
        _write_json(out / "results.json", results)
        from fedpia.experiments.report import experiment_report

        (out / "report.md").write_text(experiment_report(results, out_dir=out))
    except BaseException:
        events.end(None)
        raise
    events.end(results)
    return results


def _run_engine(cfg: ExperimentConfig, run: Any, ckpt: Path, *, resume: bool, events: RunLoggers,
                tasks: dict[str, str]) -> tuple[list[dict[str, Any]], str | None]:
    """Drive the chosen engine; return the history and the run's failure (None: it completed,
    :func:`fedpia.rounds.run_failure`). ``events.start`` gets the rounds a resumed run already
    has, ``events`` every round record as the run goes."""
    from fedpia.rounds import run_failure

    def start(done: list[dict[str, Any]]) -> None:
        events.start(cfg.to_dict(), tasks=tasks, history=done)

    if cfg.engine == "flower":
        start([])
        history, failure = _flower_history(cfg)
        for record in history:  # Flower's simulation reports its rounds at the end
            events.round(record)
        return history, failure or run_failure(history)
    if cfg.strategy == "centralized":
        from fedpia.sim.centralized import run_centralized

        start([])
        history = run_centralized(run.model, run.data, sim=cfg.sim, train=cfg.train, on_event=events)
        return history, run_failure(history)
    from fedpia.sim import Simulator

    sim = Simulator.from_run(run, checkpoint_dir=ckpt, on_event=events)
    state = None
    if resume:
        if (ckpt / "checkpoint").exists() or (ckpt / "checkpoint.old").exists():
            state = sim.resume_state()
            log.info("resuming %s after round %d", cfg.name, state.round)
        else:
            log.info("no checkpoint under %s: starting from round 1", ckpt)
    start(state.history if state else [])
    history = sim.run(state).history
    return history, run_failure(history)


def _flower_history(cfg: ExperimentConfig) -> tuple[list[dict[str, Any]], str | None]:
    """(round records, failure) of a Flower simulation; a failed run whose ServerApp wrote its
    results gives those with the ServerApp's reason, one that wrote none raises."""
    from fedpia.flower import FlowerRunFailed, run_flower_simulation

    try:
        return run_flower_simulation(cfg).history, None
    except FlowerRunFailed as exc:
        if exc.result is None:
            raise
        return exc.result.history, exc.result.results.get("failure") or str(exc)


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=_default))
    os.replace(tmp, path)


def _default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
