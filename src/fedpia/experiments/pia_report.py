"""FedPIA diagnostics of a run, summarised per round (table + one plot) for ``report.md``.

Reads what the FedPIA strategy writes into every round record (``fedpia.strategies.fedpia``):
the server's ``diagnostics`` (per unit group and client: units moved, transport cost before /
after alignment, distance to the anchor; per client ``w_k`` and ``p_k``) and each client's
``clients[name]["pia"]`` (its alignment of G onto its own adapter). Per round it reports means
over groups and clients:

* units moved: ``moved / width`` (server: client units re-ordered onto the anchor; client:
  units of G re-ordered onto the local adapter);
* cost gain: ``1 − cost_after / cost_before`` (how much cheaper the plan is than the identity);
* ``max |w−p|``: the largest gap between an integration weight and the FedAvg weight;
* ``d``: mean distance ``d_k`` of the aligned clients to the anchor;
* accepted: share of client groups whose permutation passed the margin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _mean(xs: list[float | None]) -> float:
    vals = [x for x in xs if x is not None]
    return float(np.mean(vals)) if vals else float("nan")


def _server(diag: dict[str, Any]) -> dict[str, float]:
    groups = diag.get("groups") or {}
    moved = [m / g["width"] for g in groups.values() for m in g["moved"]]
    gain = [x for g in groups.values() for x in g["gain"]]
    gap = [abs(w - p) for w, p in zip(diag["weights"], diag["fedavg_weights"], strict=True)
           if w is not None and p is not None]
    return {"server_moved": _mean(moved), "server_gain": _mean(gain),
            "weight_gap": max(gap) if gap else float("nan"), "distance": _mean(diag["distances"])}


def _client(infos: list[dict[str, Any]], widths: dict[str, int]) -> dict[str, float]:
    moved, gain, acc = [], [], []
    for pia in infos:
        sizes = pia.get("widths") or [widths.get(n) for n in pia["groups"]]
        for w, m, g, a in zip(sizes, pia["moved"], pia["gain"], pia["accepted"], strict=True):
            if w:
                moved.append(m / w)
            gain.append(g)
            acc.append(float(a))
    return {"client_moved": _mean(moved), "client_gain": _mean(gain),
            "client_accepted": _mean(acc)}


def pia_rounds(history: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Per round: the means listed in the module docstring (nan where a side did not run);
    empty when the run has no FedPIA diagnostics."""
    rows = []
    for rec in history:
        diag = rec.get("diagnostics") or {}
        infos = [c["pia"] for c in rec.get("clients", {}).values() if "pia" in c]
        if "groups" not in diag and not infos:
            continue
        widths = {n: g["width"] for n, g in (diag.get("groups") or {}).items()}
        row = {"round": rec["round"]}
        row.update(_server(diag) if "groups" in diag else {})
        row.update(_client(infos, widths) if infos else {})
        rows.append(row)
    return rows


_COLS = [("server_moved", "server units moved", "{:.1%}"), ("server_gain", "server cost gain",
         "{:.2%}"), ("weight_gap", "max abs(w−p)", "{:.4f}"), ("distance", "mean d_k", "{:.4f}"),
         ("client_moved", "client units moved", "{:.1%}"), ("client_gain", "client cost gain",
         "{:.2%}"), ("client_accepted", "client accepted", "{:.0%}")]


def pia_section(history: list[dict[str, Any]], plot: str | None = None) -> str:
    """Markdown section "FedPIA diagnostics" (empty string when there is nothing to show)."""
    rows = pia_rounds(history)
    if not rows:
        return ""
    cols = [c for c in _COLS if any(c[0] in r for r in rows)]
    lines = ["## FedPIA diagnostics", "",
             "Means over unit groups and clients per round (see `fedpia.experiments.pia_report`;"
             " per-group numbers in `results.json`: `history[r].diagnostics.groups` and "
             "`history[r].clients[c].pia`).", "",
             "| round | " + " | ".join(c[1] for c in cols) + " |",
             "|---:|" + "---:|" * len(cols)]
    for r in rows:
        cells = [c[2].format(r[c[0]]) if c[0] in r and np.isfinite(r[c[0]]) else "–"
                 for c in cols]
        lines.append(f"| {r['round']} | " + " | ".join(cells) + " |")
    if plot:
        lines += ["", f"![units moved and cost gain per round]({plot})"]
    return "\n".join(lines) + "\n"


def plot_pia(history: list[dict[str, Any]], path: Path, *, title: str = "FedPIA diagnostics") -> Path | None:
    """``path`` (PNG, titled ``title``): units moved and cost gain per round, server and client;
    None if no data."""
    rows = pia_rounds(history)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    x = [r["round"] for r in rows]
    for ax, what, label in ((axes[0], "moved", "units moved %"), (axes[1], "gain", "cost gain %")):
        for side in ("server", "client"):
            y = [100 * r.get(f"{side}_{what}", np.nan) for r in rows]
            if np.isfinite(y).any():
                ax.plot(x, y, marker="o", label=side)
        ax.set_xlabel("round")
        ax.set_ylabel(label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
