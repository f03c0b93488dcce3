"""What FedPIA's permutations do per round, read back from finished benchmark runs.

Reads the round records of the FedPIA runs that ``bench_accuracy.py`` left under ``--runs``
(``<runs>/<preset>/<method>/seed<N>/results.json``) and averages, per round, the diagnostics of
:func:`fedpia.experiments.pia_report.pia_rounds` over unit groups, clients and seeds: units moved
(share of hidden units a plan re-orders) and cost gain (relative drop of the transport cost
against the identity), for the client step (G aligned onto each client's adapter) and the server
step (client adapters aligned onto the FedAvg anchor). Trains nothing. Writes
``benchmarks/results/units_moved.json`` and prints a markdown table::

    python benchmarks/bench_units_moved.py --runs /work/grid/runs --presets t1-medvqa,t2-modality8,t5-mixed
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from fedpia.experiments.pia_report import pia_rounds

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "units_moved.json"
MEASURES = (("client_moved", "client: units moved"), ("client_gain", "client: cost gain"),
            ("server_moved", "server: units moved"), ("server_gain", "server: cost gain"))


def per_round(paths: list[Path]) -> dict[int, dict[str, float]]:
    """Mean over the given runs of each measure, per round (a measure no run has in a round,
    or only as nan, is left out of that round)."""
    acc: dict[int, dict[str, list[float]]] = {}
    for path in paths:
        for row in pia_rounds(json.loads(path.read_text())["history"]):
            slot = acc.setdefault(int(row["round"]), {})
            for key, _ in MEASURES:
                if key in row and not math.isnan(row[key]):
                    slot.setdefault(key, []).append(float(row[key]))
    return {r: {k: float(np.mean(v)) for k, v in slot.items()} for r, slot in sorted(acc.items())}


def table(summary: dict[str, dict], rounds: list[int]) -> str:
    lines = ["| preset (seeds) | measure | " + " | ".join(str(r) for r in rounds) + " |",
             "|---|---|" + "---:|" * len(rounds)]
    for preset, entry in summary.items():
        for key, label in MEASURES:
            cells = [entry["rounds"].get(r, {}).get(key) for r in rounds]
            if all(c is None for c in cells):
                continue
            lines.append(f"| {preset} ({len(entry['seeds'])}) | {label} | " + " | ".join(
                "–" if c is None else f"{c:.1%}" for c in cells) + " |")
    return "\n".join(lines)


def _rounds(text: str) -> list[int]:
    try:
        return [int(r) for r in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated round numbers, got {text!r}") from None


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, required=True, help="bench_accuracy.py --out folder")
    ap.add_argument("--presets", default="t1-medvqa,t2-modality8,t5-mixed")
    ap.add_argument("--method", default="fedpia")
    ap.add_argument("--rounds", type=_rounds, default=_rounds("2,3,4,5,6,8,10"),
                    help="rounds shown in the table")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    summary = {}
    for preset in [p for p in args.presets.split(",") if p]:
        paths = sorted((args.runs / preset / args.method).glob("seed*/results.json"))
        if not paths:
            sys.exit(f"no finished {args.method} runs under {args.runs / preset / args.method}")
        summary[preset] = {"seeds": [p.parent.name for p in paths], "rounds": per_round(paths)}
    text = table(summary, args.rounds)
    print(text)
    out = {"command": "python benchmarks/bench_units_moved.py " + " ".join(argv or sys.argv[1:]),
           "method": args.method, "presets": summary}
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
