"""Centralized upper bound: pool every client's training data, train one adapter + one head,
and score it on each client's own test split (same record shape as the simulator's history).

Only meaningful when all clients share one task kind (the pooled label space is the union of the
clients' training labels); a task-heterogeneous setting raises a ValueError.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
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


def train_epochs(
    model: nn.Module, head: nn.Module, train_set, *, cfg: TrainConfig, epochs: int,
    seed_of: Callable[[int], int], head_state: dict | None = None,
    on_start: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, float, dict[str, Any], float]]:
    """Train ``model``'s trainable state and ``head`` (from ``head_state``, default: the head as
    it is) on one encoded split for ``epochs`` passes with the federated lr schedule
    (``round_lr`` over ``epochs``). ``on_start(epoch)`` is called before each pass; after it the
    trained state is loaded into ``model`` and ``head`` and ``(epoch, lr, train stats, seconds)``
    is yielded, so the caller evaluates the model as it stands. The one epoch loop of
    centralized training (the runner's ``centralized`` method and
    ``benchmarks/bench_centralized.py``)."""
    adapter = model.trainable_state()
    head_state = {k: v.clone() for k, v in head.state_dict().items()} if head_state is None else head_state
    for epoch in range(1, epochs + 1):
        if on_start is not None:
            on_start(epoch)
        lr = round_lr(cfg, epoch, epochs)
        t0 = time.perf_counter()
        adapter, head_state, stats = train_local(model, head, train_set, start=adapter,
                                                 head_state=head_state, cfg=cfg, lr=lr,
                                                 seed=seed_of(epoch))
        seconds = time.perf_counter() - t0
        model.load_trainable_state(adapter)
        head.load_state_dict(head_state)
        yield epoch, lr, stats, seconds


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
    adapter_bytes = state_bytes(model.trainable_state())  # the same every round
    started: dict[int, float] = {}

    def start(r: int) -> None:
        started[r] = time.perf_counter()
        on_event("round_start", {"round": r, "clients": ["central"]})

    epochs = train_epochs(model, rt.head, rt.train, cfg=train, epochs=sim.rounds,
                          seed_of=lambda r: seed_for(sim.seed, "client", r, 0),
                          head_state=rt.initial_head(), on_start=start)
    history = []
    for r, lr, stats, train_time in epochs:
        evals, t_eval = {}, time.perf_counter()
        for name, enc in tests.items():
            res = classification_metrics(predict(model, rt.head, enc), enc.targets, enc.answer_types, task=enc.task)
            evals[name] = {"personalized": res, "global": res}
        rec = {"round": r, "clients": {"central": {**stats, "lr": lr, "train_time": train_time,
                                                   "client_pia_time": 0.0}},
               "failed": {}, "rejected": {}, "faults": {},
               "influence": {"bound": None, "norms": {}, "clipped": {}}, "skipped": None,
               "server_time": 0.0, "bytes_down": 0, "bytes_up": 0,
               "diagnostics": {"pooled_train": len(pooled.train), "adapter_bytes": adapter_bytes},
               "eval": evals, "eval_time": time.perf_counter() - t_eval,
               "round_time": time.perf_counter() - started[r]}
        on_event("client_done", {"round": r, "client": "central"})
        on_event("round_end", rec)
        history.append(rec)
    return history


__all__ = ["run_centralized", "train_epochs"]
