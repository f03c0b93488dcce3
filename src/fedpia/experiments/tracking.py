"""Optional experiment trackers behind :class:`~fedpia.experiments.loggers.RunLogger`:
TensorBoard and MLflow, each imported only when ``logging.backends`` names it.

Both log :func:`~fedpia.experiments.loggers.round_scalars` with step = round:
``personalized/headline`` and ``global/headline`` (client mean of the headline metric, as in
``results.json``'s summary), ``<view>/<metric>/mean`` and ``/<client>``, ``train/<key>/<client>``
(loss, lr, steps, timings) and ``round/<round_time|server_time|bytes_up|bytes_down|skipped>``.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

from fedpia.experiments.config import ExperimentConfig
from fedpia.experiments.loggers import LoggerUnavailable, round_scalars


def _require(backend: str, module: str, install: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise LoggerUnavailable(f"logging backend {backend!r} needs the {module!r} package, which "
                                f"is not installed: {install} (or drop it from logging.backends)")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "run"


class TensorBoardLogger:
    """Event files written with ``torch.utils.tensorboard.SummaryWriter`` (needs the
    ``tensorboard`` package: ``pip install 'fedpia[tensorboard]'``); view them with
    ``tensorboard --logdir DIR``. The config is logged as text at step 0. ``purge_step`` = the
    first round this process runs: TensorBoard hides what an earlier process logged from that
    round on (a round rerun after a kill, or a run started over in the same folder)."""

    def __init__(self, log_dir: str | Path) -> None:
        _require("tensorboard", "tensorboard", "pip install 'fedpia[tensorboard]'")
        self.log_dir = Path(log_dir)
        self.writer: Any = None
        self.tasks: dict[str, str] = {}

    @classmethod
    def for_run(cls, cfg: ExperimentConfig, out: Path) -> TensorBoardLogger:
        """``OUT/tensorboard``, or ``logging.dir/<OUT as a name>`` (one TensorBoard run per run)."""
        root = cfg.logging.dir
        return cls(out / "tensorboard" if root is None else Path(root) / _slug(str(out)))

    def start(self, config: dict[str, Any], *, tasks: dict[str, str],
              history: list[dict[str, Any]]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.tasks = dict(tasks)
        first = history[-1]["round"] + 1 if history else 1
        self.writer = SummaryWriter(str(self.log_dir), purge_step=first)
        if not history:
            self.writer.add_text("config", "    " + json.dumps(config, indent=1).replace("\n", "\n    "), 0)

    def round(self, record: dict[str, Any]) -> None:
        for tag, value in round_scalars(record, self.tasks).items():
            self.writer.add_scalar(tag, value, record["round"])
        self.writer.flush()

    def end(self, results: dict[str, Any] | None) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class MlflowLogger:
    """MLflow's fluent API (``pip install mlflow``; not a fedpia dependency). Experiment: the
    config name up to its first ``/`` (the preset; ``compare`` names runs ``preset/method``);
    run name: ``<config name>/seed<k>``; params: the config, flattened to dotted keys; metrics
    per round; at the end ``report.md`` and the PNG plots as artifacts and status FINISHED (FAILED
    when the run raised). The MLflow run id is kept in ``OUT/mlflow_run_id``: a resumed run
    continues the same MLflow run (its params are not logged again)."""

    def __init__(self, out: str | Path, *, uri: str | None = None) -> None:
        _require("mlflow", "mlflow", "pip install mlflow")
        self.out, self.uri = Path(out), uri
        self.tasks: dict[str, str] = {}

    @classmethod
    def for_run(cls, cfg: ExperimentConfig, out: Path) -> MlflowLogger:
        return cls(out, uri=cfg.logging.mlflow_uri)

    def start(self, config: dict[str, Any], *, tasks: dict[str, str],
              history: list[dict[str, Any]]) -> None:
        import mlflow

        self.tasks = dict(tasks)
        if self.uri:
            mlflow.set_tracking_uri(self.uri)
        mlflow.set_experiment(config["name"].split("/")[0])
        id_file = self.out / "mlflow_run_id"
        if history and id_file.is_file():
            mlflow.start_run(run_id=id_file.read_text().strip())
        else:
            run = mlflow.start_run(run_name=f"{config['name']}/seed{config['sim']['seed']}")
            id_file.write_text(run.info.run_id)
            mlflow.log_params(flat_params(config))
        mlflow.set_tags({"fedpia.out_dir": str(self.out), "fedpia.rounds": config["sim"]["rounds"]})

    def round(self, record: dict[str, Any]) -> None:
        import mlflow

        scalars = round_scalars(record, self.tasks)
        mlflow.log_metrics({re.sub(r"[^\w\-. /]", "_", k): v for k, v in scalars.items()},
                           step=record["round"])

    def end(self, results: dict[str, Any] | None) -> None:
        import mlflow

        if results is None:
            mlflow.end_run(status="FAILED")
            return
        for path in [self.out / "report.md", *sorted(self.out.glob("*.png"))]:
            if path.is_file():
                mlflow.log_artifact(str(path))
        mlflow.end_run(status="FINISHED")


def flat_params(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """The config as ``{dotted key: text}`` (lists as JSON; MLflow keeps values up to 500
    characters in its oldest stores: longer ones are cut)."""
    out: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            out.update(flat_params(value, f"{prefix}{key}."))
        else:
            text = json.dumps(value) if isinstance(value, list | tuple | dict) else str(value)
            out[f"{prefix}{key}"] = text[:500]
    return out
