"""Where alignment is the point: clients that fine-tuned their own adapters, then federate.

Every client starts from an adapter initialised with its own seed and trains it ``--epochs``
local epochs alone (``fedpia.rounds.independent``, as with ``sim.independent_epochs``). Then, per method (FedAvg, FedPIA server
alignment only, full FedPIA, ...), the server fuses the K adapters once ("round 0", one-shot
fusion) and ``--rounds`` ordinary rounds follow. Baselines from the same independent adapters:
each client's own model (local), the best single client's model for everyone, and the ensemble
of all clients' predictions (probabilities averaged after mapping every client's answer pool
onto the union of answers). Metric: the client-mean accuracy on each client's test split,
answers compared as strings (VQA / multiclass presets only).

``--init shared`` runs the control where every client starts from the same initial adapter.
Writes ``benchmarks/results/pia_independent.json`` and prints a table::

    python benchmarks/bench_independent.py --data-root ../shared/data --preset t1-vqarad \
        --epochs 4 --rounds 5 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
from _docs import int_list
from _pia import ROOT, build, describe

from fedpia.client import predict, primary_metric
from fedpia.experiments.variants import apply_variant
from fedpia.rounds.independent import (
    independent_clients,
    label_strings,
    mapped_probs,
    string_accuracy,
    train_alone,
    uploads,
)
from fedpia.sim.simulator import SimState
from fedpia.strategies import ClientState, RoundContext, build_strategy

log = logging.getLogger("bench_independent")


def start_states(sim, cfg, *, epochs: int, seed: int, init: str) -> dict[str, ClientState]:
    if init == "independent":
        return independent_clients(cfg.model_config(), sim.clients, epochs=epochs,
                                   train=cfg.train, seed=seed)
    out = {}
    for rt in sim.clients:
        a, h = train_alone(rt, sim.initial_adapter, rt.initial_head(), epochs=epochs,
                           train=cfg.train, seed=seed * 1000 + rt.index)
        out[rt.name] = ClientState(adapter=a, head=h)
    return out


def baselines(sim, data, states) -> dict[str, float]:
    """Local, best single client and ensemble accuracy (client means, string-compared)."""
    union = sorted({lab for rt in sim.clients for lab in rt.space.labels})
    truth = {rt.name: label_strings(rt, split.test) for rt, split in zip(sim.clients, data.clients,
                                                                          strict=True)}
    probs = {}  # probs[j][k]: model j's probabilities on client k's test, union labels
    for j in sim.clients:
        j.head.load_state_dict(states[j.name].head)
        j.model.load_trainable_state(states[j.name].adapter)
        probs[j.name] = {k.name: mapped_probs(torch.softmax(predict(j.model, j.head, k.test), 1),
                                              j.space.labels, union) for k in sim.clients}
    names = [rt.name for rt in sim.clients]
    acc = {j: {k: string_accuracy(probs[j][k], union, truth[k]) for k in names} for j in names}
    ens = {k: string_accuracy(sum(probs[j][k] for j in names) / len(names), union, truth[k])
           for k in names}
    single = {j: float(np.mean([acc[j][k] for k in names])) for j in names}
    best = max(single, key=single.get)
    return {"local": float(np.mean([acc[k][k] for k in names])), "best_single": single[best],
            "best_single_client": best, "ensemble": float(np.mean(list(ens.values()))),
            "single_per_client": single}


def _means(ev: dict, tasks: dict[str, str]) -> dict[str, float]:
    out = {}
    for view in ("personalized", "global"):
        vals = [r[view][primary_metric(tasks[c])] for c, r in ev.items() if view in r]
        if vals:
            out[view] = float(np.mean(vals))
    return out


def run_method(sim, cfg, states, method: str, rounds: int) -> dict:
    """Round-0 fusion of the clients' adapters with ``method``, then ``rounds`` rounds."""
    vcfg = apply_variant(cfg, method)
    strategy = build_strategy(vcfg.strategy, **vcfg.strategy_options)
    sim.strategy = strategy
    sim.rules = dataclasses.replace(sim.rules, strategy=strategy)  # the round layer's copy
    server = strategy.server_init(sim.initial_adapter)
    ctx = RoundContext(round=0, num_rounds=rounds, seed=cfg.sim.seed,
                       num_clients=len(sim.clients))
    server, diag = strategy.aggregate(server, uploads(states, sim.clients), ctx)
    tasks = {rt.name: rt.task for rt in sim.clients}
    curve = [{"round": 0, **_means(sim.evaluate(server, states), tasks)}]
    state = SimState(server=server, clients=dict(states), round=0)
    for _ in range(rounds):
        state = sim.run_round(state)
        curve.append({"round": state.round, **_means(state.history[-1]["eval"], tasks)})
    moved = _round0_moved(diag)
    log.info("%s: %s", method, curve)
    return {"curve": curve, "round0_moved": moved, "client_steps": _client_steps(state.history)}


def _client_steps(history: list[dict]) -> list[dict]:
    """Per round: the client alignments' gain quantiles and units moved (FedPIA only)."""
    out = []
    for rec in history:
        pia = [c["pia"] for c in rec["clients"].values() if "pia" in c]
        gains = [g for p in pia for g in p["gain"] if g is not None]
        if gains:
            out.append({"round": rec["round"],
                        "gain_p10_p50_p90_max": [float(np.percentile(gains, q))
                                                 for q in (10, 50, 90, 100)],
                        "moved_units": float(np.mean([m for p in pia for m in p["moved"]]))})
    return out


def _round0_moved(diag: dict) -> dict | None:
    groups = diag.get("groups")
    if not groups:
        return None
    moved = [m / g["width"] for g in groups.values() for m in g["moved"]]
    gain = [x for g in groups.values() for x in g["gain"] if x is not None]
    return {"units_moved": float(np.mean(moved)), "cost_gain": float(np.mean(gain))}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="t1-vqarad")
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--set", action="append", default=[], help="preset override key=value")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seeds", type=int_list, default=[0, 1, 2])
    ap.add_argument("--methods", default="fedavg,fedpia-server-only,fedpia-server-ref,fedpia")
    ap.add_argument("--init", choices=("independent", "shared"), default="independent")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/pia_independent.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    meta = describe(argv, "benchmarks/bench_independent.py")
    t0, runs = time.perf_counter(), []
    for seed in args.seeds:
        cfg, _, data, _, sim = build(args.preset, [*args.set, f"sim.seed={seed}",
                                                   f"sim.rounds={max(args.rounds, 1)}"],
                                     args.data_root)
        states = start_states(sim, cfg, epochs=args.epochs, seed=seed, init=args.init)
        run = {"seed": seed, "baselines": baselines(sim, data, states), "methods": {}}
        for method in args.methods.split(","):
            run["methods"][method] = run_method(sim, cfg, states, method, args.rounds)
        runs.append(run)
        log.info("seed %d: %s", seed, run["baselines"])
    meta.update(loadavg_end=os.getloadavg(), seconds=time.perf_counter() - t0)
    result = {"benchmark": "independently initialised clients, then federation",
              "preset": args.preset, "init": args.init, "epochs": args.epochs,
              "rounds": args.rounds, "config": cfg.to_dict(), "runs": runs, **meta}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))


def table(result: dict) -> str:
    """Client-mean accuracy (%): mean ± std over seeds."""
    runs = result["runs"]

    def ms(vals: list[float]) -> str:
        v = 100 * np.array(vals)
        return f"{v.mean():.2f} ± {v.std():.2f}" if len(v) > 1 else f"{v.mean():.2f}"

    lines = ["| model | round 0 (one-shot), global | final round, global | final, personalized |",
             "|---|---:|---:|---:|"]
    for key in ("local", "best_single", "ensemble"):
        lines.append(f"| {key} | {ms([r['baselines'][key] for r in runs])} | | |")
    for m in runs[0]["methods"]:
        curves = [r["methods"][m]["curve"] for r in runs]
        lines.append(f"| {m} | {ms([c[0]['global'] for c in curves])} | "
                     f"{ms([c[-1]['global'] for c in curves])} | "
                     f"{ms([c[-1].get('personalized', np.nan) for c in curves])} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
