"""Cost benchmark: where a FedPIA round's time goes, memory vs number of clients, engines.

1. Shares of round time: server PIA (aggregate), client PIA (probe + permute + merge), local
   training, evaluation — from a FedPIA run of a real preset on the pretrained minilm-vl
   (default: t1-medvqa, 5 clients capped at 96 training / 64 test samples, as the accuracy grid),
   and training throughput (samples/s).
2. Simulator wall time vs the summed compute it contains (client training + client PIA +
   evaluation + server step).
   Measured twice in one invocation, with the client probe's two sources: ``forward`` (DEFAULT,
   the paper: the probe batch run through the model with L and with G) and ``recorded``
   (``strategy_options.probe=recorded``: adapter inputs recorded during local training, no
   forward). The recording's own cost sits inside local training; it is timed separately
   (training steps with and without the recorder, interleaved, minima) and counted as PIA.
3. Client PIA vs local data size: the per-sample cost of the probe forward (c_f) and of a
   training step (c_t) measured in (1) give the share 2·m·c_f / (2·m·c_f + E·n·c_t) for a probe
   of m samples and E local epochs over n samples (derived, not timed); for the recorded source
   (t_a + ρ·E·n·c_t) / (t_a + (1 + ρ)·E·n·c_t), t_a its measured per-client step time and ρ the
   recording overhead per training step.
4. Peak RSS vs K clients (each K in a fresh subprocess, pretrained minilm-vl): must grow by
   adapters + heads + data, not by backbones (the simulator holds one backbone).
5. In-process vs Flower (Ray) simulation wall time for the same tiny run.

Writes ``benchmarks/results/cost.json`` and the ``<!-- cost:start -->`` section of
``docs/benchmarks.md``.

    python benchmarks/bench_cost.py --data-root ../shared/data [--skip-flower]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

from _docs import int_list, write_section

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
def rss_kb():  # current resident set (ru_maxrss is a peak: model loading would hide the growth)
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
k = int(sys.argv[1])
mods = ["x-ray", "ultrasound", "fundus", "ct"]
data = get_setting("synthetic", seed=0, modalities=tuple(mods[i % 4] for i in range(k)),
                   n_train=32, n_val=4, n_test=16)
model = build_model(ModelConfig(peft="houlsby", adapter_width=64))
base = rss_kb()
sim = Simulator(model, data, build_strategy("fedpia"), sim=SimConfig(rounds=2),
                train=TrainConfig(lr=3e-3, batch_size=16, local_steps=2))
state = sim.run()
after = rss_kb()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
backbone = sum(p.numel() * p.element_size() for p in model.parameters() if not p.requires_grad)
adapter = sum(v.numel() * v.element_size() for v in state.server.adapter.values())
print(json.dumps({"k": k, "rss_after_model_kb": base, "rss_after_run_kb": after, "peak_rss_kb": peak,
                  "backbone_bytes": backbone, "adapter_bytes": adapter}))
"""


SHARE_SETS = ["setting_options.max_train=96", "setting_options.max_test=64", "setting_options.max_val=16"]


def round_shares(preset: str, rounds: int, data_root: str, sets: list[str], probe: str = "forward") -> dict:
    from fedpia.experiments import get_preset, run_experiment
    from fedpia.rounds.build import build_run

    cfg = get_preset(preset).with_overrides([f"data_root={data_root!r}", f"sim.rounds={rounds}", *sets,
                                             f"strategy_options.probe={probe}"])
    res = run_experiment(cfg, out_dir=ROOT / "runs" / "bench_cost" / f"shares-{probe}", overwrite=True)
    hist = res["history"][1:]  # round 1 has no client PIA (no local adapter yet)
    tot = sum(h["round_time"] for h in hist)
    server = sum(h["server_time"] for h in hist)
    evals = sum(h["eval_time"] for h in hist)
    pia = sum(c["client_pia_time"] for h in hist for c in h["clients"].values())
    train = sum(c["train_time"] for h in hist for c in h["clients"].values())
    data = build_run(cfg).data
    n_train = {c.name: len(c.train) for c in data.clients}
    samples = sum(n_train[name] * cfg.train.local_epochs for h in hist for name in h["clients"])
    probe = cfg.strategy_options.get("probe_samples", 256) or cfg.model.adapter_width
    probe_fwd = sum(2 * min(probe, n_train[name]) for h in hist for name in h["clients"])
    client_rounds = sum(len(h["clients"]) for h in hist)
    return {
        "probe": probe, "client_pia_s_per_client": pia / client_rounds,
        "preset": preset, "overrides": sets, "rounds_measured": len(hist), "round_time_s": tot,
        "server_pia_share": server / tot, "client_pia_share": pia / tot, "train_share": train / tot,
        "eval_share": evals / tot, "other_share": 1 - (server + pia + train + evals) / tot,
        "summed_compute_s": pia + train + evals + server, "sim_wall_s": tot,
        "sim_overhead_ratio": tot / (pia + train + evals + server),
        "train_samples_per_s": samples / train,
        "train_s_per_sample": train / samples, "probe_s_per_sample": pia / probe_fwd,
        "probe_samples": probe, "local_epochs": cfg.train.local_epochs, "clients_n_train": n_train,
    }


def pia_share(c_f: float, c_t: float, m: int, n: int, epochs: int = 1) -> float:
    """Client PIA share of (client PIA + local training): 2·m'·c_f / (2·m'·c_f + E·n·c_t),
    m' = min(m, n) probe samples, each run through the model twice (local and global adapter)."""
    probe = 2 * min(m, n) * c_f
    return probe / (probe + epochs * n * c_t)


def recorder_overhead(preset: str, data_root: str, sets: list[str], *, steps: int = 4,
                      repeats: int = 5) -> dict:
    """Cost of recording the probe inputs during training: ``steps`` training steps (batch 16,
    forward + backward + AdamW) of the first client with and without the recorder, interleaved,
    minimum over ``repeats``; ρ = with / without − 1."""
    import torch

    from fedpia.experiments import get_preset
    from fedpia.models import InputRecorder
    from fedpia.rounds.build import build_run

    cfg = get_preset(preset).with_overrides([f"data_root={data_root!r}", *sets])
    run = build_run(cfg)
    rt, model = run.runtime(0), run.model
    model.load_trainable_state(run.initial_adapter)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    batches = [rt.train.batch(torch.arange(i * 16, (i + 1) * 16) % len(rt.train)) for i in range(steps)]

    def train(record: bool) -> float:
        model.train()
        t0 = time.perf_counter()
        with InputRecorder(model, keep=256) if record else nullcontext():
            for b in batches:
                loss = model(b).float().pow(2).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return time.perf_counter() - t0

    train(False)  # warm-up
    plain, rec = [], []
    for _ in range(repeats):
        plain.append(train(False))
        rec.append(train(True))
    return {"steps": steps, "batch": 16, "repeats": repeats, "plain_s": min(plain),
            "recorded_s": min(rec), "overhead": min(rec) / min(plain) - 1}


def recorded_share(t_a: float, rho: float, c_t: float, n: int, epochs: int = 1) -> float:
    """Client PIA share of a client's round with the recorded probe: its step t_a plus the
    recording (ρ of every training step) over (client PIA + local training incl. recording)."""
    train = epochs * n * c_t
    return (t_a + rho * train) / (t_a + (1 + rho) * train)


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
    cmds = res.get("commands") or {"shares": command, "memory": command, "engines": command}
    lines = ["<!-- cost:start -->", "Commands: " + "; ".join(f"{part}: `{c}`" for part, c in sorted(cmds.items()))
             + f". Load average at the start of the last command {res['load']:.1f}, at its end "
             f"{res.get('load_end', float('nan')):.1f} (2 cores; timings indicative, the shares are "
             "ratios within one run).", "",
             f"Shares of round time, FedPIA on `{s['preset']}` ({', '.join(s['overrides'])}), pretrained "
             f"minilm-vl + Houlsby-64, rounds 2..{s['rounds_measured'] + 1} (round 1 has no client PIA):", "",
             "| measure | value |", "|---|---:|",
             f"| server PIA share of round time | {100 * s['server_pia_share']:.2f}% |",
             f"| client PIA share of round time (probe of {s['probe_samples']} samples, 2 forwards) | "
             f"{100 * s['client_pia_share']:.2f}% |",
             f"| local training share | {100 * s['train_share']:.2f}% |",
             f"| evaluation share (both views, every client) | {100 * s['eval_share']:.2f}% |",
             f"| other (payload, screening, bookkeeping) | {100 * s['other_share']:.2f}% |",
             f"| simulator wall / summed compute (training + PIA + evaluation + server) | "
             f"{s['sim_overhead_ratio']:.3f}× |",
             f"| training throughput (forward + backward + AdamW, batch 16, 1 thread) | "
             f"{s['train_samples_per_s']:.1f} samples/s |",
             f"| probe forward per sample / training step per sample | "
             f"{s['probe_s_per_sample'] / s['train_s_per_sample']:.2f} |", ""]
    r, rec = res.get("shares_recorded"), res.get("recorder")
    if r and rec:
        lines += ["The same run with `strategy_options.probe=recorded` (adapter inputs recorded during "
                  "local training; no probe forward), same command and invocation:", "",
                  "| measure | forward probe (default, paper) | recorded inputs |", "|---|---:|---:|",
                  f"| client PIA share of round time | {100 * s['client_pia_share']:.2f}% | "
                  f"{100 * r['client_pia_share']:.2f}% |",
                  f"| recording inside local training (ρ = {100 * rec['overhead']:.2f}% per step, "
                  f"{rec['steps']} steps × {rec['repeats']} interleaved repeats, minima) | – | "
                  f"{100 * r['recording_share']:.2f}% |",
                  f"| client PIA incl. recording | {100 * s['client_pia_share']:.2f}% | "
                  f"{100 * r['client_pia_share_with_recording']:.2f}% |",
                  f"| client PIA per client and round | {s['client_pia_s_per_client']:.3f} s | "
                  f"{r['client_pia_s_per_client']:.3f} s |",
                  f"| round time, rounds 2..{s['rounds_measured'] + 1} | {s['round_time_s']:.1f} s | "
                  f"{r['round_time_s']:.1f} s |",
                  f"| simulator wall / summed compute | {s['sim_overhead_ratio']:.3f}× | "
                  f"{r['sim_overhead_ratio']:.3f}× |", ""]
    head = "| n | forward probe 256 (default) | forward probe 64 |"
    rule = "|---:|---:|---:|"
    if r and rec:
        head, rule = head + " recorded inputs |", rule + "---:|"
    lines += ["Client PIA share of a client's round (PIA + local training) vs its training-set size n, "
              "derived from the per-sample costs above (1 local epoch):", "", head, rule]
    for n, a, b, *c in res["pia_vs_n"]:
        lines.append(f"| {n} | {100 * a:.1f}% | {100 * b:.1f}% |" + (f" {100 * c[0]:.1f}% |" if c and r else ""))
    lines += ["", "Peak RSS vs number of clients (each K a fresh process, 2 rounds, synthetic data, "
              "pretrained minilm-vl + Houlsby-64):", "",
              "| K | RSS after model build (MiB) | RSS after the run (MiB) | growth (MiB) | peak RSS (MiB) | "
              "frozen backbone (MiB) | adapter per client (MiB) |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
    for m in res["memory"]:
        lines.append(f"| {m['k']} | {m['rss_after_model_kb'] / 1024:.0f} | {m['rss_after_run_kb'] / 1024:.0f} | "
                     f"{(m['rss_after_run_kb'] - m['rss_after_model_kb']) / 1024:.0f} | "
                     f"{m['peak_rss_kb'] / 1024:.0f} | {m['backbone_bytes'] / 2**20:.1f} | "
                     f"{m['adapter_bytes'] / 2**20:.2f} |")
    if res.get("engines"):
        e = res["engines"]
        lines += ["", f"In-process vs Flower simulation (Ray, 3 clients, 2 rounds, same config): "
                      f"{e['inprocess_s']:.1f} s vs {e['flower_ray_s']:.1f} s ({e['ratio']:.1f}×)."]
    lines.append("<!-- cost:end -->")
    write_section(DOC, "cost", "Cost of a round, memory, engines", "\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--preset", default="t1-medvqa")
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--set", action="append", default=None, help="overrides of the shares run "
                    f"(default: {' '.join(SHARE_SETS)})")
    ap.add_argument("--ks", type=int_list, default=[2, 4, 8, 16, 32])
    ap.add_argument("--skip-flower", action="store_true")
    ap.add_argument("--parts", default="shares,memory,engines",
                    help="what to measure; the other parts keep their figures from the results file")
    args = ap.parse_args(argv)
    parts = set(args.parts.split(","))
    command = "python benchmarks/bench_cost.py " + " ".join(argv or sys.argv[1:])
    res = json.loads(RESULTS.read_text()) if RESULTS.exists() and parts != {"shares", "memory", "engines"} else {}
    res.setdefault("commands", {})
    res.update(command=command, load=os.getloadavg()[0])
    if "shares" in parts:
        sets = SHARE_SETS if args.set is None else args.set
        res["shares"] = s = round_shares(args.preset, args.rounds, args.data_root, sets)
        print(json.dumps(s, indent=1), flush=True)
        res["shares_recorded"] = r = round_shares(args.preset, args.rounds, args.data_root, sets,
                                                  probe="recorded")
        res["recorder"] = rec = recorder_overhead(args.preset, args.data_root, sets)
        rho = max(rec["overhead"], 0.0)
        r["recording_share"] = r["train_share"] * rho / (1 + rho)
        r["client_pia_share_with_recording"] = r["client_pia_share"] + r["recording_share"]
        print(json.dumps({"recorded": r, "recorder": rec}, indent=1), flush=True)
        c_f, c_t = s["probe_s_per_sample"], s["train_s_per_sample"]
        t_a = r["client_pia_s_per_client"]
        res["pia_vs_n"] = [(n, pia_share(c_f, c_t, 256, n), pia_share(c_f, c_t, 64, n),
                            recorded_share(t_a, rho, c_t, n))
                           for n in (96, 250, 500, 1000, 2500, 5000)]
    if "memory" in parts:
        res["memory"] = memory(args.ks)
    if "engines" in parts and not args.skip_flower:
        res["engines"] = engines()
        print(res["engines"], flush=True)
    for part in parts:
        res["commands"][part] = command
    res["load_end"] = os.getloadavg()[0]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=1))
    write_doc(res, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
