"""Per-round logging: rounds.csv, the RunLogger protocol, TensorBoard (real event files read back)
and MLflow (a fake ``mlflow`` module records the calls), on resume and extension too."""

from __future__ import annotations

import csv
import importlib.machinery
import json
import sys
import types
from types import SimpleNamespace

import pytest

from fedpia.experiments import ExperimentConfig, run_experiment
from fedpia.experiments.loggers import (
    CsvLogger,
    LoggerUnavailable,
    RunLogger,
    build_loggers,
    round_rows,
    round_scalars,
)
from fedpia.rounds import LOGGING_BACKENDS

TINY = {
    "name": "logs", "setting": "synthetic",
    "setting_options": {"modalities": ["x-ray", "ct"], "n_train": 16, "n_val": 4, "n_test": 8},
    "model": {"backbone": "vilt", "pretrained": "tiny", "peft": "houlsby", "adapter_width": 8},
    "strategy": "fedpia", "sim": {"rounds": 2, "seed": 3},
    "train": {"lr": 2e-3, "batch_size": 8, "local_steps": 2},
}
CLIENTS = ("client0-x-ray-vqa", "client1-ct-vqa")


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _record(round_, acc, *, metric="accuracy", skipped=None):
    """A round record with the keys the loggers read (two clients, both views)."""
    views = {"personalized": {metric: acc}, "global": {metric: acc / 2}}
    return {"round": round_, "clients": {"a": {"loss": 1.0 / round_, "lr": 0.1, "steps": 2}},
            "failed": {"b": "crash"}, "rejected": {}, "skipped": skipped, "server_time": 0.5,
            "bytes_up": 10, "bytes_down": 20, "round_time": 2.0,
            "eval": {"a": views, "b": {"global": {metric: acc / 4}}}}


class Recorder:
    """A user-defined logger: only the three methods of the protocol."""

    def __init__(self):
        self.calls = []

    def start(self, config, *, tasks, history):
        self.calls.append(("start", config["sim"]["rounds"], dict(tasks), len(history)))

    def round(self, record):
        self.calls.append(("round", record["round"]))

    def end(self, results):
        self.calls.append(("end", None if results is None else len(results["history"])))


class FakeMlflow(types.ModuleType):
    """Stands in for ``mlflow``: records the fluent-API calls the MLflow logger makes."""

    def __init__(self):
        super().__init__("mlflow")
        self.__spec__ = importlib.machinery.ModuleSpec("mlflow", None)
        self.calls = []
        self.runs = 0

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)

        def call(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            if name == "start_run":
                self.runs += 1
                run_id = kwargs.get("run_id") or f"run{self.runs}"
                return types.SimpleNamespace(info=types.SimpleNamespace(run_id=run_id))
            return None
        return call

    def named(self, name):
        return [(a, k) for n, a, k in self.calls if n == name]


def test_round_rows_and_scalars_of_a_record():
    rec = _record(1, 0.8)
    rows = round_rows(rec)
    assert [(r["client"], r["view"], r["status"]) for r in rows] == [
        ("a", "personalized", "aggregated"), ("a", "global", "aggregated"), ("b", "global", "failed")]
    assert rows[0]["accuracy"] == 0.8 and rows[0]["train_loss"] == 1.0 and rows[0]["train_steps"] == 2
    assert "train_loss" not in rows[2] and rows[2]["bytes_down"] == 20 and rows[2]["skipped"] == ""
    assert round_rows(_record(1, 0.8, skipped="no valid update"))[0]["status"] == "trained"
    sc = round_scalars(rec, {"a": "vqa", "b": "vqa"})
    assert sc["personalized/headline"] == 0.8  # only a has a personalized view
    assert sc["global/headline"] == pytest.approx((0.4 + 0.2) / 2)
    assert sc["global/accuracy/b"] == 0.2 and sc["train/loss/a"] == 1.0
    assert sc["round/bytes_up"] == 10.0 and sc["round/skipped"] == 0.0
    # a record without evaluations (e.g. a round 0 of a one-shot initialisation) has no rows
    assert round_rows({"round": 0, "clients": {}}) == []
    assert round_scalars({"round": 0}, {})["round/skipped"] == 0.0
    # the headline of a multilabel client is micro F1
    assert round_scalars(_record(1, 0.6, metric="f1_micro"), {"a": "multilabel", "b": "multilabel"})[
        "personalized/headline"] == 0.6


def test_csv_widens_its_header_and_a_restart_drops_rows_past_the_resumed_rounds(tmp_path):
    path = tmp_path / "rounds.csv"
    lg = CsvLogger(path)
    lg.start({}, tasks={}, history=[])
    assert path.read_text() == ""
    lg.round(_record(1, 0.5))
    lg.round(_record(2, 0.6, metric="f1_micro"))  # a new metric column: the file is rewritten
    lg.round(_record(3, 0.7))  # logged, then "killed" before round 3 was checkpointed
    rows = _read_csv(path)
    assert list(rows[0])[:5] == ["round", "client", "view", "accuracy", "f1_micro"]
    assert [r["round"] for r in rows] == ["1"] * 3 + ["2"] * 3 + ["3"] * 3
    assert rows[0]["f1_micro"] == "" and rows[3]["f1_micro"] == "0.6"
    again = CsvLogger(path)  # the resumed process: checkpoint after round 2
    again.start({}, tasks={}, history=[_record(1, 0.5), _record(2, 0.6, metric="f1_micro")])
    again.round(_record(3, 0.9))
    rows = _read_csv(path)
    assert [r["round"] for r in rows] == ["1"] * 3 + ["2"] * 3 + ["3"] * 3  # no duplicate round 3
    assert rows[-3]["accuracy"] == "0.9"


def test_logging_config_names_and_factories():
    assert set(LOGGING_BACKENDS) == {"csv", "tensorboard", "mlflow"}
    for bad, needle in (('logging.backends=["wandb"]', r"unknown \['wandb'\]"),
                        ('logging.backends=["csv", "csv"]', "twice"),
                        ("logging.backends=csv", "logging.backends must be a list")):
        with pytest.raises(ValueError, match=needle):
            ExperimentConfig().with_overrides([bad])
    cfg = ExperimentConfig().with_overrides(['logging.backends=["csv", "tensorboard"]', "logging.dir=tb"])
    kinds = [type(lg).__name__ for lg in build_loggers(cfg, "runs/a/b")]
    assert kinds == ["CsvLogger", "TensorBoardLogger"]
    assert str(build_loggers(cfg, "runs/a/b")[1].log_dir) == "tb/runs_a_b"  # one subfolder per run


def test_a_missing_backend_package_is_a_clear_error_before_anything_runs(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorboard" else real(name, *a))
    cfg = ExperimentConfig.from_dict({**TINY, "logging": {"backends": ["csv", "tensorboard"]}})
    with pytest.raises(LoggerUnavailable, match=r"pip install 'fedpia\[tensorboard\]'"):
        run_experiment(cfg, out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_every_backend_logs_every_round_and_resume_extends_the_logs(tmp_path, monkeypatch):
    """One run with csv + tensorboard + mlflow (fake) + a user logger, then extended 2 -> 3."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    fake = FakeMlflow()
    monkeypatch.setitem(sys.modules, "mlflow", fake)
    cfg = ExperimentConfig.from_dict({**TINY, "logging": {"backends": ["csv", "tensorboard", "mlflow"],
                                                          "mlflow_uri": "file:/tmp/mlruns"}})
    out, mine = tmp_path / "run", Recorder()
    assert isinstance(mine, RunLogger)
    res = run_experiment(cfg, out_dir=out, loggers=[mine])
    assert mine.calls == [("start", 2, {c: "vqa" for c in CLIENTS}, 0), ("round", 1), ("round", 2),
                          ("end", 2)]
    # rounds.csv: one row per (round, client, view), the numbers of results.json
    rows = _read_csv(out / "rounds.csv")
    assert len(rows) == 2 * len(CLIENTS) * 2
    for row in rows:
        rec = res["history"][int(row["round"]) - 1]
        assert float(row["accuracy"]) == rec["eval"][row["client"]][row["view"]]["accuracy"]
        assert float(row["train_lr"]) == rec["clients"][row["client"]]["lr"]
        assert row["status"] == "aggregated" and int(row["bytes_up"]) == rec["bytes_up"]
    # TensorBoard: real event files, read back
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    headline = [(e.step, e.value) for e in acc.Scalars("personalized/headline")]
    expect = [sum(h["eval"][c]["personalized"]["accuracy"] for c in CLIENTS) / 2 for h in res["history"]]
    assert [s for s, _ in headline] == [1, 2]
    assert [v for _, v in headline] == pytest.approx(expect, abs=1e-6)
    # MLflow: experiment, run, params, one log_metrics per round, artifacts, status
    assert fake.named("set_tracking_uri") == [(("file:/tmp/mlruns",), {})]
    assert fake.named("set_experiment") == [(("logs",), {})]
    assert fake.named("start_run") == [((), {"run_name": "logs/seed3"})]
    (params,), _ = fake.named("log_params")[0]
    assert params["strategy"] == "fedpia" and params["sim.rounds"] == "2"
    steps = [k["step"] for _, k in fake.named("log_metrics")]
    assert steps == [1, 2]
    assert fake.named("log_metrics")[1][0][0]["personalized/headline"] == pytest.approx(expect[1])
    assert "report.md" in [a[0].rsplit("/", 1)[-1] for a, _ in fake.named("log_artifact")]
    assert fake.named("end_run")[-1] == ((), {"status": "FINISHED"})
    assert (out / "mlflow_run_id").read_text() == "run1"
    # extended to 3 rounds: each logger continues (same MLflow run, no params again, no duplicates)
    fake.calls.clear()
    mine.calls.clear()
    ext = run_experiment(cfg.with_overrides(["sim.rounds=3"]), out_dir=out, resume=True, loggers=[mine])
    assert mine.calls == [("start", 3, {c: "vqa" for c in CLIENTS}, 2), ("round", 3), ("end", 3)]
    rows = _read_csv(out / "rounds.csv")
    assert [int(r["round"]) for r in rows] == [r for r in (1, 2, 3) for _ in range(2 * len(CLIENTS))]
    assert float(rows[-1]["accuracy"]) == ext["history"][2]["eval"][rows[-1]["client"]]["global"]["accuracy"]
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("personalized/headline")] == [1, 2, 3]
    assert fake.named("start_run") == [((), {"run_id": "run1"})] and not fake.named("log_params")
    assert [k["step"] for _, k in fake.named("log_metrics")] == [3]


def test_a_failing_run_closes_its_loggers(tmp_path, monkeypatch):
    fake = FakeMlflow()
    monkeypatch.setitem(sys.modules, "mlflow", fake)
    cfg = ExperimentConfig.from_dict({**TINY, "logging": {"backends": ["csv", "mlflow"]}})
    mine = Recorder()

    def boom(event, info):
        if event == "round_end":
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        run_experiment(cfg, out_dir=tmp_path / "run", on_event=boom, loggers=[mine])
    assert mine.calls[-1] == ("end", None)
    assert fake.named("end_run") == [((), {"status": "FAILED"})]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["name"] == "logs"


def test_tensorboard_hides_rounds_logged_past_the_checkpoint(tmp_path):
    """A kill after logging round 3 but before its checkpoint: the resumed process reruns round 3
    and TensorBoard shows only the rerun (purge_step)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from fedpia.experiments.tracking import TensorBoardLogger

    tasks = {"a": "vqa", "b": "vqa"}
    first = TensorBoardLogger(tmp_path / "tb")
    first.start({"name": "x"}, tasks=tasks, history=[])
    for r, a in ((1, 0.25), (2, 0.5), (3, 0.75)):
        first.round(_record(r, a))
    first.end(None)
    second = TensorBoardLogger(tmp_path / "tb")
    second.start({"name": "x"}, tasks=tasks, history=[_record(1, 0.25), _record(2, 0.5)])
    second.round(_record(3, 1.0))
    second.end({})
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("personalized/accuracy/a")] == [(1, 0.25), (2, 0.5), (3, 1.0)]


def test_flower_engine_rounds_reach_the_loggers_when_the_simulation_returns(tmp_path, monkeypatch):
    """Flower's simulation reports its history at the end: every round still reaches every logger
    (Flower itself is replaced by a stand-in returning records of the round-record shape)."""
    import fedpia.flower

    def fake_simulation(cfg):
        assert cfg.engine == "flower"
        history = [{"round": r, "clients": {}, "failed": {}, "rejected": {}, "skipped": None,
                    "server_time": 0.0, "bytes_up": 0, "bytes_down": 0, "round_time": 1.0,
                    "eval": {c: {"global": {"accuracy": 0.25 * r}} for c in CLIENTS}}
                   for r in (1, 2)]
        return SimpleNamespace(history=history)  # a FlowerResult's shape

    monkeypatch.setattr(fedpia.flower, "run_flower_simulation", fake_simulation)
    mine = Recorder()
    cfg = ExperimentConfig.from_dict({**TINY, "engine": "flower"})
    res = run_experiment(cfg, out_dir=tmp_path / "fl", loggers=[mine])
    assert mine.calls == [("start", 2, {c: "vqa" for c in CLIENTS}, 0), ("round", 1), ("round", 2),
                          ("end", 2)]
    rows = _read_csv(tmp_path / "fl" / "rounds.csv")
    assert [(r["round"], r["view"], r["status"], r["accuracy"]) for r in rows] == [
        ("1", "global", "idle", "0.25"), ("1", "global", "idle", "0.25"),
        ("2", "global", "idle", "0.5"), ("2", "global", "idle", "0.5")]
    assert res["summary"]["mean"]["global"] == 0.5
