"""How stable is FedPIA's client permutation? Plan agreement across probe batches vs probe size.

The client step aligns the received global adapter G to the client's own adapter L with an
activation cost on ``m`` random local samples (the probe). This script runs FedPIA on a preset
and, after every round r, takes each client's (L, G) pair (what the client step sees in round
r+1) and computes the activation-cost plan of every unit group on ``--batches`` independent
probe batches per probe size ``m``, plus one plan on the whole training split (the "full"
plan). Per probe size and margin μ (a plan is applied only when it lowers the transport cost by
at least μ of the identity's cost, ``fedpia.align.align(margin=)``) it reports:

* agreement: share of units mapped identically by two probe batches (mean over batch pairs,
  groups, clients); ``p10``: its 10th percentile over (client, group) cells;
* full: share of units mapped as by the full-data plan;
* moved: share of units the applied plan moves; accepted: share of groups passing the margin;
* gain: median (and p10/p50/p90/max) relative cost reduction of the optimal plan (μ-free),
  and the same quantiles for the weight-cost plan;
* weight_agree: agreement of the activation plan with the weight-cost plan.

Prints a table per round and writes ``benchmarks/results/pia_probe.json``. Re-run it on another
backbone with ``--set model.pretrained=...`` (any ``--set`` override of the preset works)::

    python benchmarks/bench_probe.py --data-root ../shared/data --preset t1-vqarad --rounds 5
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from _docs import int_list
from _pia import ROOT, build, describe

from fedpia.align import align
from fedpia.client.runtime import make_probe
from fedpia.rounds.seeds import derive_seed

log = logging.getLogger("bench_probe")


def applied(plan, margin: float) -> torch.Tensor:
    """The permutation the client applies: the optimum, or the identity below the margin."""
    if margin > 0 and not plan.gain >= margin:
        return torch.arange(plan.perm.numel())
    return plan.perm


def plans(rt, local, glob, m: int, seed: int) -> dict:
    """Activation-cost plans {group: GroupPlan} of G onto L on one probe batch of ``m`` samples."""
    probe = make_probe(rt, samples=m, seed=seed)
    res = align(glob, local, cost="activation", source_acts=probe(glob),
                reference_acts=probe(local))
    return res.proposed


def _agree(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a == b).double().mean())


def measure_pair(rt, local, glob, sizes, batches, margins, seed) -> dict:
    """Per probe size and margin: agreement, full-plan agreement, moved, accepted, gain."""
    full = plans(rt, local, glob, len(rt.train), seed)
    weight = align(glob, local, cost="weight").proposed
    out = {}
    for m in sizes:
        runs = [plans(rt, local, glob, m, derive_seed(seed, m, b)) for b in range(batches)]
        row = {"gain": [float(r[g].gain) for r in runs for g in r],
               "weight_agree": [_agree(r[g].perm, weight[g].perm) for r in runs for g in r],
               "weight_gain": [float(weight[g].gain) for g in weight]}
        for mu in margins:
            cells, full_agree, moved, acc = [], [], [], []
            for g in full:
                ap = [applied(r[g], mu) for r in runs]
                cells.append(np.mean([_agree(a, b) for a, b in itertools.combinations(ap, 2)]))
                full_agree += [_agree(a, applied(full[g], mu)) for a in ap]
                moved += [float((a != torch.arange(a.numel())).double().mean()) for a in ap]
                acc += [bool(mu == 0 or r[g].gain >= mu) for r in runs]
            row[str(mu)] = {"agreement": cells, "full": full_agree, "moved": moved,
                            "accepted": acc}
        out[str(m)] = row
    return out


def summarise(cells: list[dict], sizes, margins) -> dict:
    """Pool the per-(client) measurements of one round into scalars per size and margin."""
    out = {}
    for m in sizes:
        rows = [c[str(m)] for c in cells]
        gains = [x for r in rows for x in r["gain"]]
        s = {"gain_median": float(np.median(gains)),
             "gain_quantiles": {q: float(np.percentile(gains, q)) for q in (10, 50, 90, 100)},
             "weight_gain_quantiles": {q: float(np.percentile(
                 [x for r in rows for x in r["weight_gain"]], q)) for q in (50, 90, 100)},
             "weight_agree": float(np.mean([x for r in rows for x in r["weight_agree"]]))}
        for mu in margins:
            pooled = {k: [x for r in rows for x in r[str(mu)][k]]
                      for k in ("agreement", "full", "moved", "accepted")}
            s[str(mu)] = {"agreement": float(np.mean(pooled["agreement"])),
                          "agreement_p10": float(np.percentile(pooled["agreement"], 10)),
                          "full": float(np.mean(pooled["full"])),
                          "moved": float(np.mean(pooled["moved"])),
                          "accepted": float(np.mean(pooled["accepted"]))}
        out[str(m)] = s
    return out


def table(summary: dict, sizes, margins) -> str:
    lines = ["| m | μ | agreement (p10) | vs full | moved | accepted | median gain | = weight plan |",
             "|---:|---:|---|---:|---:|---:|---:|---:|"]
    for m in sizes:
        s = summary[str(m)]
        for mu in margins:
            t = s[str(mu)]
            lines.append(f"| {m} | {mu} | {t['agreement']:.3f} ({t['agreement_p10']:.3f}) | "
                         f"{t['full']:.3f} | {t['moved']:.3f} | {t['accepted']:.2f} | "
                         f"{s['gain_median']:.4f} | {s['weight_agree']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="t1-vqarad")
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--set", action="append", default=[], help="preset override key=value")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--probe-sizes", type=int_list, default=[16, 64, 256])
    ap.add_argument("--margins", default="0,0.02,0.05,0.1,0.2,0.3")
    ap.add_argument("--batches", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/pia_probe.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sizes = args.probe_sizes
    margins = [float(x) for x in args.margins.split(",")]
    meta = describe(argv, "benchmarks/bench_probe.py")
    cfg, _, _, _, sim = build(args.preset, [*args.set, f"sim.rounds={args.rounds}",
                                            f"sim.seed={args.seed}"], args.data_root)
    state, rounds, t0 = sim.initial_state(), [], time.perf_counter()
    for r in range(1, args.rounds + 1):
        state = sim.run_round(state)
        cells = []
        for rt in sim.clients:
            local = state.clients[rt.name].adapter
            if local is None:
                continue
            cells.append(measure_pair(rt, local, state.server.adapter, sizes, args.batches,
                                      margins, derive_seed(args.seed, r, rt.index, 77)))
        summary = summarise(cells, sizes, margins)
        rounds.append({"after_round": r, "summary": summary, "clients": len(cells),
                       "train_sizes": [len(rt.train) for rt in sim.clients]})
        print(f"\n(L, G) after round {r} (the client step of round {r + 1}):")
        print(table(summary, sizes, margins))
        for m in sizes:
            q, wq = summary[str(m)]["gain_quantiles"], summary[str(m)]["weight_gain_quantiles"]
            print(f"m={m}: activation-plan gain p10/p50/p90/max = "
                  + "/".join(f"{q[k]:.3f}" for k in q)
                  + "; weight-plan gain p50/p90/max = " + "/".join(f"{wq[k]:.3f}" for k in wq))
    meta.update(loadavg_end=__import__("os").getloadavg(), seconds=time.perf_counter() - t0)
    result = {"benchmark": "FedPIA client plan stability vs probe size and margin",
              "preset": args.preset, "config": cfg.to_dict(), "probe_sizes": sizes,
              "margins": margins, "batches": args.batches, "rounds": rounds, **meta}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
