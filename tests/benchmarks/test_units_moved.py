"""benchmarks/bench_units_moved.py: per-round means over runs of FedPIA's alignment diagnostics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _record(rnd: int, server_moved: list[int], client_moved: list[int] | None) -> dict:
    rec = {"round": rnd, "clients": {}, "diagnostics": {
        "weights": [0.5, 0.5], "fedavg_weights": [0.5, 0.5], "distances": [0.1, 0.2],
        "groups": {"g": {"width": 4, "moved": server_moved, "gain": [0.5, 0.0]}}}}
    if client_moved is not None:
        for i, m in enumerate(client_moved):
            rec["clients"][f"c{i}"] = {"pia": {"groups": ["g"], "widths": [4], "moved": [m],
                                               "gain": [0.2], "accepted": [True]}}
    return rec


def _write(root: Path, seed: int, history: list[dict]) -> None:
    path = root / "t-x" / "fedpia" / f"seed{seed}"
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps({"history": history}))


def test_means_over_groups_clients_and_seeds(tmp_path, capsys, load_benchmark):
    mod = load_benchmark("bench_units_moved")
    # seed 0: round 1 server only (no client step yet), round 2 both sides
    _write(tmp_path, 0, [_record(1, [0, 0], None), _record(2, [4, 0], [2, 0])])
    # seed 1: round 2 moves half of the server units, all client units
    _write(tmp_path, 1, [_record(1, [0, 0], None), _record(2, [2, 2], [4, 4])])
    out = mod.main(["--runs", str(tmp_path), "--presets", "t-x", "--rounds", "1,2",
                    "--out", str(tmp_path / "u.json")])
    rounds = out["presets"]["t-x"]["rounds"]
    assert rounds[1]["server_moved"] == 0.0 and "client_moved" not in rounds[1]
    assert rounds[2]["server_moved"] == pytest.approx((0.5 + 0.5) / 2)   # (4+0)/8 and (2+2)/8
    assert rounds[2]["client_moved"] == pytest.approx((0.25 + 1.0) / 2)  # (2+0)/8 and (4+4)/8
    assert rounds[2]["server_gain"] == pytest.approx(0.25) and rounds[2]["client_gain"] == pytest.approx(0.2)
    text = capsys.readouterr().out
    assert "| t-x (2) | server: units moved | 0.0% | 50.0% |" in text
    assert "| t-x (2) | client: units moved | – | 62.5% |" in text
    assert json.loads((tmp_path / "u.json").read_text())["presets"]["t-x"]["seeds"] == ["seed0", "seed1"]
    assert not any(math.isnan(v) for r in rounds.values() for v in r.values())


def test_missing_runs_is_a_clear_error(tmp_path, load_benchmark):
    with pytest.raises(SystemExit, match="no finished fedpia runs"):
        load_benchmark("bench_units_moved").main(["--runs", str(tmp_path), "--presets", "nope", "--out", str(tmp_path / "u.json")])


def test_bad_rounds_is_a_usage_error(tmp_path, capsys, load_benchmark):
    with pytest.raises(SystemExit) as exc:
        load_benchmark("bench_units_moved").main(["--runs", str(tmp_path), "--rounds", "2,x", "--out", str(tmp_path / "u.json")])
    assert exc.value.code == 2 and "comma-separated round numbers" in capsys.readouterr().err
    assert not (tmp_path / "u.json").exists()
