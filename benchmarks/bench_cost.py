"""Cost benchmark: where a FedPIA round's time goes, memory vs number of clients, engines.

1. Shares of round time: server PIA (aggregate), client PIA (probe + permute + merge), local
   training, evaluation — from a FedPIA run on the synthetic preset.
2. Simulator wall time vs the summed per-client compute it contains.
3. Peak RSS vs K clients (each K in a fresh subprocess): must grow by adapters + heads + data,
   not by backbones (the simulator holds one backbone).
4. In-process vs Flower (Ray) simulation wall time for the same tiny run.

Writes ``benchmarks/results/cost.json`` and the ``<!-- cost:start -->`` section of
``docs/benchmarks.md``.

    python benchmarks/bench_cost.py [--skip-flower]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _docs import write_section

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "cost.json"
DOC = ROOT / "docs" / "benchmarks.md"

MEM_JOB = """
import json, resource, sys
from fedpia.client import TrainConfig
from fedpia.data import get_setting
from fedpia.models import ModelConfig, build_model
from fedpia.sim import SimConfig, Simulator
from fedpia.strategies import build_strategy
k = int(sys.argv[1])
mods = ["x-ray", "ultrasound", "fundus", "ct"]
data = get_setting("synthetic", seed=0, modalities=tuple(mods[i % 4] for i in range(k)),
                   n_train=32, n_val=4, n_test=16)
model = build_model(ModelConfig(pretrained="tiny", backbone="vilt", peft="houlsby", adapter_width=16))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
sim = Simulator(model, data, build_strategy("fedpia"), sim=SimConfig(rounds=2),
                train=TrainConfig(lr=3e-3, batch_size=16, local_steps=2))
state = sim.run()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
backbone = sum(p.numel() * p.element_size() for p in model.parameters() if not p.requires_grad)
adapter = sum(v.numel() * v.element_size() for v in state.server.adapter.values())
print(json.dumps({"k": k, "rss_after_model_kb": base, "peak_rss_kb": peak,
                  "backbone_bytes": backbone, "adapter_bytes": adapter}))
"""


def round_shares(rounds: int) -> dict:
    from fedpia.experiments import get_preset, run_experiment

    cfg = get_preset("demo").with_overrides([f"sim.rounds={rounds}"])
    res = run_experiment(cfg, out_dir=ROOT / "runs" / "bench_cost" / "shares", overwrite=True)
    hist = res["history"][1:]  # round 1 has no client PIA (no local adapter yet)
    tot = sum(h["round_time"] for h in hist)
    server = sum(h["server_time"] for h in hist)
    pia = sum(c["client_pia_time"] for h in hist for c in h["clients"].values())
    train = sum(c["train_time"] for h in hist for c in h["clients"].values())
    return {
        "rounds_measured": len(hist), "round_time_s": tot,
        "server_pia_share": server / tot, "client_pia_share": pia / tot, "train_share": train / tot,
        "other_share (eval, validation, checkpoint)": 1 - (server + pia + train) / tot,
        "summed_client_compute_s": pia + train, "sim_wall_s": tot,
        "sim_overhead_ratio": tot / (pia + train),
    }


def memory(ks: list[int]) -> list[dict]:
    out = []
    for k in ks:
        proc = subprocess.run([sys.executable, "-c", MEM_JOB, str(k)], capture_output=True, text=True,
                              check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"K={k}: peak RSS {out[-1]['peak_rss_kb'] / 1024:.0f} MiB", flush=True)
    return out


def engines() -> dict:
    from fedpia.experiments import ExperimentConfig
    from fedpia.flower import run_flower_simulation

    cfg = ExperimentConfig.from_dict({
        "setting": "synthetic", "setting_options": {"modalities": ["x-ray", "ct", "fundus"],
                                                    "n_train": 32, "n_val": 4, "n_test": 16},
        "strategy": "fedpia", "sim": {"rounds": 2},
        "train": {"lr": 3e-3, "batch_size": 16, "local_steps": 2},
        "model": {"backbone": "vilt", "pretrained": "tiny", "peft": "houlsby", "adapter_width": 16},
    })
    t0 = time.perf_counter()
    run_flower_simulation(cfg)
    flower = time.perf_counter() - t0
    from fedpia.data import get_setting
    from fedpia.models import ModelConfig, build_model
    from fedpia.sim import Simulator
    from fedpia.strategies import build_strategy

    t0 = time.perf_counter()
    data = get_setting("synthetic", seed=0, **cfg.setting_options)
    model = build_model(ModelConfig(**cfg.model))
    Simulator(model, data, build_strategy("fedpia"), sim=cfg.sim, train=cfg.train).run()
    inproc = time.perf_counter() - t0
    return {"inprocess_s": inproc, "flower_ray_s": flower, "ratio": flower / inproc}


def write_doc(res: dict, command: str) -> None:
    s = res["shares"]
    lines = ["<!-- cost:start -->", f"Command: `{command}`; load average at start {res['load']}.", "",
             "| measure | value |", "|---|---:|",
             f"| server PIA share of round time | {100 * s['server_pia_share']:.2f}% |",
             f"| client PIA share of round time | {100 * s['client_pia_share']:.2f}% |",
             f"| local training share | {100 * s['train_share']:.2f}% |",
             f"| other (evaluation, validation, checkpoint) | {100 * s['other_share (eval, validation, checkpoint)']:.2f}% |",
             f"| simulator wall / summed client compute | {s['sim_overhead_ratio']:.2f}× |", ""]
    lines += ["Peak RSS vs number of clients (each K a fresh process, 2 rounds, tiny ViLT + Houlsby):", "",
              "| K | peak RSS (MiB) | RSS after model build (MiB) | backbone (MiB) | adapter per client (KiB) |",
              "|---:|---:|---:|---:|---:|"]
    for m in res["memory"]:
        lines.append(f"| {m['k']} | {m['peak_rss_kb'] / 1024:.0f} | {m['rss_after_model_kb'] / 1024:.0f} | "
                     f"{m['backbone_bytes'] / 2**20:.1f} | {m['adapter_bytes'] / 1024:.1f} |")
    if res.get("engines"):
        e = res["engines"]
        lines += ["", f"In-process vs Flower simulation (Ray, 3 clients, 2 rounds, same config): "
                      f"{e['inprocess_s']:.1f} s vs {e['flower_ray_s']:.1f} s ({e['ratio']:.1f}×)."]
    lines.append("<!-- cost:end -->")
    write_section(DOC, "cost", "Cost of a round, memory, engines", "\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--ks", default="2,4,8,16,32")
    ap.add_argument("--skip-flower", action="store_true")
    args = ap.parse_args(argv)
    command = "python benchmarks/bench_cost.py " + " ".join(argv or sys.argv[1:])
    res = {"command": command, "load": os.getloadavg()[0]}
    res["shares"] = round_shares(args.rounds)
    print(json.dumps(res["shares"], indent=1), flush=True)
    res["memory"] = memory([int(k) for k in args.ks.split(",")])
    if not args.skip_flower:
        res["engines"] = engines()
        print(res["engines"], flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=1))
    write_doc(res, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
