"""The `fedpia` command line end to end on tiny settings (results, reports, plots, errors)."""

from __future__ import annotations

import json
from importlib import metadata

from typer.testing import CliRunner

from fedpia.cli import app

TINY = [
    "--set", "sim.rounds=2",
    "--set", 'setting_options={"modalities": ["x-ray", "ct"], "n_train": 16, "n_val": 4, "n_test": 8}',
    "--set", "train.local_steps=2",
    "--set", "model.pretrained=tiny",
]
runner = CliRunner()


def test_presets_lists_every_preset():
    res = runner.invoke(app, ["presets"])
    assert res.exit_code == 0
    for name in ("demo", "t1-vqarad", "t2-modality", "t3-cxr-notes", "t4-mimic", "t5-mixed"):
        assert name in res.output


def test_run_writes_results_report_and_checkpoint(tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", "--preset", "demo", *TINY, "--out", str(out)])
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["sim"]["rounds"] == 2 and len(results["history"]) == 2
    assert results["provenance"]["versions"]["torch"] == metadata.version("torch")  # the torch installed
    assert set(results["summary"]["per_client"]) == {"client0-x-ray-vqa", "client1-ct-vqa"}
    assert results["summary"]["bytes_communicated"] > 0
    report = (out / "report.md").read_text()
    assert "| **mean** |" in report and "(metric_vs_round.png)" in report  # the run's plot, linked
    assert (out / "metric_vs_round.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "checkpoints" / "checkpoint" / "meta.json").exists()
    # --resume on a finished run does no more rounds and reproduces the results
    res2 = runner.invoke(app, ["run", "--preset", "demo", *TINY, "--out", str(out), "--resume"])
    assert res2.exit_code == 0, res2.output
    again = json.loads((out / "results.json").read_text())
    assert [h["eval"] for h in again["history"]] == [h["eval"] for h in results["history"]]
    # the same --out without --resume is refused and leaves the earlier run untouched ...
    before = (out / "results.json").read_bytes()
    res3 = runner.invoke(app, ["run", "--preset", "demo", *TINY, "--out", str(out)])
    assert res3.exit_code == 2 and "already holds a run" in " ".join(res3.output.split()), res3.output
    assert (out / "results.json").read_bytes() == before
    # ... and --overwrite starts over (same seed: the same metrics again)
    res4 = runner.invoke(app, ["run", "--preset", "demo", *TINY, "--out", str(out), "--overwrite"])
    assert res4.exit_code == 0, res4.output
    fresh_bytes = (out / "results.json").read_bytes()
    fresh = json.loads(fresh_bytes)
    assert [h["eval"] for h in fresh["history"]] == [h["eval"] for h in results["history"]]
    # resuming under another config is refused, naming the field (seed, lr schedule would differ)
    for extra, needle in ((["--set", "sim.seed=7"], "sim.seed: 0 -> 7"),
                          (["--set", "sim.rounds=1"], "sim.rounds: 2 -> 1"),  # only extends
                          (["--overwrite"], "exclude each other"),
                          (["--engine", "flower"], "not supported with engine 'flower'")):
        res5 = runner.invoke(app, ["run", "--preset", "demo", *TINY, *extra, "--out", str(out), "--resume"])
        assert res5.exit_code == 2 and needle in " ".join(res5.output.split()), (extra, res5.output)
    assert (out / "results.json").read_bytes() == fresh_bytes


def test_compare_writes_summary_table_and_plots(tmp_path):
    out = tmp_path / "cmp"
    res = runner.invoke(app, ["compare", "--preset", "demo", "--strategies", "fedpia,fedavg",
                              "--seeds", "0,1", *TINY, "--out", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["results"]) == {"fedpia", "fedavg"}
    assert len(summary["results"]["fedpia"]["personalized"]["per_seed"]) == 2
    assert "| fedpia |" in (out / "summary.md").read_text()
    for png in ("metric_vs_round.png", "per_client.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # another comparison into the same folder would replace summary.json: refused
    res = runner.invoke(app, ["compare", "--preset", "demo", "--strategies", "local",
                              "--seeds", "5", *TINY, "--out", str(out)])
    assert res.exit_code == 2 and "summary.json" in res.output, res.output
    assert json.loads((out / "summary.json").read_text()) == summary
    # --resume under a changed config is refused before any run starts (not after the first runs)
    mtime = (out / "fedpia" / "seed0" / "results.json").stat().st_mtime_ns
    res = runner.invoke(app, ["compare", "--preset", "demo", "--strategies", "fedpia,fedavg",
                              "--seeds", "0,1", *TINY, "--set", "train.local_steps=3", "--out", str(out),
                              "--resume"])
    assert res.exit_code == 2 and "train.local_steps: 2 -> 3" in " ".join(res.output.split()), res.output
    assert (out / "fedpia" / "seed0" / "results.json").stat().st_mtime_ns == mtime
    # without the summary, each occupied run folder is still refused before any run starts
    (out / "summary.json").unlink()
    res = runner.invoke(app, ["compare", "--preset", "demo", "--strategies", "local,fedavg",
                              "--seeds", "0", *TINY, "--out", str(out)])
    assert res.exit_code == 2 and "fedavg" in res.output and "already holds a run" in " ".join(res.output.split())
    assert not (out / "local").exists()
    assert set(summary["per_client"]["personalized"]["fedpia"]) == {"client0-x-ray-vqa", "client1-ct-vqa"}
    assert summary["config"]["setting"] == "synthetic"


def test_errors_are_clear_and_exit_2(tmp_path):
    cases = [
        (["run", "--preset", "nope"], "unknown preset 'nope'"),
        (["run", "--preset", "demo", "--set", "sim.roundz=1"], "roundz"),
        (["run", "--config", str(tmp_path / "missing.toml")], "does not exist"),
        (["run", "--preset", "t1-vqarad", "--data-root", str(tmp_path)], "vqa_rad"),
        (["compare", "--preset", "demo", "--strategies", "fedpia,bogus"], "unknown method 'bogus'"),
        # wrong types and ranges name the field (no traceback, nothing run)
        (["run", "--preset", "demo", "--set", "sim.rounds=1.5"], "sim.rounds must be an integer, got 1.5"),
        (["run", "--preset", "demo", "--set", "sim.share_heads=maybe"], "sim.share_heads must be true or false"),
        (["run", "--preset", "demo", "--set", "strategy_options.gamma=abc"],
         "strategy_options.gamma must be a number"),
        (["run", "--preset", "t1-vqarad", "--set", "setting_options.max_train=abc"],
         "setting_options.max_train must be an integer"),
        (["run", "--preset", "demo", "--set", "train.local_steps=-3"], "train.local_steps must be >= 0"),
        (["run", "--preset", "demo", "--set", "strategy_options.gamma=2", "--set", "strategy=fedavg"],
         "'fedavg' has no option(s) ['gamma']"),
        (["run", "--preset", "demo", "--set", "sim.min_clients=10"], "sim.min_clients=10"),
        (["run", "--preset", "demo", "--set", "model.backbone=vilt", "--set",
          "model.pretrained=/nonexistent/ckpt"], "no such checkpoint directory"),
        (["run", "--preset", "demo", "--set", "model.backbone=vilt"], "needs a hub id"),
        (["run", "--preset", "demo", "--set", "model.pretrained=/some/dir"], "takes None"),
        (["run", "--preset", "demo", "--set", "train.precision=fp8"], "train.precision='fp8'"),
        # an accelerator this machine lacks is a clear error before anything runs
        (["run", "--preset", "demo", *TINY, "--set", "train.device=cuda:99"], "train.device='cuda:99'"),
        (["run", "--config", str(tmp_path)], "is not a file"),
        (["compare", "--preset", "demo", "--seeds", "0,a"], "--seeds must be comma-separated integers"),
        (["compare", "--preset", "demo", "--seeds", "0,0"], "given more than once"),
        (["compare", "--preset", "demo", "--seeds", "-1"], "sim.seed must be >= 0"),
    ]
    for args, needle in cases:
        res = runner.invoke(app, [*args, "--out", str(tmp_path / "out")] if args[0] != "data" else args)
        assert res.exit_code == 2, (args, res.output)
        assert needle in " ".join(res.output.split()), (args, res.output)
        assert not (tmp_path / "out").exists(), args  # a refused run leaves no folder behind


def test_switching_strategy_resets_the_preset_options(tmp_path):
    """`--set strategy=fedavg` on the FedPIA demo preset runs FedAvg (it exited 2 before)."""
    out = tmp_path / "fedavg"
    res = runner.invoke(app, ["run", "--preset", "demo", "--set", "strategy=fedavg", *TINY,
                              "--set", "sim.rounds=1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "takes no option(s) ['gamma', 'mix']" in " ".join(res.output.split())
    config = json.loads((out / "results.json").read_text())["config"]
    assert config["strategy"] == "fedavg" and config["strategy_options"] == {}


def test_logger_option_adds_a_backend_and_reports_a_missing_package(tmp_path, monkeypatch):
    out = tmp_path / "tb"
    res = runner.invoke(app, ["run", "--preset", "demo", *TINY, "--set", "sim.rounds=1",
                              "--logger", "tensorboard", "--out", str(out)])
    assert res.exit_code == 0, res.output
    config = json.loads((out / "config.json").read_text())
    assert config["logging"]["backends"] == ["csv", "tensorboard"]
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert (out / "rounds.csv").read_text().startswith("round,client,view,accuracy")
    res = runner.invoke(app, ["run", "--preset", "demo", "--logger", "wandb", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "logging.backends: unknown ['wandb']" in " ".join(res.output.split())
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    res = runner.invoke(app, ["run", "--preset", "demo", *TINY, "--logger", "mlflow", "--out", str(tmp_path / "m")])
    assert res.exit_code == 2 and "pip install mlflow" in " ".join(res.output.split()), res.output
    assert not (tmp_path / "m").exists()


def test_config_file_and_data_summary(tmp_path, shared_data):
    cfg = tmp_path / "exp.toml"
    cfg.write_text('name = "toml"\nsetting = "synthetic"\nstrategy = "fedavg"\n'
                   '[setting_options]\nmodalities = ["ct"]\nn_train = 8\nn_val = 2\nn_test = 4\n'
                   '[sim]\nrounds = 1\n[train]\nlocal_steps = 1\n[model]\npretrained = "tiny"\n')
    res = runner.invoke(app, ["run", "--config", str(cfg), "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "o" / "results.json").read_text())["config"]["strategy"] == "fedavg"
    res = runner.invoke(app, ["data", "summary", "t1-vqarad", "--data-root", str(shared_data)])
    assert res.exit_code == 0, res.output
    assert "vqarad-head" in res.output and "vqarad-chest" in res.output
    assert "top[no:" in res.output or "top[yes:" in res.output  # label histograms, not eaten as markup
