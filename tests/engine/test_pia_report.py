"""The FedPIA diagnostics section of report.md: per-round means from hand-made records."""

from __future__ import annotations

import math

import pytest

from fedpia.experiments.pia_report import pia_rounds, pia_section, plot_pia
from fedpia.experiments.report import experiment_report


def _record(r, with_client=True):
    diag = {"clients": ["a", "b"], "distances": [0.1, 0.3], "weights": [0.55, 0.45],
            "fedavg_weights": [0.5, 0.5], "iterations": 1,
            "groups": {"g1": {"width": 4, "moved": [0, 2], "cost_before": [1, 2],
                              "cost_after": [1, 1], "gain": [0.0, 0.5], "distance": [0.1, 0.2]},
                       "g2": {"width": 8, "moved": [4, 0], "cost_before": [1, None],
                              "cost_after": [0.9, 1], "gain": [0.1, None],
                              "distance": [0.1, 0.2]}}}
    clients = {"a": {"loss": 1.0}, "b": {"loss": 1.0}}
    if with_client:
        clients["a"]["pia"] = {"cost": "activation", "margin": 0.05, "groups": ["g1", "g2"],
                               "moved": [2, 0], "proposed_moved": [2, 2],
                               "cost_before": [1, 1], "cost_after": [0.8, 0.99],
                               "gain": [0.2, 0.01], "accepted": [True, False]}
    return {"round": r, "diagnostics": diag, "clients": clients}


def test_pia_rounds_closed_form():
    rows = pia_rounds([_record(1, with_client=False), _record(2), {"round": 3, "clients": {}}])
    assert [r["round"] for r in rows] == [1, 2]  # a record without FedPIA diagnostics is skipped
    r = rows[1]
    assert r["server_moved"] == pytest.approx((0 / 4 + 2 / 4 + 4 / 8 + 0 / 8) / 4)
    assert r["server_gain"] == pytest.approx((0.0 + 0.5 + 0.1) / 3)  # None (unequal width) dropped
    assert r["weight_gap"] == pytest.approx(0.05)
    assert r["distance"] == pytest.approx(0.2)
    assert r["client_moved"] == pytest.approx((2 / 4 + 0 / 8) / 2)
    assert r["client_gain"] == pytest.approx(0.105)
    assert r["client_accepted"] == pytest.approx(0.5)
    assert "client_moved" not in rows[0] and math.isfinite(rows[0]["server_moved"])
    # a client-only run (no server groups): the client's own widths give the shares
    rec = _record(3)
    rec["diagnostics"] = {}
    rec["clients"]["a"]["pia"]["widths"] = [4, 8]
    only = pia_rounds([rec])[0]
    assert only["client_moved"] == pytest.approx((2 / 4 + 0 / 8) / 2) and "server_moved" not in only


def test_pia_section_and_plot(tmp_path):
    hist = [_record(1, with_client=False), _record(2)]
    text = pia_section(hist, "pia_diagnostics.png")
    assert text.startswith("## FedPIA diagnostics")
    assert "| 1 | 25.0% | 20.00% | 0.0500 | 0.2000 | – | – | – |" in text
    assert "| 2 | 25.0% | 20.00% | 0.0500 | 0.2000 | 25.0% | 10.50% | 50% |" in text
    assert pia_section([{"round": 1, "clients": {}}]) == ""
    path = plot_pia(hist, tmp_path / "p.png")
    assert path.exists() and path.stat().st_size > 1000
    assert plot_pia([{"round": 1, "clients": {}}], tmp_path / "none.png") is None


def test_experiment_report_links_the_plot(tmp_path):
    results = {"config": {"name": "x", "setting": "s", "strategy": "fedpia",
                          "strategy_options": {}, "model": {}, "sim": {"rounds": 2, "seed": 0},
                          "engine": "inprocess"},
               "summary": {"per_client": {}, "mean": {}, "round": 2},
               "data": {}, "history": [_record(1), _record(2)]}
    text = experiment_report(results, out_dir=tmp_path)
    assert "## FedPIA diagnostics" in text and "(pia_diagnostics.png)" in text
    assert (tmp_path / "pia_diagnostics.png").exists()
    results["history"] = [{"round": 1, "clients": {}, "diagnostics": {}}]
    assert "FedPIA diagnostics" not in experiment_report(results, out_dir=tmp_path)
