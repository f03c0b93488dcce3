"""Markdown reports and PNG plots from results (data in, text/figures out)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

NOTE = (
    "The default backbone is a small pretrained one (minilm-vl: MiniLM-L6 + EfficientNet-Lite0, "
    "see the model line) and the data are small; compare gaps between methods, not absolute "
    "numbers with the paper (ViLT-B/32)."
)


def experiment_report(results: dict[str, Any]) -> str:
    """Short markdown report of one run: config line, per-client final metrics, timings."""
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
        NOTE,
        "",
    ]
    return "\n".join(lines)


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
    return {method: np.nanmean(arr, axis=0).tolist() for method, arr in _seed_curves(runs, view).items()}


def _seed_curves(runs: dict[str, list[dict[str, Any]]], view: str) -> dict[str, np.ndarray]:
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


def plot_compare(runs: dict[str, list[dict[str, Any]]], out_dir: Path, *, view: str = "personalized") -> list[Path]:
    """Write ``metric_vs_round.png`` and ``per_client.png``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    paths = []
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6, 4))
    for method, arr in _seed_curves(runs, view).items():
        mean, std = 100 * np.nanmean(arr, axis=0), 100 * np.nanstd(arr, axis=0)
        x = np.arange(1, len(mean) + 1)
        line, = ax.plot(x, mean, marker="o", label=method)
        if arr.shape[0] > 1:  # band: ± std over seeds
            ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.15)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round")
    ax.set_ylabel(f"client-mean metric ({view}) %")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    paths.append(out_dir / "metric_vs_round.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    clients = sorted({c for rs in runs.values() for r in rs for c in r["summary"]["per_client"]})
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(clients) * max(1, len(runs)) / 2), 4))
    width = 0.8 / max(1, len(runs))
    pc = per_client(runs, view=view)
    for j, method in enumerate(runs):
        stats = [pc[method].get(c, {"mean": np.nan, "std": 0.0}) for c in clients]
        ax.bar(np.arange(len(clients)) + j * width, [100 * st["mean"] for st in stats], width,
               yerr=[100 * st["std"] for st in stats], capsize=2, label=method)
    ax.set_xticks(np.arange(len(clients)) + width * (len(runs) - 1) / 2, clients, rotation=20, fontsize=8)
    ax.set_ylabel(f"final metric ({view}) %")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out_dir / "per_client.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    return paths
