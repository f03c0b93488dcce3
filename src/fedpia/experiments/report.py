"""Markdown reports and the numbers behind the plots (data in, text out); the PNGs are drawn by
:mod:`fedpia.experiments.plots`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

NOTE = (
    "The default backbone is a small pretrained one (minilm-vl: MiniLM-L6 + EfficientNet-Lite0, "
    "see the model line) and the data are small; compare gaps between methods, not absolute "
    "numbers with the paper (ViLT-B/32)."
)


def experiment_report(results: dict[str, Any], out_dir: Path | None = None) -> str:
    """Short markdown report of one run: config line, per-client final metrics, timings, and the
    FedPIA diagnostics per round when the run has them. With ``out_dir``, the plots are written
    there and linked: ``metric_vs_round.png`` (:func:`fedpia.experiments.plots.plot_run`) and,
    for FedPIA, ``pia_diagnostics.png``."""
    from fedpia.experiments.pia_report import pia_section, plot_pia
    from fedpia.experiments.plots import plot_run

    cfg, summ = results["config"], results["summary"]
    lines = [
        f"# {cfg['name']}",
        "",
        f"setting `{cfg['setting']}`, strategy `{cfg['strategy']}` {cfg['strategy_options']}, "
        f"model {cfg['model']}, rounds {cfg['sim']['rounds']}, seed {cfg['sim']['seed']}, "
        f"engine `{cfg['engine']}`",
        "",
        "| client | task | train | test | personalized | global |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for client, info in results["data"].items():
        pc = summ.get("per_client", {}).get(client, {})
        lines.append(
            f"| {client} | {info['task']} | {info['train']} | {info['test']} | "
            f"{_fmt(pc.get('personalized'))} | {_fmt(pc.get('global'))} |"
        )
    mean = summ.get("mean", {})
    lines += [
        f"| **mean** | | | | {_fmt(mean.get('personalized'))} | {_fmt(mean.get('global'))} |",
        "",
        f"Metric: overall accuracy (VQA / multiclass) or micro-F1 (multilabel), final round "
        f"{summ.get('round')}. Wall time {summ.get('wall_time', 0):.1f} s; "
        f"bytes communicated {summ.get('bytes_communicated', 0):,}.",
        "",
        *privacy_lines(results.get("privacy")),
        *([f"**Run failed**: {results['failure']}", ""] if results.get("failure") else []),
        NOTE,
        "",
    ]
    history = results.get("history", [])
    if out_dir:
        curves = plot_run(results, Path(out_dir) / "metric_vs_round.png")
        if curves:
            lines += [f"![{cfg['name']}: headline metric per round, personalized and global views]"
                      f"({curves.name})", ""]
        lines += ["Per round, client and view: `rounds.csv`.", ""]
    title = f"{cfg['name']}: FedPIA diagnostics (strategy {cfg['strategy']}, seed {cfg['sim']['seed']})"
    plot = plot_pia(history, Path(out_dir) / "pia_diagnostics.png", title=title) if out_dir else None
    section = pia_section(history, plot.name if plot else None)
    return "\n".join(lines) + ("\n" + section if section else "")


def privacy_lines(privacy: dict[str, Any] | None) -> list[str]:
    """The DP paragraph of a report: mode, σ, C, (ε, δ) from the ledger, and where the noise
    came from (seeded noise is flagged: no real privacy)."""
    if not privacy:
        return []
    eps = privacy.get("epsilon")
    scope = ("per client, the maximum over clients" if privacy["mode"] == "local"
             else "user-level, of the released global adapters")
    return [f"Differential privacy: `dp.mode={privacy['mode']}`, noise multiplier σ = "
            f"{privacy['noise_multiplier']:.4g}, clip C = {privacy['clip']:g}: ε = "
            f"{'–' if eps is None else f'{eps:.3f}'} at δ = {privacy['delta']:g} ({scope}; "
            f"{privacy['accountant']}, {privacy.get('rounds', 0)} accounted round(s)). "
            f"Noise: {privacy.get('noise') or 'unspecified'}.", ""]


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


STD_NOTE = "± is the standard deviation over seeds (population, ddof=0)."


def per_client(runs: dict[str, list[dict[str, Any]]], *, view: str = "personalized") -> dict[str, Any]:
    """Per method and client: final metric mean, std (ddof=0) and per-seed values."""
    clients = sorted({c for rs in runs.values() for r in rs for c in r["summary"]["per_client"]})
    out: dict[str, Any] = {}
    for method, rs in runs.items():
        out[method] = {}
        for c in clients:
            vals = [r["summary"]["per_client"].get(c, {}).get(view) for r in rs]
            vals = [float(v) for v in vals if v is not None]
            if vals:
                out[method][c] = {"mean": float(np.mean(vals)), "std": float(np.std(vals)), "per_seed": vals}
    return out


def compare_table(runs: dict[str, list[dict[str, Any]]], *, view: str = "personalized") -> str:
    """Markdown table: mean ± std over seeds of the client-mean metric, and per client."""
    clients = sorted({c for rs in runs.values() for r in rs for c in r["summary"]["per_client"]})
    several = any(len(rs) > 1 for rs in runs.values())
    head = f"| method | {'mean ± std' if several else 'mean'} | " + " | ".join(clients) + " |"
    sep = "|---|---:|" + "---:|" * len(clients)
    lines = [head, sep]
    pc = per_client(runs, view=view)
    for method, rs in runs.items():
        means = [r["summary"]["mean"].get(view, np.nan) for r in rs]
        def fmt(mean: float, std: float, n: int = len(rs)) -> str:  # no "± 0.00" for one seed
            return f"{100 * mean:.2f} ± {100 * std:.2f}" if n > 1 else f"{100 * mean:.2f}"

        cells = [fmt(pc[method][c]["mean"], pc[method][c]["std"]) if c in pc[method] else "–"
                 for c in clients]
        lines.append(f"| {method} | {fmt(np.mean(means), np.std(means))} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def curves(runs: dict[str, list[dict[str, Any]]], *, view: str = "personalized") -> dict[str, list[float]]:
    """Per method: the client-mean headline metric after each round, averaged over seeds."""
    return {method: np.nanmean(arr, axis=0).tolist() for method, arr in seed_curves(runs, view).items()}


def seed_curves(runs: dict[str, list[dict[str, Any]]], view: str) -> dict[str, np.ndarray]:
    """Per method: ``[seeds, rounds]`` client-mean headline metric after each round."""
    from fedpia.client import primary_metric

    out = {}
    for method, rs in runs.items():
        per_seed = []
        for r in rs:
            tasks = {c: d["task"] for c, d in r["data"].items()}
            seq = []
            for h in r["history"]:
                vals = [res[view][primary_metric(tasks[c])] for c, res in h["eval"].items() if view in res]
                seq.append(float(np.mean(vals)) if vals else np.nan)
            per_seed.append(seq)
        out[method] = np.array(per_seed, dtype=float)
    return out
