"""GPU check (< 2 min on a GPU): device placement, autocast, and training throughput fp32 vs bf16.

Builds the default backbone (minilm-vl, shipped weights, Houlsby-64) and a small synthetic client,
places them with ``fedpia.device.place`` and checks:

- every parameter and buffer of the model, and of the frozen image tower, is on the device;
- the encoded split (cached image features computed on the device) and the head move there once;
- under ``bf16`` (and ``fp16``) the Linear layers really run in that dtype (autocast active) in
  training, evaluation and activation probes, while ``trainable_state()`` stays fp32 on the CPU;
- training steps run; samples/s (forward + backward + AdamW step, batch 16) per precision;
- FedPIA's recorded client probe (``probe="recorded"``) gives, on the device, the activations a
  forward pass gives (inputs recorded with ``adapter_inputs``, fp32), and inputs recorded under
  bf16 autocast are within 5% (relative norm) of the fp32 ones.

Writes its figures to ``results/gpu_check.json`` beside this script (created by the first GPU run);
exits 1 if a check fails.

    python benchmarks/gpu_check.py                      # on a CUDA machine
    python benchmarks/gpu_check.py --device cpu --pretrained tiny --steps 2   # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from fedpia.client import TrainConfig, encode_split, predict, train_local
from fedpia.data import LabelSpace, get_setting
from fedpia.device import place
from fedpia.experiments.runner import provenance
from fedpia.models import (
    ModelConfig,
    activations_from_inputs,
    adapter_activations,
    adapter_inputs,
    build_head,
    build_model,
)

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "gpu_check.json"


def _linear_dtypes(model):
    seen: set = set()
    hooks = [m.register_forward_hook(lambda mod, i, o: seen.add(str(o.dtype)))
             for m in model.modules() if isinstance(m, torch.nn.Linear)]
    return seen, hooks


def placement(model, split, head, dev) -> dict[str, bool]:
    tensors = [*model.parameters(), *model.buffers()]
    tower = model.processor.extractor.tower if model.processor.extractor else None
    tower_t = [*tower.parameters(), *tower.buffers()] if tower is not None else []
    return {
        "model_params_and_buffers_on_device": all(t.device == dev for t in tensors),
        "image_tower_on_device": all(t.device == dev for t in tower_t),
        "encoded_split_on_device": all(v.device == dev for v in split.inputs.values()),
        "head_on_device": all(p.device == dev for p in head.parameters()),
        "trainable_state_on_cpu": all(v.device.type == "cpu" and v.dtype == torch.float32
                                      for v in model.trainable_state().values()),
    }


def run_precision(model, head, split, *, dev, precision, steps, batch) -> dict:
    cfg = TrainConfig(lr=1e-4, batch_size=batch, local_steps=steps, warmup_frac=0.0,
                      device=str(dev), precision=precision)
    start, hstate = model.trainable_state(), head.state_dict()
    train_local(model, head, split, start=start, head_state=hstate, cfg=cfg, lr=1e-4, seed=0)  # warm-up
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seen, hooks = _linear_dtypes(model)
    t0 = time.perf_counter()
    try:
        _, _, stats = train_local(model, head, split, start=start, head_state=hstate, cfg=cfg,
                                  lr=1e-4, seed=1)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        predict(model, head, split)
        adapter_activations(model.eval(), split.batch(range(min(8, len(split)))))
    finally:
        for h in hooks:
            h.remove()
    want = {"fp32": "torch.float32", "bf16": "torch.bfloat16", "fp16": "torch.float16"}[precision]
    return {"samples_per_s": steps * batch / dt, "loss": stats["loss"], "linear_dtypes": sorted(seen),
            "autocast_ok": seen == {want}}


def recorded_probe_matches(model, split, dev) -> dict[str, bool]:
    """Activations from recorded pooled inputs equal a forward's on ``dev`` (fp32), and inputs
    recorded under bf16 autocast stay close to the fp32 ones (pooled in fp32)."""
    place(model, device=str(dev), precision="fp32")
    batch = split.batch(range(min(16, len(split))))
    state = model.trainable_state()
    with torch.no_grad():
        want = adapter_activations(model.eval(), batch)
    xs = adapter_inputs(model, batch)
    got = activations_from_inputs(model, xs, state)
    place(model, device=str(dev), precision="bf16")
    xs_bf16 = adapter_inputs(model, batch)
    place(model, device=str(dev), precision="fp32")
    rel = max(float((xs_bf16[k] - xs[k]).norm() / xs[k].norm().clamp(min=1e-12)) for k in xs)
    return {"recorded_probe_matches_forward": set(got) == set(want) and all(
                torch.allclose(got[k], want[k], rtol=1e-3, atol=1e-4) for k in want),
            "recorded_inputs_bf16_close": rel < 0.05}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--pretrained", default=None, help="None = shipped weights; 'tiny' for a smoke test")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    model = build_model(ModelConfig(pretrained=args.pretrained, peft="houlsby", adapter_width=64))
    dev = place(model, device=args.device, precision="fp32")
    data = get_setting("synthetic", seed=0, modalities=("x-ray",), n_train=128, n_val=2, n_test=8)
    client = data.clients[0]
    space = LabelSpace.from_samples(client.train)
    t1 = time.perf_counter()
    split = encode_split(model.processor, client.train, space)
    extract_s = time.perf_counter() - t1
    head = build_head("vqa", model.hidden_size, len(space), seed=0)
    res = {p: run_precision(model, head, split, dev=dev, precision=p, steps=args.steps,
                            batch=args.batch) for p in args.precisions.split(",")}
    checks = placement(model, split, head, dev)
    checks.update({f"autocast_{p}": r["autocast_ok"] for p, r in res.items()})
    checks.update(recorded_probe_matches(model, split, dev))
    out = {
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "checks": checks, "all_ok": all(checks.values()), "precisions": res,
        "feature_extraction_img_per_s": extractor_speed(model, client.train, extract_s),
        "peak_memory_mb": torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None,
        "wall_s": time.perf_counter() - t0, "load_avg": os.getloadavg(),
        "command": "python " + " ".join(sys.argv), "provenance": provenance(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps({k: out[k] for k in ("device_name", "checks", "all_ok")}, indent=1))
    for p, r in res.items():
        print(f"{p}: {r['samples_per_s']:.1f} samples/s (batch {args.batch}), dtypes {r['linear_dtypes']}")
    return 0 if out["all_ok"] else 1


def extractor_speed(model, samples, seconds: float) -> float | None:
    """img/s of the first extraction (None when every image came from the disk cache)."""
    n = model.processor.extractor.computed if model.processor.extractor else 0
    return n / seconds if n else None


if __name__ == "__main__":
    sys.exit(main())
