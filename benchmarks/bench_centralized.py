"""Does the backbone learn? Centralized adapter fine-tuning, pretrained vs random init.

One adapter + head per task, trained on the task's official training split (MedMNIST: a seeded
subsample of ``--max-train``, the size of a T2 client) and scored on its official test split
after every epoch (the last epoch is reported: no model selection on the test set). Tasks:

- ``vqarad``: VQA-RAD official split (1797 / 451 QA); answers = classes over the training
  answers (a test answer outside them counts wrong); overall / open / closed accuracy;
- ``breastmnist``, ``pneumoniamnist``, ``retinamnist``: MedMNIST as T2's templated VQA (one
  question per dataset, answers yes/no or "grade g"); accuracy.

Weights: ``pretrained`` (shipped MiniLM + EfficientNet-Lite0) or ``random`` (the same
architecture, seeded random init). The lr schedule is the federated one with one "round" per epoch
(``fedpia.client.round_lr``: 10% warm-up, linear decay). Results accumulate in
``benchmarks/results/centralized.json`` (one row per task/weights/tag, with command, provenance
and load average); the table between ``<!-- centralized:start/end -->`` in docs/benchmarks.md is
rewritten from all rows.

    OMP_NUM_THREADS=1 python benchmarks/bench_centralized.py --tasks vqarad --weights pretrained,random \
        --epochs 10 --lr 1e-3 [--set pooling=cls] [--tag NAME]
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _docs import write_section

from fedpia.client import (
    TrainConfig,
    classification_metrics,
    encode_split,
    predict,
)
from fedpia.data import LabelSpace
from fedpia.data.medmnist_data import load_medmnist
from fedpia.data.vqarad import load_vqa_rad
from fedpia.device import place
from fedpia.experiments.runner import provenance
from fedpia.models import ModelConfig, build_head, build_model
from fedpia.sim.centralized import train_epochs

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "centralized.json"
DOC = ROOT / "docs" / "benchmarks.md"
TASKS = ("vqarad", "breastmnist", "pneumoniamnist", "retinamnist")
# frozen-feature references (../shared/DESIGN.md, centralized, same data): what fine-tuning must beat
REFERENCE = {"vqarad": "39-41 (MLP on frozen features)", "breastmnist": "73.1 majority; 80-86 probe",
             "pneumoniamnist": "62.5 majority; 84-87 probe", "retinamnist": "43.5 majority; 51-54 probe"}
log = logging.getLogger("bench_centralized")


def load_task(task: str, root: Path, *, max_train: int, seed: int):
    """(train samples, test samples) of ``task``."""
    if task == "vqarad":
        ds = load_vqa_rad(root / "vqa_rad")
        return list(ds.split("train")), list(ds.split("test"))
    ds = load_medmnist(root / "medmnist", task, as_task="vqa")
    train, test = list(ds.split("train")), list(ds.split("test"))
    if len(train) > max_train:
        rng = np.random.default_rng(seed)
        train = [train[i] for i in sorted(rng.choice(len(train), max_train, replace=False))]
    return train, test


def run_one(task: str, weights: str, args, overrides: dict) -> dict:
    """Train and evaluate one (task, weights) pair; returns its result row."""
    train_s, test_s = load_task(task, Path(args.data_root), max_train=args.max_train, seed=args.seed)
    cfg = ModelConfig(**{"pretrained": None if weights == "pretrained" else "random",
                         "peft": args.peft, "adapter_width": args.adapter_width, "seed": args.seed,
                         **overrides})
    model = build_model(cfg)
    dev = place(model, device=args.device, precision=args.precision)
    space = LabelSpace.from_samples(train_s)
    t0 = time.perf_counter()
    train, test = (encode_split(model.processor, s, space) for s in (train_s, test_s))
    encode_s = time.perf_counter() - t0
    head = build_head(train.task, model.hidden_size, len(space), seed=args.seed)
    tcfg = TrainConfig(lr=args.lr, head_lr=args.head_lr, batch_size=args.batch, local_epochs=1,
                       warmup_frac=args.warmup, weight_decay=0.01, device=args.device,
                       precision=args.precision)
    curve, train_time = [], 0.0
    for epoch, lr, stats, seconds in train_epochs(model, head, train, cfg=tcfg, epochs=args.epochs,
                                                  seed_of=lambda e: args.seed * 1000 + e):
        train_time += seconds
        metrics = classification_metrics(predict(model, head, test), test.targets.cpu(),
                                         test.answer_types, task=test.task)
        curve.append({"epoch": epoch, "lr": lr, "loss": stats["loss"], **metrics})
        log.info("%s/%s epoch %d: loss %.3f %s", task, weights, epoch, stats["loss"], metrics)
    targets = test.targets.cpu().numpy()
    majority = float(np.bincount(train.targets.cpu().numpy()).argmax())
    return {
        "task": task, "weights": weights, "model": {k: v for k, v in vars(cfg).items()},
        "epochs": args.epochs, "lr": args.lr, "head_lr": args.head_lr, "batch": args.batch,
        "n_train": len(train), "n_test": len(test), "n_classes": len(space),
        "test_in_answer_pool": float((targets >= 0).mean()),
        "majority_test_acc": float((targets == majority).mean()),
        "final": curve[-1], "curve": curve, "device": str(dev), "precision": args.precision,
        "encode_s": encode_s, "train_samples_per_s": len(train) * args.epochs / train_time,
        "threads": torch.get_num_threads(), "load_avg": os.getloadavg(),
    }


#: ModelConfig fields shown in the table when a row differs from the current default
DESIGN_KNOBS = ("peft", "adapter_width", "image_size", "image_layer", "image_tokens", "pooling",
                "train_projector")


def _knobs(row: dict) -> str:
    default = vars(ModelConfig())
    diff = {k: row["model"][k] for k in DESIGN_KNOBS
            if k in row["model"] and row["model"][k] != default[k] and k != "adapter_width"}
    return ", ".join(f"{k}={v}" for k, v in diff.items()) or "defaults"


def _fmt(row: dict) -> str:
    f = row["final"]
    acc = f"{100 * f['accuracy']:.1f}"
    if row["task"] == "vqarad":
        acc += f" (open {100 * f['accuracy_open']:.1f}, closed {100 * f['accuracy_closed']:.1f})"
    return (f"| {row['task']} | {row['weights']} | {row['tag']}: {_knobs(row)} | {row['n_train']} | "
            f"{row['epochs']} | {row['lr']:g} | {acc} | {100 * row['majority_test_acc']:.1f} | "
            f"{REFERENCE[row['task']]} | {row['train_samples_per_s']:.1f} |")


_HEADER = ["| task | weights | run: knobs differing from the defaults | train samples | epochs | lr | "
           "test accuracy % (last epoch) | majority % | frozen-feature reference % | train samples/s |",
           "|---|---|---|---:|---:|---:|---|---:|---|---:|"]
HEADLINE = ("default", "fulltrain-2ep")


def write_doc(rows: dict) -> None:
    """Two tables (the defaults, pretrained vs random; the design runs) and their commands."""
    head = {k: r for k, r in rows.items() if r["tag"] in HEADLINE}
    design = {k: r for k, r in rows.items() if r["tag"] not in HEADLINE}
    lines = ["<!-- centralized:start -->", "Defaults (`ModelConfig()`: Houlsby-64, 128 px, `head` "
             "layer, mean pooling, frozen projector), pretrained vs random init:", "", *_HEADER]
    lines += [_fmt(r) for _, r in sorted(head.items())]
    lines += ["", "Design runs (what the defaults were chosen from):", "", *_HEADER]
    lines += [_fmt(r) for _, r in sorted(design.items(), key=lambda kv: (kv[1]["task"], kv[1]["tag"]))]
    cmds = sorted({r["command"] for r in rows.values()})
    lines += ["", "Commands (each row's exact command, per-epoch curve, load average and provenance "
              "are in `benchmarks/results/centralized.json`):", "", "```bash", *cmds, "```",
              "<!-- centralized:end -->"]
    write_section(DOC, "centralized", "Centralized fine-tuning: does the backbone learn?", "\n".join(lines))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--tasks", default="vqarad", help=f"comma-separated from {TASKS}")
    ap.add_argument("--weights", default="pretrained,random")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--head-lr", type=float, default=None)
    ap.add_argument("--warmup", type=float, default=0.1)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--peft", default="houlsby")
    ap.add_argument("--adapter-width", type=int, default=64)
    ap.add_argument("--max-train", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--set", action="append", default=[], help="ModelConfig field=value")
    ap.add_argument("--tag", default="default")
    ap.add_argument("--doc-only", action="store_true", help="rewrite the docs table from the JSON")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.doc_only:
        write_doc(json.loads(RESULTS.read_text()))
        return
    overrides = {}
    for item in args.set:
        key, value = item.split("=", 1)
        try:
            overrides[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[key] = value
    command = "OMP_NUM_THREADS=1 python " + " ".join(shlex.quote(a) for a in sys.argv)
    for task in args.tasks.split(","):
        for weights in args.weights.split(","):
            row = run_one(task, weights, args, overrides)
            row.update(tag=args.tag, overrides=overrides, command=command, provenance=provenance())
            rows = save_row(f"{task}/{weights}/{args.tag}", row)
            print(_fmt(row), flush=True)
    write_doc(rows)


def save_row(key: str, row: dict) -> dict:
    """Merge one row into the results file under an exclusive lock (parallel runs may write)."""
    import fcntl

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        rows[key] = row
        tmp = RESULTS.with_suffix(".tmp")
        tmp.write_text(json.dumps(rows, indent=1))
        os.replace(tmp, RESULTS)
    return rows


if __name__ == "__main__":
    main()
