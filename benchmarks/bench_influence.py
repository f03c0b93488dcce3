"""Influence benchmark: how far one client sending a 1000x update moves the global model, with
the default norm bound and without it; and how often the bound touches honest clients.

1. For FedAvg and FedPIA on a preset: the global's move ‖G_r − G_{r−1}‖ in round r when client 1
   sends ``G + 1000·(W − G)`` (fault ``scale:1000``), divided by the same round's honest move
   (identical history before round r), with ``robust.norm_bound`` = clip (default), reject, off.
2. Clean runs (no fault): the share of honest uploads the default bound clipped, and the largest
   ratio ‖Δ_k‖ / median of a round.

Writes ``benchmarks/results/influence.json`` and the ``<!-- influence:start -->`` section of
``docs/benchmarks.md``.

    python benchmarks/bench_influence.py [--preset demo] [--data-root DIR] [--rounds-attacked 1,3]
                                         [--clean-rounds 8]

Results are kept per preset (a run for another preset adds its tables).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from _docs import int_list, write_section

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "influence.json"
DOC = ROOT / "docs" / "benchmarks.md"
STRATEGIES = ("fedavg", "fedpia")
MODES = ("clip", "reject", "off")


DATA_ROOT: list[str] = []  # --data-root, for real-data presets


def _config(preset: str, strategy: str, rounds: int, extra: list[str]):
    from fedpia.experiments import apply_variant, get_preset

    root = [f"data_root={DATA_ROOT[0]!r}"] if DATA_ROOT else []
    return apply_variant(get_preset(preset), strategy).with_overrides(
        [f"sim.rounds={rounds}", *root, *extra])


def _simulator(run, cfg):
    from fedpia.sim import Simulator

    return Simulator(run.model, run.data, run.strategy, sim=cfg.sim, train=cfg.train,
                     robust=cfg.robust, initial_adapter=run.initial_adapter, runtime=run.runtime)


def _move(a, b) -> float:
    return math.sqrt(sum(float((a[k] - b[k]).double().norm() ** 2) for k in a))


def attacked(preset: str, strategy: str, r: int) -> dict:
    """Honest vs attacked move of the global in round ``r`` (same history before it)."""
    from fedpia.rounds import build_run

    cfg = _config(preset, strategy, r, [])
    run = build_run(cfg)
    honest = _simulator(run, cfg)
    state = honest.initial_state()
    for _ in range(r - 1):
        state = honest.run_round(state)
    before = state.server.adapter
    out = {"round": r, "honest": _move(honest.run_round(state).server.adapter, before)}
    fault = "sim.faults=" + json.dumps([{"client": 1, "round": r, "kind": "scale:1000"}])
    for mode in MODES:
        bad = _config(preset, strategy, r, [fault, f"robust.norm_bound={mode}"])
        after = _simulator(run, bad).run_round(state)
        out[mode] = _move(after.server.adapter, before) / out["honest"]
        print(f"{strategy} round {r} {mode}: {out[mode]:.2f}x an honest round", flush=True)
    return out


def clean(preset: str, strategy: str, rounds: int) -> dict:
    """Share of honest uploads clipped by the default bound over a clean run."""
    from fedpia.rounds import build_run

    cfg = _config(preset, strategy, rounds, [])
    run = build_run(cfg)
    hist = _simulator(run, cfg).run().history
    clipped = sum(len(h["influence"]["clipped"]) for h in hist)
    total = sum(len(h["influence"]["norms"]) for h in hist)
    worst = max(max(h["influence"]["norms"].values()) / sorted(h["influence"]["norms"].values())[
        (len(h["influence"]["norms"]) - 1) // 2] for h in hist)
    return {"rounds": rounds, "uploads": total, "clipped": clipped, "max_norm_over_median": worst}


def _tables(res: dict) -> list[str]:
    lines = [f"Preset `{res['preset']}`, command `{res['command']}`, load average at start "
             f"{res['load']:.1f}.", "",
             "| strategy | round | clip (default, c = 2) | reject | off (no bound) |",
             "|---|---:|---:|---:|---:|"]
    for s in STRATEGIES:
        for a in res["attacked"][s]:
            lines.append(f"| {s} | {a['round']} | {a['clip']:.2f}× | {a['reject']:.2f}× | "
                         f"{a['off']:.1f}× |")
    lines += ["", "| strategy (clean run) | rounds | uploads | clipped by the default bound | "
              "max ‖Δ_k‖ / median in a round |", "|---|---:|---:|---:|---:|"]
    for s in STRATEGIES:
        c = res["clean"][s]
        lines.append(f"| {s} | {c['rounds']} | {c['uploads']} | {c['clipped']} | "
                     f"{c['max_norm_over_median']:.2f} |")
    return lines


def write_doc(all_res: dict) -> None:
    lines = ["<!-- influence:start -->",
             "One client (index 1) sends `G + 1000·(W − G)` in round r (`sim.faults`, kind "
             "`scale:1000`); the first table of each preset gives the global's move in that "
             "round divided by the honest round's move (same history before r), per "
             "`robust.norm_bound`. The second counts honest uploads the default bound clipped in "
             "a clean run.", ""]
    for res in all_res.values():
        lines += [*_tables(res), ""]
    lines[-1] = "<!-- influence:end -->"
    write_section(DOC, "influence", "Bounded influence of one client", "\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--rounds-attacked", type=int_list, default=[1, 3])
    ap.add_argument("--clean-rounds", type=int, default=8)
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args(argv)
    if args.data_root:
        DATA_ROOT.append(str(Path(args.data_root).resolve()))
    torch.set_num_threads(1)
    command = "python benchmarks/bench_influence.py " + " ".join(argv or sys.argv[1:])
    res = {"command": command.strip(), "preset": args.preset, "load": os.getloadavg()[0],
           "attacked": {}, "clean": {}}
    for s in STRATEGIES:
        res["attacked"][s] = [attacked(args.preset, s, int(r)) for r in args.rounds_attacked]
        res["clean"][s] = clean(args.preset, s, args.clean_rounds)
        print(s, res["clean"][s], flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    all_res = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    all_res[args.preset] = res
    RESULTS.write_text(json.dumps(all_res, indent=1))
    write_doc(all_res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
