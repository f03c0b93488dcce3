"""Parity without Ray: for EVERY registered strategy, Flower's own round loop
(``Strategy.start``) over the ServerApp's strategy and the ClientApp's handlers (a fake Grid and
Contexts, run_config parsed on every node) gives the same round records and the same global
state as the in-process simulator, bit for bit — injected faults and the defences included."""

from __future__ import annotations

import pytest
import torch
from flower_helpers import run_fake_flower, run_inprocess, tiny_config

from fedpia.strategies import STRATEGIES

LORA = ("fedit", "ffa-lora", "fedsa-lora", "flora", "fedex-lora")
# round 1: client 2 sends a 1000x update (clipped); round 2: client 0 drops out
FAULTS = [{"client": 2, "round": 1, "kind": "scale:1000"}, {"client": 0, "round": 2, "kind": "drop"}]
TIMING = ("server_time", "eval_time", "round_time")
CLIENT_TIMING = ("client_pia_time", "train_time")


def _comparable(rec):
    out = {k: v for k, v in rec.items() if k not in TIMING}
    out["clients"] = {c: {k: v for k, v in m.items() if k not in CLIENT_TIMING}
                      for c, m in rec["clients"].items()}
    return out


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_inprocess_and_flower_give_the_same_rounds(name, task_identity):
    # LoRA strategies with rank 4 (alpha 16): lora_scaling 4.0, not the knob's default 2.0
    model = {"peft": "lora", "lora_rank": 4} if name in LORA else {}
    cfg = tiny_config(name, rounds=2, model=model, faults=FAULTS)
    ref = run_inprocess(cfg)
    flower = run_fake_flower(cfg)
    assert len(flower.history) == len(ref.history) == 2
    for got, want in zip(flower.history, ref.history, strict=True):
        assert _comparable(got) == _comparable(want)
    assert ref.history[0]["faults"] and ref.history[1]["failed"]  # the faults did happen
    a, b = flower.server.adapter, ref.server.adapter
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    for key in ("base_delta",):
        if key in ref.server.extra:
            x, y = flower.server.extra[key], ref.server.extra[key]
            assert all(torch.equal(x[k], y[k]) for k in y)
