"""Training throughput of the default backbone: forward + backward + AdamW step, batch 16.

minilm-vl (shipped weights) with a PEFT method, random token ids of a given question length plus
16 cached image tokens (the tower does not run in training), a VQA head of 50 answers. Reports
samples/s per (method, text length, threads) with the load average beside it (timings under load
are indicative only). Writes ``benchmarks/results/backbone_speed.json``.

    python benchmarks/bench_backbone_speed.py --lengths 16,24,40 --threads 1,2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from _docs import int_list

from fedpia.experiments.runner import provenance
from fedpia.models import ModelConfig, build_head, build_model

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "backbone_speed.json"


def measure(model, head, *, length: int, batch: int, steps: int, warmup: int = 3) -> float:
    """samples/s of forward + backward + optimizer step on a fixed random batch."""
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 20000, (batch, length), generator=gen)
    c = model.backbone.tower.feature_dim
    b = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
         "image_feats": torch.randn(batch, 16, c, generator=gen).half()}
    y = torch.randint(0, 50, (batch,), generator=gen)
    params = list(model.trainable_parameters().values()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4)
    model.train()
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(head(model(b)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps * batch / (time.perf_counter() - t0)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peft", default="houlsby")
    ap.add_argument("--adapter-width", type=int, default=64)
    ap.add_argument("--lengths", type=int_list, default=[16, 24, 40])
    ap.add_argument("--threads", type=int_list, default=[1, 2])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--set", action="append", default=[], help="ModelConfig field=value (str)")
    args = ap.parse_args(argv)
    extra = dict(item.split("=", 1) for item in args.set)
    model = build_model(ModelConfig(peft=args.peft, adapter_width=args.adapter_width, **extra))
    head = build_head("vqa", model.hidden_size, 50, seed=0)
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for length in args.lengths:
            load = os.getloadavg()
            sps = measure(model, head, length=length, batch=args.batch, steps=args.steps)
            rows.append({"peft": args.peft, "length": length, "threads": threads,
                         "samples_per_s": sps, "load_avg": load})
            print(f"{args.peft} L={length} threads={threads}: {sps:.1f} samples/s "
                  f"(load {load[0]:.1f})", flush=True)
    OUT.write_text(json.dumps({"rows": rows, "model": extra, "command": "python " + " ".join(sys.argv),
                               "provenance": provenance()}, indent=1))


if __name__ == "__main__":
    main()
