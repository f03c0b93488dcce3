"""PNG plots a reader can use on their own: titled (preset, strategy, metric, view), both
evaluation views side by side, axis labels with units, legends, integer round ticks.

- one run (``fedpia run``): :func:`plot_run` -> ``OUT/metric_vs_round.png``: each client's headline
  metric per round and the client mean, one panel per view;
- a comparison (``fedpia compare``): :func:`plot_compare` -> ``metric_vs_round.png`` (client mean
  per method, ± std over seeds as a band) and ``per_client.png`` (final metric per client and
  method, ± std bars), one panel per view.

The headline metric of a client is accuracy (VQA, multiclass) or micro-F1 (multi-label), as in
the reports; :func:`metric_label` names it for the clients at hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

VIEWS = {"personalized": "personalized (own adapter + head)",
         "global": "global (global adapter + client's head)"}


# methods that coincide stay distinguishable: each line its own marker and dash pattern
STYLES = [{"marker": m, "linestyle": ls, "markersize": 6 - i % 3}
          for i, (m, ls) in enumerate(zip("osD^vP*X", ["-", "--", ":", "-.", "-", "--", ":", "-."],
                                          strict=True))]


def metric_label(tasks: dict[str, str]) -> str:
    """The headline metric's name for clients with these tasks."""
    kinds = {"micro-F1" if t == "multilabel" else "accuracy" for t in tasks.values()}
    if kinds == {"accuracy", "micro-F1"}:
        return "accuracy (VQA / multiclass) or micro-F1 (multi-label)"
    return kinds.pop() if kinds else "metric"


def _figure(**kwargs: Any) -> Any:
    """A matplotlib Figure without pyplot (no global state; saving renders with Agg)."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _axis(ax: Any, view: str, ylabel: str) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_title(VIEWS[view], fontsize=10)
    ax.set_xlabel("round")
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def _views(results: list[dict[str, Any]]) -> list[str]:
    """The views evaluated in any round of any of ``results`` (personalized first)."""
    return [v for v in VIEWS if any(v in res for r in results for h in r["history"]
                                    for res in h.get("eval", {}).values())]


def client_curves(results: dict[str, Any], view: str) -> dict[str, list[float]]:
    """Per client: the headline metric after each round of ``view`` (nan where not evaluated)."""
    from fedpia.client import primary_metric

    tasks = {c: d["task"] for c, d in results["data"].items()}
    return {c: [h.get("eval", {}).get(c, {}).get(view, {}).get(primary_metric(t), np.nan)
                for h in results["history"]] for c, t in tasks.items()}


def run_figure(results: dict[str, Any]) -> Any:
    """One run: per client and the client mean (thick, grey) of the headline metric per round,
    one panel per evaluated view; None when the run has no evaluated rounds."""
    history = results.get("history", [])
    views = _views([results])
    if not history or not views:
        return None
    cfg, model = results["config"], results["config"].get("model", {})
    label = metric_label({c: d["task"] for c, d in results["data"].items()})
    fig = _figure(figsize=(5.5 * len(views) + 2, 4), layout="constrained")
    axes = fig.subplots(1, len(views), sharey=True, squeeze=False)[0]
    x = np.array([h["round"] for h in history])
    for ax, view in zip(axes, views, strict=True):
        curves = client_curves(results, view)
        with np.errstate(all="ignore"):
            mean = np.nanmean(np.array(list(curves.values()), dtype=float), axis=0)
        ax.plot(x, 100 * mean, color="black", lw=3, alpha=0.45, label="client mean", zorder=1)
        for client, ys in curves.items():  # on top of the mean: a client equal to it stays visible
            ax.plot(x, 100 * np.array(ys, dtype=float), marker="o", ms=4, lw=1.2, label=client, zorder=2)
        _axis(ax, view, f"{label} (%)")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right center", fontsize=8)
    fig.suptitle(f"{cfg['name']}: strategy {cfg['strategy']}, {model.get('peft', '?')} on "
                 f"{model.get('backbone', '?')}, setting {cfg['setting']}, seed {cfg['sim']['seed']}\n"
                 f"{label} on each client's test split after each round", fontsize=10)
    return fig


def plot_run(results: dict[str, Any], path: str | Path) -> Path | None:
    """Write :func:`run_figure` to ``path`` (PNG); None when the run has no evaluated rounds."""
    fig = run_figure(results)
    if fig is None:
        return None
    fig.savefig(Path(path), dpi=120)
    return Path(path)


def compare_figures(runs: dict[str, list[dict[str, Any]]], *, title: str = "") -> tuple[Any, Any]:
    """A comparison's (curves, bars) figures (module docstring); ``runs``: per method, one
    results dict per seed."""
    from fedpia.experiments.report import per_client, seed_curves

    every = [r for rs in runs.values() for r in rs]
    label = metric_label({c: d["task"] for r in every for c, d in r["data"].items()})
    seeds = max(len(rs) for rs in runs.values())
    spread = f", ± std over {seeds} seeds" if seeds > 1 else ""
    views = _views(every)
    curves = _figure(figsize=(5.5 * len(views), 4.2), layout="constrained")
    for ax, view in zip(curves.subplots(1, len(views), sharey=True, squeeze=False)[0], views, strict=True):
        for k, (method, arr) in enumerate(seed_curves(runs, view).items()):
            with np.errstate(all="ignore"):
                mean, std = 100 * np.nanmean(arr, axis=0), 100 * np.nanstd(arr, axis=0)
            x = np.arange(1, len(mean) + 1)
            line, = ax.plot(x, mean, label=method, **STYLES[k % len(STYLES)])
            if arr.shape[0] > 1:
                ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.15)
        _axis(ax, view, f"client-mean {label} (%)")
        ax.legend(fontsize=8)
    curves.suptitle(f"{title}\nclient-mean {label} per round{spread}".strip(), fontsize=10)

    clients = sorted({c for r in every for c in r["summary"]["per_client"]})
    width = 0.8 / max(1, len(runs))
    bars = _figure(figsize=(max(7.0, 0.5 * len(clients) * len(runs) + 2), 3.6 * len(views)),
                   layout="constrained")
    for ax, view in zip(bars.subplots(len(views), 1, squeeze=False)[:, 0], views, strict=True):
        pc = per_client(runs, view=view)
        for j, method in enumerate(runs):
            stats = [pc[method].get(c, {"mean": np.nan, "std": 0.0}) for c in clients]
            ax.bar(np.arange(len(clients)) + j * width, [100 * st["mean"] for st in stats], width,
                   yerr=[100 * st["std"] for st in stats], capsize=2, label=method)
        ax.set_xticks(np.arange(len(clients)) + width * (len(runs) - 1) / 2, clients,
                      rotation=20, ha="right", rotation_mode="anchor", fontsize=8)
        ax.set_title(VIEWS[view], fontsize=10)
        ax.set_ylabel(f"final {label} (%)")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    bars.suptitle(f"{title}\nfinal-round {label} per client{spread}".strip(), fontsize=10)
    return curves, bars


def plot_compare(runs: dict[str, list[dict[str, Any]]], out_dir: str | Path, *,
                 title: str = "") -> list[Path]:
    """Write :func:`compare_figures` as ``metric_vs_round.png`` and ``per_client.png`` into
    ``out_dir``; returns their paths."""
    paths = [Path(out_dir) / "metric_vs_round.png", Path(out_dir) / "per_client.png"]
    for fig, path in zip(compare_figures(runs, title=title), paths, strict=True):
        fig.savefig(path, dpi=120)
    return paths
