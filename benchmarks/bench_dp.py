"""Accuracy cost of local DP for FedPIA on one real preset: no DP vs two noise levels.

Every run is FedPIA (local DP is the mode FedPIA admits: its server step needs individual
adapters) on the same preset, rounds and seeds; only ``dp.*`` changes. The clip bound C is the
median upload norm ‖W_k − G‖ of round 1 of the no-DP run of the first seed (a data-driven C
that clips about half of the uploads), so σ is the only knob that differs between DP rows. ε is
the ledger's (Opacus RDP, per client, a client that uploads every round) at δ = 1e-5.

Reported per row and seed: the final round's client-mean accuracy, personalized (each client's
own, un-noised adapter + head) and global (the noised-and-aggregated global adapter + the
client's head). Writes ``benchmarks/results/dp.json`` and the ``<!-- dp:start -->`` section of
``docs/benchmarks.md``.

    nice python benchmarks/bench_dp.py --data-root ../shared/data [--preset t2-modality]
        [--rounds 5] [--seeds 0,1] [--sigmas 4,10] [--set setting_options.max_train=200 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _docs import int_list, write_section

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "dp.json"
DOC = ROOT / "docs" / "benchmarks.md"
DEFAULT_SETS = ("setting_options.include_vqarad=False", "setting_options.max_train=200",
                "setting_options.max_val=50", "setting_options.max_test=100")


def _config(args, seed: int, dp: dict):
    from fedpia.experiments import get_preset

    sets = [f"sim.rounds={args.rounds}", f"sim.seed={seed}", *args.set,
            f"data_root={args.data_root!r}"] + [f"dp.{k}={v!r}" for k, v in dp.items()]
    return get_preset(args.preset).with_overrides(sets)


def one_run(args, seed: int, dp: dict) -> dict:
    """Final client-mean accuracies, ε and round-1 upload norms of one run."""
    from fedpia.experiments import summarize
    from fedpia.rounds import build_run
    from fedpia.sim import Simulator

    cfg = _config(args, seed, dp)
    run = build_run(cfg)
    t0 = time.perf_counter()
    hist = Simulator.from_run(run).run().history
    summ = summarize(hist, {c.name: c.task for c in run.data.clients})
    priv = hist[-1]["privacy"]
    out = {"seed": seed, "personalized": summ["mean"].get("personalized"),
           "global": summ["mean"].get("global"), "epsilon": priv["epsilon"] if priv else None,
           "norms_round1": list(hist[0]["influence"]["norms"].values()),
           "wall_s": time.perf_counter() - t0}
    print(f"seed {seed} dp {dp or 'off'}: personalized {out['personalized']:.4f} global "
          f"{out['global']:.4f} eps {out['epsilon']}  ({out['wall_s']:.0f} s)", flush=True)
    return out


def _row(name: str, dp: dict, runs: list[dict]) -> dict:
    row = {"dp": name, "config": dp, "runs": runs}
    for view in ("personalized", "global"):
        vals = [r[view] for r in runs]
        row[view] = {"mean": statistics.fmean(vals),
                     "std": statistics.pstdev(vals) if len(vals) > 1 else 0.0}
    row["epsilon"] = runs[0]["epsilon"]
    return row


def write_doc(res: dict) -> None:
    def pct(s: dict) -> str:
        return (f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f}" if len(res["seeds"]) > 1
                else f"{100 * s['mean']:.2f}")

    lines = ["<!-- dp:start -->",
             f"FedPIA on `{res['preset']}` ({', '.join(res['sets'])}), {res['rounds']} rounds, "
             f"seeds {res['seeds']}, backbone: {res['model']}. Clip C = {res['clip']:.4g} (median "
             f"round-1 upload norm of the no-DP run). ε per client at δ = 1e-5 (Opacus RDP). "
             f"Command `{res['command']}`; load average {res['load_start']:.1f} at start, "
             f"{res['load_end']:.1f} at the end (2 cores shared: timings indicative only); "
             f"git {res['git'][:10]}.", "",
             "| dp | ε (δ = 1e-5) | personalized acc. % | global acc. % |", "|---|---:|---:|---:|"]
    for row in res["rows"]:
        eps = "∞ (no DP)" if row["epsilon"] is None else f"{row['epsilon']:.2f}"
        lines.append(f"| {row['dp']} | {eps} | {pct(row['personalized'])} | {pct(row['global'])} |")
    lines += ["", "± is the standard deviation over seeds (population). Personalized = each "
              "client's own un-noised adapter and head; global = the aggregate of the noised "
              "uploads with the client's head.", "<!-- dp:end -->"]
    write_section(DOC, "dp", "Accuracy cost of differential privacy", "\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="t2-modality")
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seeds", type=int_list, default=[0])
    ap.add_argument("--sigmas", default="4,10")
    ap.add_argument("--set", action="append", default=None, help="extra override (repeatable)")
    args = ap.parse_args(argv)
    args.data_root = str(Path(args.data_root).resolve())
    args.set = list(DEFAULT_SETS) if args.set is None else args.set
    torch.set_num_threads(1)
    seeds = args.seeds
    load_start = os.getloadavg()[0]
    base = [one_run(args, s, {}) for s in seeds]
    clip = statistics.median(base[0]["norms_round1"])
    rows = [_row("off", {}, base)]
    for sigma in (float(x) for x in args.sigmas.split(",")):
        dp = {"mode": "local", "clip": clip, "noise_multiplier": sigma}
        rows.append(_row(f"local σ = {sigma:g}", dp, [one_run(args, s, dp) for s in seeds]))
    git = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                         cwd=ROOT).stdout.strip()
    res = {"command": "python benchmarks/bench_dp.py " + " ".join(argv or sys.argv[1:]),
           "preset": args.preset, "sets": args.set, "rounds": args.rounds, "seeds": seeds,
           "model": _config(args, seeds[0], {}).model_config().backbone + " (tiny, random init; "
           "main's default)", "clip": clip, "rows": rows, "git": git, "load_start": load_start,
           "load_end": os.getloadavg()[0]}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=1))
    write_doc(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
