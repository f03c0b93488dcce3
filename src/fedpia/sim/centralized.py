"""Centralized upper bound: pool every client's training data, train one adapter + one head,
and score it on each client's own test split (same record shape as the simulator's history).

Only meaningful when all clients share one task kind (the pooled label space is the union of the
clients' training labels); a task-heterogeneous setting raises a ValueError.
"""

from __future__ import annotations

import time
from typing import Any

from torch import nn

from fedpia.client import (
    TrainConfig,
    classification_metrics,
    encode_split,
    predict,
    round_lr,
    train_local,
)
from fedpia.data import ClientSplit, FederatedData, LabelSpace
from fedpia.rounds import SimConfig, client_runtime, seed_for, state_bytes


def run_centralized(
    model: nn.Module, data: FederatedData, *, sim: SimConfig, train: TrainConfig, on_event=None
) -> list[dict[str, Any]]:
    """Train on the pooled data for ``sim.rounds`` rounds (one local pass each); per round,
    evaluate on every client's test split. Returns history records."""
    tasks = {c.task for c in data.clients}
    if len(tasks) != 1:
        raise ValueError(f"centralized training needs one task kind, setting {data.setting!r} has {sorted(tasks)}")
    on_event = on_event or (lambda event, info: None)
    pooled = ClientSplit(
        name="central", task=tasks.pop(),
        train=tuple(s for c in data.clients for s in c.train),
        val=tuple(s for c in data.clients for s in c.val),
        test=tuple(s for c in data.clients for s in c.test),
    )
    rt = client_runtime(model, pooled, index=0, seed=sim.seed)
    space = LabelSpace.from_samples(pooled.train)
    tests = {c.name: encode_split(model.processor, c.test, space) for c in data.clients}
    adapter, head = model.trainable_state(), rt.initial_head()
    history = []
    for r in range(1, sim.rounds + 1):
        t0 = time.perf_counter()
        on_event("round_start", {"round": r, "clients": ["central"]})
        lr = round_lr(train, r, sim.rounds)
        seed = seed_for(sim.seed, "client", r, 0)
        adapter, head, stats = train_local(model, rt.head, rt.train, start=adapter, head_state=head,
                                           cfg=train, lr=lr, seed=seed)
        t1 = time.perf_counter()
        model.load_trainable_state(adapter)
        rt.head.load_state_dict(head)
        evals, t_eval = {}, time.perf_counter()
        for name, enc in tests.items():
            res = classification_metrics(predict(model, rt.head, enc), enc.targets, enc.answer_types, task=enc.task)
            evals[name] = {"personalized": res, "global": res}
        rec = {"round": r, "clients": {"central": {**stats, "lr": lr, "train_time": t1 - t0,
                                                   "client_pia_time": 0.0}},
               "failed": {}, "rejected": {}, "faults": {},
               "influence": {"bound": None, "norms": {}, "clipped": {}}, "skipped": None,
               "server_time": 0.0, "bytes_down": 0, "bytes_up": 0,
               "diagnostics": {"pooled_train": len(pooled.train), "adapter_bytes": state_bytes(adapter)},
               "eval": evals, "eval_time": time.perf_counter() - t_eval,
               "round_time": time.perf_counter() - t0}
        on_event("client_done", {"round": r, "client": "central"})
        on_event("round_end", rec)
        history.append(rec)
    return history


__all__ = ["run_centralized"]
