"""Where FedPIA's difference from FedAvg comes from, per setting, paired over seeds.

Reads ``benchmarks/results/accuracy.json`` (written by ``bench_accuracy.py``) and splits
FedPIA − FedAvg into a telescoping chain of controls, each step adding one component:

    fedavg            FedAvg server, clients start from G
    fedavg-mix        + the client λ-mix of G and the client's own adapter (no permutation)
    fedpia-client-only+ the client permutation of G (activation cost) before the mix
    fedpia-gamma0     + the server alignment to the FedAvg anchor (FedAvg weights, γ = 0)
    fedpia            + the integration weights w_k ∝ p_k e^{−γ d_k} (γ = 1)

so the four step differences add up to FedPIA − FedAvg exactly, seed by seed. Each step is
reported as mean ± std (population) of the per-seed paired difference, over the seeds that both
rows ran. Also: the paper's ablation ``fedpia-server-only`` (server step, clients start from G)
− FedAvg. Writes ``benchmarks/results/decompose.json`` and the ``<!-- decompose:start -->``
section of ``docs/benchmarks.md``.

    python benchmarks/bench_decompose.py [--view personalized]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
from _docs import write_section

ROOT = Path(__file__).resolve().parents[1]
ACCURACY = ROOT / "benchmarks" / "results" / "accuracy.json"
RESULTS = ROOT / "benchmarks" / "results" / "decompose.json"
DOC = ROOT / "docs" / "benchmarks.md"

CHAIN = ["fedavg", "fedavg-mix", "fedpia-client-only", "fedpia-gamma0", "fedpia"]
STEPS = {  # (from, to): component the step adds
    ("fedavg", "fedavg-mix"): "client λ-mix",
    ("fedavg-mix", "fedpia-client-only"): "client permutation",
    ("fedpia-client-only", "fedpia-gamma0"): "server alignment (FedAvg weights)",
    ("fedpia-gamma0", "fedpia"): "integration weights (γ = 1)",
    ("fedavg", "fedpia"): "total: FedPIA − FedAvg",
    ("fedavg", "fedpia-server-only"): "paper ablation: server PIA only − FedAvg",
}


def seeds_of(entry: dict, default: list[int]) -> list[int]:
    """The seeds of a results row, from the command that produced it (``--seeds 0,1,2``);
    rows without a command of their own ran the preset's ``default`` seeds."""
    m = re.search(r"--seeds[ =]([\d,]+)", entry.get("command") or "")
    return [int(s) for s in m.group(1).split(",")] if m else list(default)


def per_seed(entry: dict, view: str, default: list[int]) -> dict[int, float]:
    vals = entry.get(view, {}).get("per_seed", [])
    seeds = seeds_of(entry, default)
    if len(vals) != len(seeds):
        raise ValueError(f"{len(vals)} values for seeds {seeds}")
    return dict(zip(seeds, vals, strict=True))


def paired(rows: dict, a: str, b: str, view: str, default: list[int]) -> dict | None:
    """b − a per seed (both rows ran it), in points; None when a row is missing."""
    if a not in rows or b not in rows:
        return None
    xa, xb = per_seed(rows[a], view, default), per_seed(rows[b], view, default)
    common = sorted(set(xa) & set(xb))
    if not common:
        return None
    d = [100 * (xb[s] - xa[s]) for s in common]
    return {"seeds": common, "diff": d, "mean": float(np.mean(d)), "std": float(np.std(d))}


def decompose(results: dict, view: str) -> dict:
    out = {}
    for preset, summary in sorted(results.items()):
        rows = summary["results"]
        steps = {f"{a} → {b}": {"component": what, **d} for (a, b), what in STEPS.items()
                 if (d := paired(rows, a, b, view, summary["seeds"])) is not None}
        if steps:
            out[preset] = steps
    return out


def _cell(d: dict | None) -> str:
    if d is None:
        return "–"
    n = len(d["seeds"])
    return f"{d['mean']:+.2f} (1 seed)" if n == 1 else f"{d['mean']:+.2f} ± {d['std']:.2f} ({n} seeds)"


def write_doc(dec: dict, view: str, command: str) -> None:
    presets = list(dec)
    lines = ["<!-- decompose:start -->",
             f"Command: `{command}` (reads `benchmarks/results/accuracy.json`; numbers in "
             "`benchmarks/results/decompose.json`). Points of client-mean accuracy / F1, "
             f"{view} view, paired per seed (mean ± std of the per-seed differences). The first four "
             "rows add up to the total, seed by seed.", "",
             "| step | component | " + " | ".join(presets) + " |",
             "|---|---|" + "---:|" * len(presets)]
    for (a, b), what in STEPS.items():
        key = f"{a} → {b}"
        lines.append(f"| `{a}` → `{b}` | {what} | " + " | ".join(_cell(dec[p].get(key)) for p in presets) + " |")
    lines.append("<!-- decompose:end -->")
    write_section(DOC, "decompose", "Where FedPIA's difference from FedAvg comes from", "\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--view", default="personalized", choices=["personalized", "global"])
    args = ap.parse_args(argv)
    command = "python benchmarks/bench_decompose.py " + " ".join(argv if argv is not None else sys.argv[1:])
    results = json.loads(ACCURACY.read_text())
    dec = {view: decompose(results, view) for view in ("personalized", "global")}
    RESULTS.write_text(json.dumps({"command": command, **dec}, indent=1))
    for preset, steps in dec[args.view].items():
        print(preset)
        for key, d in steps.items():
            print(f"  {key:40s} {_cell(d)}")
    write_doc(dec[args.view], args.view, command.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
