"""Accuracy benchmark: FedPIA vs baselines on the runnable presets, several seeds.

Runs ``fedpia compare`` for every preset, writes ``benchmarks/results/accuracy.json`` (all
summaries, with provenance and the exact command) and the markdown tables between the
``<!-- accuracy:start -->`` / ``<!-- accuracy:end -->`` markers of ``docs/benchmarks.md``, with the
paper's reference numbers beside ours.

    python benchmarks/bench_accuracy.py --data-root ../shared/data \
        --presets t1-vqarad,t2-modality,t3-cxr-notes,t5-mixed --seeds 0,1,2 --rounds 6
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import shlex
import sys
import time
from pathlib import Path

from _docs import int_list, write_section

from fedpia.experiments import get_preset, run_compare

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "accuracy.json"
DOC = ROOT / "docs" / "benchmarks.md"

PAPER_METHODS = [
    "full-finetune", "classifier-only", "fedavg", "fedavg-lora", "feddat", "fedpia",
    "fedpia-client-only", "fedpia-server-only", "fedpia-weight-cost",
]
# The paper's Table (ViLT backbone): T1 mean overall acc, T2 acc, T3 Open-I F1, T5 F1.
PAPER = {
    "full-finetune": {"t1": 45.51, "t2": 88.99, "t3": 68.78, "t5": 86.71},
    "classifier-only": {"t1": 38.47, "t2": 78.32, "t3": 59.58, "t5": 84.38},
    "fedavg": {"t1": 42.60, "t2": 82.46, "t3": 63.05, "t5": 85.83},
    "fedavg-lora": {"t1": 35.86, "t2": 69.24, "t3": 58.37, "t5": 84.83},
    "feddat": {"t1": 43.08, "t2": 82.61, "t3": 64.02, "t5": 85.96},
    "fedpia": {"t1": 46.66, "t2": 87.97, "t3": 68.27, "t5": 88.52},
    "fedpia-client-only": {"t1": 45.35, "t2": 85.59, "t3": 66.47, "t5": 87.24},
    "fedpia-server-only": {"t1": 44.47, "t2": 85.02, "t3": 65.58, "t5": 86.97},
    "fedpia-weight-cost": {"t1": 46.02, "t2": 87.13, "t3": 67.62, "t5": 87.93},
}
PRESET_COLUMN = {"t1-vqarad": "t1", "t2-modality": "t2", "t3-cxr-notes": "t3", "t5-mixed": "t5",
                 "t1-medvqa": "t1", "t2-modality8": "t2"}


def _base(key: str) -> str:
    """Preset of a results key (``t1-vqarad@30rounds`` -> ``t1-vqarad``)."""
    return key.split("@", 1)[0]


def _table(results: dict, presets: list[str], view: str) -> str:
    methods = []
    for p in presets:
        for m in results[p]["methods"]:
            if m not in methods:
                methods.append(m)
    paper_cols = list(dict.fromkeys(PRESET_COLUMN[_base(p)] for p in presets if _base(p) in PRESET_COLUMN))
    head = "| method | " + " | ".join(f"{p} (ours)" for p in presets) + " | " + " | ".join(
        f"{c.upper()} paper" for c in paper_cols) + " |"
    lines = [head, "|---|" + "---:|" * (len(presets) + len(paper_cols))]
    for m in methods:
        cells = []
        for p in presets:
            r = results[p]["results"].get(m, {}).get(view)
            cells.append("–" if r is None else _cell(r))
        ref = [f"{PAPER.get(m, {}).get(c, '–')}" for c in paper_cols]
        lines.append(f"| {m} | " + " | ".join(cells) + " | " + " | ".join(ref) + " |")
    return "\n".join(lines)


def _cell(r: dict) -> str:
    n = len(r.get("per_seed", [])) or 1
    return f"{100 * r['mean']:.2f} (1 seed)" if n == 1 else f"{100 * r['mean']:.2f} ± {100 * r['std']:.2f}"


def write_doc(results: dict) -> None:
    presets = sorted(results)  # t1, t2, t3, t5: the paper's column order
    seeds = sorted({s for r in results.values() for s in r["seeds"]})
    commands = sorted({c for r in results.values() for c in r.get("commands", [r.get("command")])})
    backbones = sorted({r.get("backbone", "vilt (tiny, random init)") for r in results.values()})
    body = [
        "<!-- accuracy:start -->",
        f"Commands (seeds {seeds}; backbone {', '.join(backbones)}; CPU; raw numbers and per-run",
        "provenance in `benchmarks/results/accuracy.json`):",
        "",
        *[f"- `{c}`" for c in commands],
        "",
        "Client-mean final-round metric (accuracy for VQA / multiclass, micro-F1 for multi-label),",
        "mean ± std over seeds. **Personalized** = each client's adapter after its local training",
        "(what a hospital deploys); the paper's numbers are a pretrained ViLT-B/32 on the full",
        "datasets (30 rounds), so compare the *gaps* between rows, not absolute values.",
        "",
        "### Personalized",
        "",
        _table(results, presets, "personalized"),
        "",
        "### Global adapter with each client's head",
        "",
        _table(results, presets, "global"),
        "",
        "<!-- accuracy:end -->",
    ]
    write_section(DOC, "accuracy", "Accuracy (FedPIA vs baselines)", "\n".join(body))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="t1-vqarad,t2-modality,t3-cxr-notes,t5-mixed")
    ap.add_argument("--methods", default=",".join(PAPER_METHODS))
    ap.add_argument("--seeds", type=int_list, default=[0, 1, 2])
    ap.add_argument("--rounds", type=int, default=None, help="override every preset's rounds")
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--out", default="runs/bench_accuracy")
    ap.add_argument("--set", action="append", default=[], help="extra overrides key=value")
    ap.add_argument("--tag", default="", help="store as PRESET@TAG (e.g. a longer-round variant), "
                    "a separate table column")
    ap.add_argument("--render", action="store_true", help="only rewrite the docs from the JSON")
    ap.add_argument("--resume", action="store_true", help="continue the runs under --out (finished "
                    "runs are read back, not re-run)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    command = "python benchmarks/bench_accuracy.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    if args.render:
        with _locked() as results:
            write_doc(results)
        return 0
    for preset in args.presets.split(","):
        key = f"{preset}@{args.tag}" if args.tag else preset
        cfg = get_preset(preset)
        sets = [f"data_root={args.data_root!r}", *args.set]
        if args.rounds:
            sets.append(f"sim.rounds={args.rounds}")
        cfg = cfg.with_overrides(sets)
        t0 = time.perf_counter()
        summary = run_compare(cfg, methods=args.methods.split(","), seeds=args.seeds,
                              out_dir=Path(args.out) / key, overwrite=not args.resume,  # re-measure
                              resume=args.resume)
        summary.pop("table", None)
        summary["command"] = command
        summary["overrides"] = sets
        summary["elapsed_s"] = time.perf_counter() - t0
        summary["backbone"] = _backbone(cfg)
        for entry in summary["results"].values():  # per-row provenance survives later merges
            entry["command"], entry["git_hash"] = command, summary["provenance"]["git_hash"]
        with _locked() as results:  # several processes may share the results file
            results[key] = _merge(results.get(key), summary, command)
            write_doc(results)
        print(f"{key}: done in {summary['elapsed_s']:.0f} s", flush=True)
        for m, r in summary["results"].items():
            p = r.get("personalized", {})
            print(f"  {m:22s} {100 * p.get('mean', float('nan')):6.2f} ± {100 * p.get('std', float('nan')):.2f}",
                  flush=True)
    return 0


@contextlib.contextmanager
def _locked():
    """The results dict, read and written back under an exclusive lock (parallel benchmark runs)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        yield results
        RESULTS.write_text(json.dumps(results, indent=1))


def _merge(old: dict | None, summary: dict, command: str) -> dict:
    """A run with more methods (or seeds of other methods) adds rows to the same preset."""
    if not old:
        return summary
    summary["results"] = {**old["results"], **summary["results"]}
    for view, rows in old.get("per_client", {}).items():
        summary["per_client"][view] = {**rows, **summary["per_client"].get(view, {})}
    summary["methods"] = old["methods"] + [m for m in summary["methods"] if m not in old["methods"]]
    summary["commands"] = old.get("commands", [old["command"]]) + [command]
    summary["seeds"] = sorted(set(old.get("seeds", [])) | set(summary.get("seeds", [])))
    for view, curves in old.get("curves", {}).items():
        summary["curves"][view] = {**curves, **summary["curves"].get(view, {})}
    return summary


def _backbone(cfg) -> str:
    m = cfg.model  # the model section as a dict
    pretrained = m.get("pretrained")
    weights = {None: "pretrained", "random": "random init", "tiny": "tiny, random init"}.get(pretrained, pretrained)
    return f"{m.get('backbone', 'minilm-vl')} ({weights})"


if __name__ == "__main__":
    sys.exit(main())
