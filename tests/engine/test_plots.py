"""Plots: titled, both views, labelled axes, integer round ticks, legends; the data drawn is the
data of the results (checked on the figure objects, then as PNG files)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedpia.experiments.plots import (
    compare_figures,
    metric_label,
    plot_compare,
    plot_run,
    run_figure,
)

PNG = b"\x89PNG\r\n\x1a\n"


def _results(seed=0, *, shift=0.0, eval_global=True, rounds=3):
    """Results of a 3-round run: client a (VQA, accuracy), b (multi-label, micro-F1); b has no
    personalized view in round 1 (not sampled yet)."""
    history = []
    for r in range(1, rounds + 1):
        a = {"personalized": {"accuracy": 0.1 * r + shift}}
        b = {"personalized": {"f1_micro": 0.2 * r + shift}} if r > 1 else {}
        if eval_global:
            a["global"] = {"accuracy": 0.05 * r + shift}
            b["global"] = {"f1_micro": 0.1 * r + shift}
        history.append({"round": r, "eval": {"a": a, "b": b}})
    final = history[-1]["eval"]
    per_client = {c: {v: next(iter(m.values())) for v, m in res.items()} for c, res in final.items()}
    return {"config": {"name": "t5-synthetic", "strategy": "fedpia", "setting": "t5-synthetic",
                       "model": {"peft": "houlsby", "backbone": "vilt", "pretrained": "tiny"}, "sim": {"seed": seed}},
            "data": {"a": {"task": "vqa"}, "b": {"task": "multilabel"}},
            "history": history, "summary": {"per_client": per_client}}


def _lines(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def test_metric_label_names_the_headline_metric():
    assert metric_label({"a": "vqa", "b": "multiclass"}) == "accuracy"
    assert metric_label({"a": "multilabel"}) == "micro-F1"
    assert metric_label({"a": "vqa", "b": "multilabel"}) == "accuracy (VQA / multiclass) or micro-F1 (multi-label)"


def test_run_figure_draws_every_client_and_the_mean_in_both_views():
    fig = run_figure(_results(seed=4))
    title = fig._suptitle.get_text()
    for part in ("t5-synthetic", "strategy fedpia", "houlsby on vilt", "seed 4", "micro-F1"):
        assert part in title
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["personalized (own adapter + head)",
                                               "global (global adapter + client's head)"]
    for ax in axes:
        assert ax.get_xlabel() == "round" and ax.get_ylabel().endswith("(%)")
        ticks = [t for t in ax.get_xticks() if 1 <= t <= 3]
        assert ticks == [1, 2, 3]  # integer rounds only
    pers = _lines(axes[0])
    assert set(pers) == {"client mean", "a", "b"}
    np.testing.assert_allclose(pers["a"].get_ydata(), [10, 20, 30])
    assert math.isnan(pers["b"].get_ydata()[0])  # not evaluated in round 1: a gap, not a zero
    np.testing.assert_allclose(pers["client mean"].get_ydata(), [10, 30, 45])  # mean of the present
    np.testing.assert_allclose(_lines(axes[1])["b"].get_ydata(), [10, 20, 30])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["client mean", "a", "b"]


def test_a_run_without_global_view_has_one_panel_and_no_rounds_no_plot(tmp_path):
    fig = run_figure(_results(eval_global=False))
    assert [ax.get_title() for ax in fig.axes] == ["personalized (own adapter + head)"]
    assert plot_run({**_results(), "history": []}, tmp_path / "x.png") is None
    path = plot_run(_results(), tmp_path / "run.png")
    assert path.read_bytes()[:8] == PNG


def test_compare_figures_show_methods_with_seed_bands_in_both_views(tmp_path):
    runs = {"fedpia": [_results(0), _results(1, shift=0.02)], "fedavg": [_results(0), _results(1)]}
    curves, bars = compare_figures(runs, title="compare: t5-synthetic, seeds [0, 1]")
    assert "compare: t5-synthetic" in curves._suptitle.get_text()
    assert "± std over 2 seeds" in curves._suptitle.get_text()
    assert len(curves.axes) == 2 and len(bars.axes) == 2
    for ax in curves.axes:
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["fedpia", "fedavg"]
        lines = _lines(ax)
        # methods that coincide stay distinguishable (marker and dash pattern differ)
        assert lines["fedpia"].get_marker() != lines["fedavg"].get_marker()
        assert ax.collections, "no ± std band with two seeds"
    pers = _lines(curves.axes[0])
    np.testing.assert_allclose(pers["fedpia"].get_ydata(), [11, 31, 46])  # client mean, seed mean
    assert [t.get_text() for t in bars.axes[0].get_xticklabels()] == ["a", "b"]
    heights = [p.get_height() for p in bars.axes[0].patches]
    assert heights[:2] == pytest.approx([31, 61])  # fedpia's final a, b (seed mean, %)
    assert bars.axes[1].get_title().startswith("global")
    paths = plot_compare(runs, tmp_path, title="t")
    assert [p.name for p in paths] == ["metric_vs_round.png", "per_client.png"]
    assert all(p.read_bytes()[:8] == PNG for p in paths)
