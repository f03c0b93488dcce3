"""One client's round, independent of the engine (called by ``fedpia.rounds.client_step``).

A :class:`ClientRuntime` holds what a client has locally: its data (encoded once), its label
space and head module, and a reference to the (shared) model. :func:`client_round` runs the
strategy's client hooks around :func:`train_local`; :func:`evaluate_adapter` scores an adapter
with the client's head on its test split. Every seed is passed in explicitly (the round layer
derives them from named streams, ``fedpia.rounds.seeds``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from fedpia.client.encode import EncodedSplit, encode_split
from fedpia.client.metrics import classification_metrics, predict
from fedpia.client.train import TrainConfig, train_local
from fedpia.data import ClientSplit, LabelSpace
from fedpia.strategies.base import (
    ActivationProbe,
    ClientState,
    ClientUpdate,
    RoundContext,
    State,
    Strategy,
)


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
    #: the head's state at build time (``head`` itself is reloaded by every training and
    #: evaluation, so a runtime reused by a later run must not read its start from it)
    head_init: State | None = None

    @classmethod
    def build(
        cls, model: nn.Module, split: ClientSplit, *, index: int, head_seed: int
    ) -> ClientRuntime:
        """Encode the client's splits once and build its head, initialised from ``head_seed``."""
        from fedpia.models import build_head

        space = LabelSpace.from_samples(split.train)
        head = build_head(split.task, model.hidden_size, len(space), seed=head_seed)
        train = encode_split(model.processor, split.train, space)
        test = encode_split(model.processor, split.test, space)
        init = {k: v.detach().clone() for k, v in head.state_dict().items()}
        return cls(split.name, index, split.task, space, head, train, test, model, init)

    def initial_head(self) -> State:
        """A copy of the head as initialised (from ``head_seed``), whatever ran since."""
        src = self.head_init if self.head_init is not None else self.head.state_dict()
        return {k: v.detach().to("cpu", copy=True) for k, v in src.items()}


#: ``ClientState.extra`` key of the pooled adapter inputs recorded during local training
PROBE_INPUTS = "probe_inputs"


def _probe_batch(rt: ClientRuntime, samples: int, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(rt.train), generator=gen)[: max(1, min(samples, len(rt.train)))]
    return rt.train.batch(idx)


def make_probe(rt: ClientRuntime, *, samples: int, seed: int) -> ActivationProbe:
    """Activations of an adapter on a fixed random batch of ``samples`` training examples: one
    forward pass with that adapter loaded (the ``probe="forward"`` source)."""
    from fedpia.models import adapter_activations

    batch = _probe_batch(rt, samples, seed)

    def fn(adapter: State) -> dict[str, torch.Tensor]:
        rt.model.load_trainable_state(adapter)
        rt.model.eval()
        with torch.no_grad():
            return adapter_activations(rt.model, batch)

    return ActivationProbe(fn)


def recorded_probe(
    rt: ClientRuntime, cstate: ClientState, *, samples: int, seed: int
) -> ActivationProbe:
    """Activations of an adapter on the pooled adapter inputs the client recorded during its
    last local training (``cstate.extra[PROBE_INPUTS]``, the ``probe="recorded"`` source): no
    forward pass, both adapters see the same inputs. A client state without a recording for
    the adapter's unit groups (e.g. from a checkpoint written before recording existed) records
    them once from a forward pass of its own adapter on a random batch of ``samples`` training
    examples; an adapter without unit groups (prompt, full fine-tuning) needs no inputs."""
    from fedpia.models import activations_from_inputs, adapter_inputs
    from fedpia.models.activations import producer_modules

    inputs = dict(cstate.extra.get(PROBE_INPUTS) or {})

    def fn(adapter: State) -> dict[str, torch.Tensor]:
        if set(producer_modules(adapter)) - set(inputs):  # nothing recorded for these groups
            if cstate.adapter is None:
                raise ValueError(f"client {rt.name!r}: recorded probe without inputs or own adapter")
            rt.model.load_trainable_state(cstate.adapter)
            inputs.clear()
            inputs.update(adapter_inputs(rt.model, _probe_batch(rt, samples, seed)))
        return activations_from_inputs(rt.model, inputs, adapter)

    return ActivationProbe(fn)


def build_probe(
    rt: ClientRuntime, strategy: Strategy, cstate: ClientState, *, samples: int, seed: int
) -> ActivationProbe | None:
    """The client's activation probe for ``strategy`` (None when it needs none)."""
    if not strategy.needs_probe:
        return None
    if strategy.probe == "recorded":
        return recorded_probe(rt, cstate, samples=samples, seed=seed)
    return make_probe(rt, samples=samples, seed=seed)


def client_round(
    rt: ClientRuntime,
    strategy: Strategy,
    payload: Mapping[str, State],
    cstate: ClientState,
    ctx: RoundContext,
    *,
    train_cfg: TrainConfig,
    probe_size: int,
    probe_seed: int,
    second_seed: int,
) -> tuple[ClientUpdate, ClientState, dict[str, float]]:
    """Client-side hooks + local training of one round.

    ``ctx``: the client's round context (``ctx.seed`` seeds the first local pass, ``ctx.lr`` is
    its learning rate); ``probe_size``: samples m of the activation probe (only built when
    ``strategy.needs_probe``), drawn with ``probe_seed`` (``strategy.probe="forward"``) or, with
    ``probe="recorded"``, the last m samples of the local training pass whose pooled adapter
    inputs are kept in the new client state (``extra[PROBE_INPUTS]``); ``second_seed``: the optional second
    pass. Returns (upload, new client state, info). ``info["start_shift"]`` = ‖start − G‖, the
    distance of the adapter local training started from to the received global G (0 when the
    client started from G; > 0 proves client-side integration, e.g. FedPIA's merge, ran).
    """
    t0 = time.perf_counter()
    probe = build_probe(rt, strategy, cstate, samples=probe_size, seed=probe_seed)
    start, hooks = strategy.client_start(payload, cstate, ctx, probe=probe)
    t1 = time.perf_counter()
    head = cstate.head if cstate.head is not None else rt.initial_head()
    record = probe_size if strategy.needs_probe and strategy.probe == "recorded" else 0
    if record:  # hooks go on the modules of the start adapter (its widths), so load it first
        from fedpia.models import InputRecorder

        rt.model.load_trainable_state(start)
    with InputRecorder(rt.model, keep=record) if record else nullcontext() as recorder:
        trained, head, stats = _train_pass(rt, start, hooks, head, train_cfg, ctx.lr, ctx.seed)
    plan = strategy.second_pass(trained, payload, replace(cstate, head=head), ctx)
    second = None
    if plan is not None:  # Ditto's personal model, FedDAT's shared adapter
        second, head, more = _train_pass(rt, *plan, head, train_cfg, ctx.lr, second_seed)
        stats = {"loss": (stats["loss"] + more["loss"]) / 2, "steps": stats["steps"] + more["steps"]}
    t2 = time.perf_counter()
    update, new_state = strategy.client_finish(trained, payload, cstate, ctx, second=second)
    new_state = replace(new_state, head=head)
    if recorder is not None:  # the next round's probe inputs (client-local, never uploaded)
        new_state = replace(new_state, extra={**new_state.extra, PROBE_INPUTS: recorder.inputs()})
    info = {
        "loss": stats["loss"],
        "steps": stats["steps"],
        "lr": ctx.lr,
        "start_shift": _distance(start, payload.get("adapter", {})),
        "client_pia_time": t1 - t0,
        "train_time": t2 - t1,
    }
    if hooks.diagnostics:  # e.g. FedPIA's client alignment (JSON; in-process records only)
        info["pia"] = hooks.diagnostics
    return update, new_state, info


def _distance(a: State, b: Mapping[str, torch.Tensor]) -> float:
    """‖a − b‖ over the keys they share with equal shapes (float64)."""
    sq = sum(float(torch.linalg.vector_norm((a[k] - b[k]).double()) ** 2)
             for k in a if k in b and a[k].shape == b[k].shape)
    return sq ** 0.5


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
