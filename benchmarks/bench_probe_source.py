"""Does FedPIA's client plan depend on where the probe's adapter inputs come from?

FedPIA's client step permutes the received global adapter G onto the client's own adapter L with
an activation cost. Three sources of the activations are compared on the same (L, G) pairs:

* ``forward`` (DEFAULT, the paper): a probe batch of m training samples run through the model
  once with L and once with G (each adapter sees the inputs its own upstream layers produce);
* ``shared``: one forward with L on the same batch; both adapters are evaluated on L's pooled
  adapter inputs (isolates "same inputs for both" from everything else);
* ``recorded`` (``strategy_options.probe=recorded``): the pooled adapter inputs of the last m
  samples of the client's previous local training, recorded while it trained (train mode,
  dropout on, weights moving), evaluated with both adapters: no forward pass at all.

The federation runs FedPIA with ``probe=recorded`` (so every client state holds a recording).
After every round r, for every client, the plan of each source is compared with the forward plan:
``agree`` = share of units mapped identically; ``gain kept`` = the forward cost's reduction over
the identity achieved by the source's plan, relative to the forward plan's own, pooled over a
client's unit groups (1 = as good as the forward plan under the paper's cost, 0 = no better than
leaving the units in place; mean over clients, worst client in brackets); ``moved`` = share of
units the plan moves. As a noise reference, two forward probes of ``--small`` samples on different
random batches are compared with each other (agreement) and with the forward plan (gain kept). Also timed per client (min of ``--repeats`` interleaved
repeats): the forward probe's two forwards vs the recorded source's activations.

Prints a table per round, writes ``benchmarks/results/probe_source.json``::

    python benchmarks/bench_probe_source.py --data-root ../shared/data --preset t1-medvqa --rounds 4
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
from _pia import ROOT, build, describe

from fedpia.align import activation_costs, align
from fedpia.client.runtime import PROBE_INPUTS, _probe_batch, make_probe
from fedpia.models import activations_from_inputs, adapter_inputs
from fedpia.rounds.seeds import derive_seed

log = logging.getLogger("bench_probe_source")
CAPS = ["setting_options.max_train=96", "setting_options.max_test=64", "setting_options.max_val=16"]
SOURCES = ("shared", "recorded", "small")


def _plans(glob, local, g_acts, l_acts):
    return align(glob, local, cost="activation", source_acts=g_acts, reference_acts=l_acts).proposed


def _perm_cost(c: torch.Tensor, perm: torch.Tensor) -> float:
    """Mean cost of the permutation (aligned unit j = source unit perm[j]) under cost ``c``."""
    return float(c[perm, torch.arange(perm.numel())].mean())


def compare(ref: dict, other: dict, g_acts: dict, l_acts: dict) -> dict:
    """Agreement of ``other``'s plan with ``ref``'s per group, and the cost reduction (under the
    cost of ``g_acts``/``l_acts``) both plans achieve over the identity, summed over groups:
    ``gain_kept`` = Σ (identity − other) / Σ (identity − ref) (pooled, so groups where the
    identity is already optimal do not divide by ~0)."""
    agree, got, best_gain = [], 0.0, 0.0
    for name, gp in ref.items():
        c = activation_costs(g_acts[name], l_acts[name])
        ident = float(c.diagonal().mean())
        best_gain += ident - _perm_cost(c, gp.perm)
        got += ident - _perm_cost(c, other[name].perm)
        agree.append(float((gp.perm == other[name].perm).double().mean()))
    return {"agree": agree, "gain_kept": got / best_gain if best_gain > 1e-12 else None,
            "moved": [float((p.perm != torch.arange(p.perm.numel())).double().mean())
                      for p in other.values()]}


def measure_client(rt, cstate, glob, m: int, small: int, seed: int, repeats: int) -> dict:
    local, rec = cstate.adapter, cstate.extra[PROBE_INPUTS]
    fwd_probe = make_probe(rt, samples=m, seed=seed)
    g_f, l_f = fwd_probe(glob), fwd_probe(local)
    ref = _plans(glob, local, g_f, l_f)
    rt.model.load_trainable_state(local)
    shared_in = adapter_inputs(rt.model, _probe_batch(rt, m, seed))
    out = {"forward_moved": [float((p.perm != torch.arange(p.perm.numel())).double().mean())
                             for p in ref.values()]}
    for name, inputs in (("shared", shared_in), ("recorded", rec)):
        plans = _plans(glob, local, activations_from_inputs(rt.model, inputs, glob),
                       activations_from_inputs(rt.model, inputs, local))
        out[name] = compare(ref, plans, g_f, l_f)
    a, b = (make_probe(rt, samples=small, seed=derive_seed(seed, k)) for k in (1, 2))
    pa, pb = _plans(glob, local, a(glob), a(local)), _plans(glob, local, b(glob), b(local))
    out["small"] = compare(pa, pb, g_f, l_f)  # agreement of two small probes with each other ...
    out["small"]["gain_kept"] = compare(ref, pb, g_f, l_f)["gain_kept"]  # ... B's gain vs forward
    t_fwd, t_rec = [], []
    for _ in range(repeats):  # interleaved; minima
        t0 = time.perf_counter()
        fwd_probe(glob), fwd_probe(local)
        t1 = time.perf_counter()
        activations_from_inputs(rt.model, rec, glob), activations_from_inputs(rt.model, rec, local)
        t2 = time.perf_counter()
        t_fwd.append(t1 - t0)
        t_rec.append(t2 - t1)
    out.update(forward_s=min(t_fwd), recorded_s=min(t_rec), probe_rows=int(next(iter(g_f.values())).shape[0]),
               recorded_rows=int(next(iter(rec.values())).shape[0]))
    return out


def summarise(cells: list[dict]) -> dict:
    s = {"forward_moved": float(np.mean([x for c in cells for x in c["forward_moved"]])),
         "forward_s": float(np.mean([c["forward_s"] for c in cells])),
         "recorded_s": float(np.mean([c["recorded_s"] for c in cells]))}
    for name in SOURCES:
        agree = [x for c in cells for x in c[name]["agree"]]
        kept = [c[name]["gain_kept"] for c in cells if c[name]["gain_kept"] is not None]
        s[name] = {"agree": float(np.mean(agree)), "agree_p10": float(np.percentile(agree, 10)),
                   "gain_kept": float(np.mean(kept)) if kept else float("nan"),
                   "gain_kept_min": float(np.min(kept)) if kept else float("nan"),
                   "moved": float(np.mean([x for c in cells for x in c[name]["moved"]]))}
    return s


def table(s: dict, m: int, small: int) -> str:
    rows = [("shared", f"one forward with L (m={m}), both adapters on its inputs", "forward"),
            ("recorded", "recorded in the previous local training (no forward)", "forward"),
            ("small", f"forward probe m={small}, batch B",
             f"agree: forward m={small}, batch A; gain: forward")]
    lines = ["| source | compared with | units agree (p10 over client×group) | gain kept (worst client) | moved |",
             "|---|---|---:|---:|---:|"]
    for key, desc, ref in rows:
        t = s[key]
        lines.append(f"| {desc} | {ref} | {t['agree']:.3f} ({t['agree_p10']:.3f}) | "
                     f"{t['gain_kept']:.3f} ({t['gain_kept_min']:.3f}) | {t['moved']:.3f} |")
    lines.append(f"| forward (m={m}), paper | – | – | – | {s['forward_moved']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="t1-medvqa")
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--set", action="append", default=None,
                    help=f"preset override key=value (default: {' '.join(CAPS)})")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--small", type=int, default=32, help="probe size of the noise reference")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/probe_source.json")
    args = ap.parse_args(argv)
    if args.rounds < 2:
        ap.error("--rounds must be >= 2 (round 1 has no client alignment)")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    meta = describe(argv, "benchmarks/bench_probe_source.py")
    sets = CAPS if args.set is None else args.set
    cfg, _, _, strategy, sim = build(args.preset, [*sets, "strategy_options.probe=recorded",
                                                   f"sim.rounds={args.rounds}", f"sim.seed={args.seed}"],
                                     args.data_root)
    m = strategy.probe_size(sim.initial_state().server.adapter)
    state, rounds, t0 = sim.initial_state(), [], time.perf_counter()
    for r in range(1, args.rounds):  # (L, G) after round r is the client step of round r + 1
        state = sim.run_round(state)
        cells = [measure_client(rt, state.clients[rt.name], state.server.adapter, m, args.small,
                                derive_seed(args.seed, r, rt.index, 91), args.repeats)
                 for rt in sim.clients if state.clients[rt.name].adapter is not None]
        s = summarise(cells)
        rounds.append({"after_round": r, "summary": s, "clients": cells})
        print(f"\n(L, G) after round {r} (the client step of round {r + 1}), {len(cells)} clients; "
              f"probe forward pair {s['forward_s'] * 1e3:.0f} ms vs recorded {s['recorded_s'] * 1e3:.1f} ms "
              f"per client ({s['forward_s'] / s['recorded_s']:.0f}x):", flush=True)
        print(table(s, m, args.small), flush=True)
    meta.update(loadavg_end=os.getloadavg(), seconds=time.perf_counter() - t0)
    result = {"benchmark": "FedPIA client plan vs probe input source", "preset": args.preset,
              "config": cfg.to_dict(), "probe_samples": m, "small": args.small,
              "rounds": rounds, **meta}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
