"""Trainable-parameter counts per PEFT method: the default minilm-vl (adapter width 64, with its
trainable image projector), tiny ViLT and the ViLT-B/32 config (random init).

Usage: python benchmarks/count_params.py [--no-base]
Builds ``ViltConfig()`` (hidden 768, 12 layers, ~87M backbone params) on CPU without weights by
temporarily swapping the tiny config for the default one; prints markdown tables. minilm-vl totals
count the transformer and projector (the frozen EfficientNet tower, 3.4M parameters without its
classifier, runs once per image and is not part of the model).
"""

from __future__ import annotations

import argparse
import time
from unittest import mock

from fedpia.models import PEFT_NAMES, ModelConfig, build_model
from fedpia.models.backbones import ViltBackbone


def count(cfg: ModelConfig) -> tuple[int, int]:
    model = build_model(cfg)
    trainable = sum(v.numel() for v in model.trainable_state().values())
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def _base_config(cls):
    from transformers import ViltConfig

    return ViltConfig(max_image_length=-1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-base", action="store_true", help="skip the ViLT-B config")
    args = parser.parse_args()
    rows = []
    for peft in PEFT_NAMES:
        tiny = count(ModelConfig(pretrained="tiny", backbone="vilt", peft=peft, adapter_width=8))
        base = ("-", "-")
        if not args.no_base:
            with mock.patch.object(ViltBackbone, "tiny_config", classmethod(_base_config)):
                base = count(ModelConfig(pretrained="tiny", backbone="vilt", peft=peft))  # m = 768/16 = 48
        rows.append((peft, *tiny, *base))
    print("| method | minilm-vl trainable (projector) | minilm-vl total | % |")
    print("|---|---:|---:|---:|")
    for peft in PEFT_NAMES:
        model = build_model(ModelConfig(peft=peft, adapter_width=64))
        state = model.trainable_state()
        n = sum(v.numel() for v in state.values())
        proj = sum(v.numel() for k, v in state.items() if k.startswith("backbone.image_proj."))
        total = sum(p.numel() for p in model.parameters())
        print(f"| {peft} | {n:,} ({proj:,}) | {total:,} | {100 * n / total:.3f} |")
    print()
    print("| method | tiny trainable | tiny total | ViLT-B trainable | ViLT-B total | ViLT-B % |")
    print("|---|---:|---:|---:|---:|---:|")
    for peft, tt, ta, bt, ba in rows:
        pct = f"{100 * bt / ba:.3f}" if isinstance(bt, int) else "-"
        bt, ba = (f"{x:,}" if isinstance(x, int) else x for x in (bt, ba))  # "-" with --no-base
        print(f"| {peft} | {tt:,} | {ta:,} | {bt} | {ba} | {pct} |")


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"\n(elapsed {time.perf_counter() - t0:.1f} s)")
