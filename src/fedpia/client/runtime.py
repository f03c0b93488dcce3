"""One client's round, independent of the engine (used by the simulator and the Flower ClientApp).

A :class:`ClientRuntime` holds what a client has locally: its data (encoded once), its label
space and head module, and a reference to the (shared) model. :func:`client_round` runs the
strategy's client hooks around :func:`train_local`; :func:`evaluate_adapter` scores an adapter
with the client's head on its test split.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from fedpia.client.encode import EncodedSplit, encode_split
from fedpia.client.metrics import classification_metrics, predict
from fedpia.client.train import TrainConfig, round_lr, train_local
from fedpia.data import ClientSplit, LabelSpace
from fedpia.strategies.base import (
    ActivationProbe,
    ClientState,
    ClientUpdate,
    RoundContext,
    State,
    Strategy,
)


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers (stable across runs, processes and engines)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> 1)


@dataclass
class ClientRuntime:
    """A client's local resources; ``model`` is shared, everything else is the client's own."""

    name: str
    index: int
    task: str
    space: LabelSpace
    head: nn.Module
    train: EncodedSplit
    test: EncodedSplit
    model: nn.Module

    @classmethod
    def build(cls, model: nn.Module, split: ClientSplit, *, index: int, seed: int) -> ClientRuntime:
        """Encode the client's splits once and build its head (seeded by ``(seed, index)``)."""
        from fedpia.models import build_head

        space = LabelSpace.from_samples(split.train)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(seed, 0, index, 7))
            head = build_head(split.task, model.hidden_size, len(space))
        train = encode_split(model.processor, split.train, space)
        test = encode_split(model.processor, split.test, space)
        return cls(split.name, index, split.task, space, head, train, test, model)

    def initial_head(self) -> State:
        return {k: v.detach().to("cpu", copy=True) for k, v in self.head.state_dict().items()}


def make_probe(rt: ClientRuntime, *, samples: int, seed: int) -> ActivationProbe:
    """Activations of an adapter on a fixed random batch of ``samples`` training examples."""
    from fedpia.models import adapter_activations

    gen = torch.Generator().manual_seed(derive_seed(seed, 5))
    idx = torch.randperm(len(rt.train), generator=gen)[: max(1, min(samples, len(rt.train)))]
    batch = rt.train.batch(idx)

    def fn(adapter: State) -> dict[str, torch.Tensor]:
        rt.model.load_trainable_state(adapter)
        rt.model.eval()
        with torch.no_grad():
            return adapter_activations(rt.model, batch)

    return ActivationProbe(fn)


def client_round(
    rt: ClientRuntime,
    strategy: Strategy,
    payload: Mapping[str, State],
    cstate: ClientState,
    *,
    round_: int,
    num_rounds: int,
    seed: int,
    train_cfg: TrainConfig,
    probe_samples: int,
    num_clients: int = 0,
) -> tuple[ClientUpdate, ClientState, dict[str, float]]:
    """Client-side hooks + local training for round ``round_`` (seeded by ``(seed, round, index)``)."""
    cseed = derive_seed(seed, round_, rt.index)
    lr = round_lr(train_cfg, round_, num_rounds)
    steps = train_cfg.steps_for(len(rt.train))
    ctx = RoundContext(round_, num_rounds, cseed, rt.name, len(rt.train), steps, lr, num_clients)
    t0 = time.perf_counter()
    probe = make_probe(rt, samples=probe_samples, seed=cseed) if strategy.needs_probe else None
    start, hooks = strategy.client_start(payload, cstate, ctx, probe=probe)
    t1 = time.perf_counter()
    head = cstate.head if cstate.head is not None else rt.initial_head()
    trained, head, stats = _train_pass(rt, start, hooks, head, train_cfg, lr, cseed)
    plan = strategy.second_pass(trained, payload, replace(cstate, head=head), ctx)
    second = None
    if plan is not None:  # Ditto's personal model, FedDAT's shared adapter
        second, head, more = _train_pass(rt, *plan, head, train_cfg, lr, derive_seed(cseed, 2))
        stats = {"loss": (stats["loss"] + more["loss"]) / 2, "steps": stats["steps"] + more["steps"]}
    t2 = time.perf_counter()
    update, new_state = strategy.client_finish(trained, payload, cstate, ctx, second=second)
    new_state = replace(new_state, head=head)
    info = {
        "loss": stats["loss"],
        "steps": stats["steps"],
        "lr": lr,
        "client_pia_time": t1 - t0,
        "train_time": t2 - t1,
    }
    return update, new_state, info


def _train_pass(
    rt: ClientRuntime, start: State, hooks: Any, head: State, cfg: TrainConfig, lr: float, seed: int
) -> tuple[State, State, dict[str, float]]:
    """One local training pass; a distillation teacher is scored once on the training split."""
    distill = None
    if hooks.distill_teacher is not None:
        rt.head.load_state_dict(head)
        rt.model.load_trainable_state(hooks.distill_teacher)
        distill = predict(rt.model, rt.head, rt.train)
    return train_local(
        rt.model, rt.head, rt.train, start=start, head_state=head, cfg=cfg, lr=lr, seed=seed,
        hooks=hooks, distill_logits=distill,
    )


def evaluate_adapter(
    rt: ClientRuntime, adapter: State, head: State, *, base_delta: State | None = None
) -> dict[str, Any]:
    """Metrics of ``adapter`` + ``head`` (+ LoRA base-weight deltas) on the client's test split."""
    from fedpia.models import set_base_delta

    rt.head.load_state_dict(head)
    rt.model.load_trainable_state(adapter)
    if base_delta:
        set_base_delta(rt.model, base_delta)
    try:
        logits = predict(rt.model, rt.head, rt.test)
    finally:
        if base_delta:
            set_base_delta(rt.model, None)
    return classification_metrics(logits, rt.test.targets, rt.test.answer_types, task=rt.task)
