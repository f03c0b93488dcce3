"""Server-step time of ``fedpia_server`` vs ``fedavg`` for ViLT-B-sized Houlsby adapters.

Synthetic clients: 24 bottleneck adapters (d=768, m=64; ~2.4M float32 parameters per client),
each client a noisy copy (noise σ = 0.1·std, a client-specific mix of a few stored noise draws so
that K=1000 generates quickly) of one base state, one client in three with every unit group
randomly permuted. Timings are the median (and min) of repeated calls on the same inputs.
Writes ``benchmarks/results/align.json`` and the section "## Alignment core (server step)" of
``docs/benchmarks.md``.

    python benchmarks/bench_align.py            # K = 5, 10, 100, 1000
    python benchmarks/bench_align.py --quick    # K = 5, 10 (smoke run)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import ot
import scipy
import torch

from fedpia.align import assignments, fedavg, fedpia_server

log = logging.getLogger("bench_align")
ROOT = Path(__file__).resolve().parents[1]
LAYERS, D, M = 24, 768, 64
HEADING = "## Alignment core (server step)"


def base_state(gen: torch.Generator) -> dict[str, torch.Tensor]:
    s = {}
    for i in range(LAYERS):
        p = f"vilt.encoder.layer.{i // 2}.{'attention' if i % 2 == 0 else 'output'}.adapter"
        s[f"{p}.down.weight"] = torch.randn(M, D, generator=gen) * 0.02
        s[f"{p}.down.bias"] = torch.randn(M, generator=gen) * 0.02
        s[f"{p}.up.weight"] = torch.randn(D, M, generator=gen) * 0.02
        s[f"{p}.up.bias"] = torch.randn(D, generator=gen) * 0.02
    return s


def noise_pool(base, gen: torch.Generator, size: int = 4) -> list[dict[str, torch.Tensor]]:
    """A few N(0, 0.002²) noise states; clients combine two of them (generation stays fast)."""
    return [{k: torch.randn(v.shape, generator=gen).mul_(0.002) for k, v in base.items()}
            for _ in range(size)]


def client_state(base, pool, i: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Client ``i``: ``perm(base) + c·n_a + s·n_b`` with a client-specific angle (distinct noise
    per client, same variance); every third client has all its unit groups permuted."""
    permute = i % 3 == 2
    na, nb = pool[i % len(pool)], pool[(i * 7 + 1) % len(pool)]
    theta = 0.3 + 1.1 * torch.rand((), generator=gen).item()
    c, s_ = float(torch.cos(torch.tensor(theta))), float(torch.sin(torch.tensor(theta)))
    out, perm = {}, torch.arange(M)
    for key, v in base.items():
        if key.endswith("down.weight"):
            perm = torch.randperm(M, generator=gen) if permute else torch.arange(M)
        x = torch.add(na[key].mul(c), nb[key], alpha=s_)
        if key.endswith(("down.weight", "down.bias")):
            out[key] = x.add_(v.index_select(0, perm))
        elif key.endswith("up.weight"):
            out[key] = x.add_(v.index_select(1, perm))
        else:
            out[key] = x.add_(v)
    return out


def mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def matmul_gmacs() -> float:
    """Measured float32 matmul throughput of this machine (GMAC/s) on Gram-shaped products."""
    x, y = torch.randn(64 * 100, D + 1), torch.randn(M, D + 1)
    best = min(timed(lambda: x @ y.T, 5))
    return 64 * 100 * M * (D + 1) / best / 1e9


def lsa_seconds() -> float:
    """Worst case per assignment: random 64x64 costs (the row-argmin fast path never applies)."""
    c = torch.rand(200, M, M, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    return min(timed(lambda: assignments(c), 3)) / 200


def run(ks: list[int], seed: int) -> tuple[list[dict], dict]:
    gen = torch.Generator().manual_seed(seed)
    base = base_state(gen)
    pool = noise_pool(base, gen)
    per_client = sum(v.numel() * v.element_size() for v in base.values())
    gmacs, t_lsa = matmul_gmacs(), lsa_seconds()
    rows = []
    for k in ks:
        need = k * per_client
        if need > 0.8 * mem_available():
            log.warning("K=%d needs %.1f GB, more than 80%% of available memory: skipped", k,
                        need / 1e9)
            rows.append({"K": k, "skipped": f"needs {need / 1e9:.1f} GB"})
            continue
        t0 = time.perf_counter()
        states = [client_state(base, pool, i, gen) for i in range(k)]
        weights = [float(100 + 10 * (i % 7)) for i in range(k)]
        log.info("K=%d: generated %.1f GB in %.1f s", k, need / 1e9, time.perf_counter() - t0)
        reps = 3 if k >= 1000 else 5 if k >= 100 else 9
        load = os.getloadavg()[0]
        t_avg, t_pia = [], []
        for _ in range(reps):  # interleaved, so both see the same background load
            t_avg += timed(lambda s=states, w=weights: fedavg(s, w), 1)
            t_pia += timed(lambda s=states, w=weights: fedpia_server(s, w), 1)
        res = fedpia_server(states, weights)
        moved = sum(1 for c in res.changed if any(c.values()))
        macs = k * LAYERS * M * M * (D + 1)
        flop_s = macs / (gmacs * 1e9) + k * LAYERS * M**3 / (gmacs * 1e9)
        rows.append({
            "K": k, "repeats": reps, "gb": need / 1e9,
            "fedavg_median_s": statistics.median(t_avg), "fedavg_min_s": min(t_avg),
            "fedpia_median_s": statistics.median(t_pia), "fedpia_min_s": min(t_pia),
            "ratio_median": statistics.median(t_pia) / statistics.median(t_avg),
            "ratio_min": min(t_pia) / min(t_avg),
            "gram_macs": macs, "flop_bound_s": flop_s,
            "lsa_worst_case_s": k * LAYERS * t_lsa,
            "clients_realigned": moved, "loadavg_1min_before": load,
        })
        log.info("K=%d: %s", k, rows[-1])
        del states, res
    meta = {"gmacs_measured": gmacs, "lsa_64x64_random_s": t_lsa,
            "bytes_per_client": per_client}
    return rows, meta


def table(rows: list[dict]) -> str:
    head = ("| K | fedavg min (median) s | fedpia min (median) s | ratio of mins (medians) | "
            "Gram flop bound s | worst-case LSA s | load avg |\n|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['K']} | skipped: {r['skipped']} | | | | | |")
            continue
        lines.append(
            f"| {r['K']} | {r['fedavg_min_s']:.3f} ({r['fedavg_median_s']:.3f}) | "
            f"{r['fedpia_min_s']:.3f} ({r['fedpia_median_s']:.3f}) | "
            f"{r['ratio_min']:.1f}x ({r['ratio_median']:.1f}x) | {r['flop_bound_s']:.3f} | "
            f"{r['lsa_worst_case_s']:.2f} | {r['loadavg_1min_before']:.1f} |")
    return "\n".join(lines)


def write_docs(path: Path, section: str) -> None:
    """Replace (or append) our section, keeping every other section of the file."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if HEADING in text:
        start = text.index(HEADING)
        nxt = text.find("\n## ", start + len(HEADING))
        text = text[:start] + section + ("\n" + text[nxt + 1:] if nxt >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="K = 5, 10 only")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--render", action="store_true",
                    help="only re-render the docs section from an existing --out JSON")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/align.json")
    ap.add_argument("--docs", type=Path, default=ROOT / "docs/benchmarks.md")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.render:
        write_docs(args.docs, section(json.loads(args.out.read_text())))
        return
    ks = [5, 10] if args.quick else [5, 10, 100, 1000]
    rows, meta = run(ks, args.seed)
    command = " ".join(["python benchmarks/bench_align.py",
                        *(argv if argv is not None else sys.argv[1:])])
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                         text=True).stdout.strip()
    result = {
        "benchmark": "fedpia_server vs fedavg, ViLT-B Houlsby (24 groups, d=768, m=64)",
        "command": command, "git": git, "seed": args.seed, "rows": rows, **meta,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "numpy": np.__version__, "scipy": scipy.__version__, "pot": ot.__version__},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "loadavg_at_end": os.getloadavg(),
                    "torch_threads": torch.get_num_threads(),
                    "mem_total_gb": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(rows))
    write_docs(args.docs, section(result))


def _verdict(rows: list[dict]) -> str:
    by_k = {r["K"]: r for r in rows if "skipped" not in r}
    out = []
    if 10 in by_k:
        r = by_k[10]["ratio_min"]
        out.append(f"≤3x FedAvg at K=10 is {'met' if r <= 3 else 'not met'} ({r:.1f}x)")
    if 1000 in by_k:
        t = by_k[1000]["fedpia_min_s"]
        out.append(f"K=1000 within 10 s is {'met' if t <= 10 else 'not met'} ({t:.1f} s)")
    return "; ".join(out) or "not measured in this run"


def section(result: dict) -> str:
    return f"""{HEADING}

Server step of `fedpia.align.fedpia_server` (exact solver, weight cost, γ=1, one iteration)
against `fedpia.align.fedavg` on synthetic ViLT-B-sized Houlsby adapters: 24 unit groups,
d=768, m=64, float32 (~2.4M parameters per client); clients are noisy copies of one state
(distinct noise per client), one in three with all its units permuted. Min (median) of
interleaved repeated calls on the same inputs, wall clock, {result['machine']['cpus']} cores
shared with other engineers' jobs (1-min load average shown; with load above the core count the
medians mostly measure waiting, so read the minima).

Command: `{result['command']}` (git {result['git']}); raw numbers in
`benchmarks/results/align.json`.

{table(result['rows'])}

- Gram flop bound: K·L·m²·(d+1) multiply-adds for the cost matrices plus K·L·m³ for the
  assignments, at the matmul throughput measured on this machine
  ({result['gmacs_measured']:.1f} GMAC/s). The cost matrices need about m/2 = 32
  multiply-adds per adapter parameter where FedAvg needs one add (memory-bound), so the Gram
  bound alone is of the order of FedAvg's own time; FedPIA also reads the clients twice (anchor,
  then align + integrate). The fast path is batched over clients (`fedpia.align.batched`: the
  K clients' tensors of a group are stacked, one Gram matmul per group, batched argmin /
  uniqueness check, one gather and one `tensordot`, clients in chunks of ≤8 MB stacks), so
  there is no per-client Python loop. This did not make it measurably faster: an interleaved
  A/B against the previous per-client loop (git 5f61aa3), 1 torch thread, same inputs, minima
  of 9 calls, load ≈4 on 2 cores, gave K=10: 61–66 ms (old) vs 61 ms (new); K=100: 536–624 ms
  (old) vs 560–636 ms (new); FedAvg 8–11 ms and 56–62 ms. With 2 threads (load 1.4→3.9):
  K=10: 135–145 ms (old) vs 139–167 ms (new); K=100: 1.36–1.80 s (old) vs 1.90–2.00 s (new),
  i.e. no gain, possibly a small loss at K=100. The per-client Python overhead was
  not the bottleneck: the Gram alone is ~2x FedAvg on one core (m/2 multiply-adds per
  parameter), and under load the multi-threaded batched ops stall more than small ones (the
  medians in the table). Targets from the tracker (ratio of minima): {_verdict(result['rows'])}.
- Worst-case LSA: scipy `linear_sum_assignment` on random 64×64 costs
  ({result['lsa_64x64_random_s'] * 1e6:.0f} µs each) for every client and group. The synthetic
  clients here have clear matches, so the exact row-argmin fast path (row minima in distinct
  columns ⇒ optimal) resolves them without scipy; clients far from the anchor pay this extra.
"""


if __name__ == "__main__":
    main()
