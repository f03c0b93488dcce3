"""Per-round logging of a run behind one small interface, :class:`RunLogger`.

The runner calls, for every configured logger (``logging.backends``) and every logger passed to
``run_experiment(loggers=...)``::

    start(config, tasks=..., history=...)   # once, before the first new round
    round(record)                           # after every round (the round record of results.json)
    end(results)                            # once: the results dict, or None if the run raised

``history`` is the rounds a resumed run already has (empty for a fresh run): a logger must not
log them again, and must drop anything it logged past them (a kill between logging round r and
checkpointing it reruns round r). Backends: ``csv`` (:class:`CsvLogger`, ``OUT/rounds.csv``, on
by default), ``tensorboard`` and ``mlflow`` (:mod:`fedpia.experiments.tracking`, imported only
when chosen).

``rounds.csv`` is long-form: one row per (round, client, view), view = ``personalized`` | ``global``:
``round, client, view``, the evaluation metrics of that view (``accuracy``, ``accuracy_closed``,
``accuracy_open``, ``f1_micro``, ``f1_macro``, ``auc_macro``: empty where a task has none), the
client's ``status`` in the round (``aggregated``, ``rejected``, ``failed``, ``trained`` in a
skipped round, ``idle`` when not sampled), its training info prefixed ``train_`` (``train_loss``,
``train_lr``, ``train_steps``, ``train_time``, ...), then the round's ``round_time``,
``server_time``, ``bytes_up``, ``bytes_down``, ``skipped`` (the reason, else empty).
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Callable, Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from fedpia.experiments.config import ExperimentConfig

log = logging.getLogger(__name__)

METRICS = ("accuracy", "accuracy_closed", "accuracy_open", "f1_micro", "f1_macro", "auc_macro")
ROUND_COLUMNS = ("round_time", "server_time", "bytes_up", "bytes_down", "skipped")


@runtime_checkable
class RunLogger(Protocol):
    """Receives a run's config, each round record and the results (module docstring)."""

    def start(self, config: dict[str, Any], *, tasks: dict[str, str],
              history: list[dict[str, Any]]) -> None: ...

    def round(self, record: dict[str, Any]) -> None: ...

    def end(self, results: dict[str, Any] | None) -> None: ...


class LoggerUnavailable(ImportError):
    """A chosen logging backend needs a package that is not installed."""


def client_status(record: dict[str, Any], client: str) -> str:
    """What ``client`` did in the round of ``record`` (see ``rounds.csv`` in the module docstring)."""
    if client in record.get("failed", {}):
        return "failed"
    if client in record.get("rejected", {}):
        return "rejected"
    if client not in record.get("clients", {}):
        return "idle"
    return "trained" if record.get("skipped") else "aggregated"


def round_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``rounds.csv`` rows of one round record (one per client and evaluated view)."""
    common = {k: record.get(k) for k in ROUND_COLUMNS}
    common["skipped"] = common["skipped"] or ""
    rows = []
    for client, views in record.get("eval", {}).items():
        info = record.get("clients", {}).get(client, {})
        train = {(k if k.startswith("train_") else f"train_{k}"): _number(v) for k, v in info.items()
                 if isinstance(v, Real)}
        for view, metrics in views.items():
            rows.append({"round": record["round"], "client": client, "view": view, **metrics,
                         "status": client_status(record, client), **train, **common})
    return rows


def _number(v: Real) -> int | float:
    return int(v) if isinstance(v, Integral) else float(v)


def round_scalars(record: dict[str, Any], tasks: dict[str, str]) -> dict[str, float]:
    """Flat ``{tag: value}`` of one round for TensorBoard / MLflow: ``<view>/headline`` (the
    client mean of each client's headline metric, as in the summary), ``<view>/<metric>/mean``
    and ``<view>/<metric>/<client>``, ``train/<key>/<client>``, ``round/<column>``."""
    from fedpia.client import primary_metric

    out: dict[str, float] = {}
    for view in ("personalized", "global"):
        per = {c: res[view] for c, res in record.get("eval", {}).items() if view in res}
        if per:
            out[f"{view}/headline"] = float(np.mean([m[primary_metric(tasks[c])] for c, m in per.items()]))
        for metric in sorted({k for m in per.values() for k in m}):
            vals = {c: float(m[metric]) for c, m in per.items() if metric in m}
            out[f"{view}/{metric}/mean"] = float(np.mean(list(vals.values())))
            out.update({f"{view}/{metric}/{c}": v for c, v in vals.items()})
    for client, info in record.get("clients", {}).items():
        out.update({f"train/{k}/{client}": float(v) for k, v in info.items() if isinstance(v, Real)})
    for key in ROUND_COLUMNS[:-1]:
        out[f"round/{key}"] = float(record.get(key) or 0.0)
    out["round/skipped"] = float(bool(record.get("skipped")))
    return out


class CsvLogger:
    """``rounds.csv`` (module docstring), flushed after every round. ``start`` rewrites the file
    from the rounds a resumed run already has, so rows of a round rerun after a kill are not
    duplicated; a metric column that first appears later rewrites the file with the wider header."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.columns: list[str] = []
        self.rows: list[dict[str, Any]] = []

    def start(self, config: dict[str, Any], *, tasks: dict[str, str],
              history: list[dict[str, Any]]) -> None:
        self.rows = [row for rec in history for row in round_rows(rec)]
        self.columns = []
        self._rewrite(self.rows)

    def round(self, record: dict[str, Any]) -> None:
        rows = round_rows(record)
        self.rows += rows
        if any(k not in self.columns for row in rows for k in row):
            self._rewrite(self.rows)
            return
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.columns).writerows(rows)
            f.flush()

    def end(self, results: dict[str, Any] | None) -> None:
        pass  # every round is on disk already

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        """The whole file, atomically (temporary file + rename)."""
        self.columns = _columns(rows)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, self.columns)
        if self.columns:
            writer.writeheader()
            writer.writerows(rows)
        tmp = self.path.with_suffix(".csv.tmp")
        tmp.write_text(buf.getvalue())
        os.replace(tmp, self.path)


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    """Header: round, client, view, the known metrics in order, other keys in first-seen order."""
    seen = list(dict.fromkeys(k for row in rows for k in row))
    if not seen:
        return []
    head = ["round", "client", "view", *[m for m in METRICS if m in seen]]
    tail = [k for k in ROUND_COLUMNS if k in seen]
    return head + [k for k in seen if k not in head and k not in tail] + tail


class RunLoggers:
    """Several loggers as one, plus the runner's ``on_event`` hook: every event goes to
    ``on_event``, and a ``round_end`` event's record also to each logger's ``round``."""

    def __init__(self, loggers: Sequence[RunLogger],
                 on_event: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self.loggers, self.on_event = list(loggers), on_event

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        if self.on_event is not None:
            self.on_event(event, info)
        if event == "round_end":
            self.round(info)

    def start(self, config: dict[str, Any], *, tasks: dict[str, str],
              history: list[dict[str, Any]]) -> None:
        for lg in self.loggers:
            lg.start(config, tasks=tasks, history=history)

    def round(self, record: dict[str, Any]) -> None:
        for lg in self.loggers:
            lg.round(record)

    def end(self, results: dict[str, Any] | None) -> None:
        for lg in self.loggers:
            try:
                lg.end(results)
            except Exception:  # closing one logger must not hide the run's own error
                log.exception("logger %s failed to close", type(lg).__name__)


def build_loggers(cfg: ExperimentConfig, out_dir: str | Path) -> list[RunLogger]:
    """The loggers of ``cfg.logging.backends`` (``fedpia.rounds.LOGGING_BACKENDS``) for a run
    writing into ``out_dir``.
    :class:`LoggerUnavailable` names the package a chosen backend needs when it is missing."""
    from fedpia.experiments import tracking

    factories: dict[str, Callable[[ExperimentConfig, Path], RunLogger]] = {
        "csv": lambda c, out: CsvLogger(out / "rounds.csv"),
        "tensorboard": tracking.TensorBoardLogger.for_run,
        "mlflow": tracking.MlflowLogger.for_run,
    }
    return [factories[name](cfg, Path(out_dir)) for name in cfg.logging.backends]
