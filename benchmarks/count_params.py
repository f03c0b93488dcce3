"""Trainable-parameter counts per PEFT method: tiny ViLT and the ViLT-B/32 config (random init).

Usage: python benchmarks/count_params.py [--no-base]
Builds ``ViltConfig()`` (hidden 768, 12 layers, ~87M backbone params) on CPU without weights by
temporarily swapping the tiny config for the default one; prints a markdown table.
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
        tiny = count(ModelConfig(backbone="vilt", peft=peft, adapter_width=8))
        base = ("-", "-")
        if not args.no_base:
            with mock.patch.object(ViltBackbone, "tiny_config", classmethod(_base_config)):
                base = count(ModelConfig(backbone="vilt", peft=peft))  # m = 768/16 = 48
        rows.append((peft, *tiny, *base))
    print("| method | tiny trainable | tiny total | ViLT-B trainable | ViLT-B total | ViLT-B % |")
    print("|---|---:|---:|---:|---:|---:|")
    for peft, tt, ta, bt, ba in rows:
        pct = f"{100 * bt / ba:.3f}" if isinstance(bt, int) else "-"
        print(f"| {peft} | {tt:,} | {ta:,} | {bt:,} | {ba:,} | {pct} |")


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"\n(elapsed {time.perf_counter() - t0:.1f} s)")
