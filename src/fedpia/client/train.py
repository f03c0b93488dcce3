"""The one local training loop shared by every strategy (hooks shape the objective).

Read top to bottom: load the start adapter and the head, build AdamW over the trainable
parameters, run ``steps`` minibatch steps of task loss (+ hook terms), return the trained states.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from fedpia.aggregation import mutual_distillation_loss
from fedpia.client.encode import EncodedSplit
from fedpia.device import autocast, check_device, check_precision, grad_scaler, place
from fedpia.strategies.base import LocalHooks, State


@dataclass(frozen=True)
class TrainConfig:
    """Local optimisation knobs (paper: AdamW lr 1e-4, wd 0.01, batch 16, 10% warm-up, linear decay).

    ``local_epochs`` passes over the client's training split per round, or exactly ``local_steps``
    minibatch steps when > 0. The learning rate follows a round-level schedule: linear warm-up over
    the first ``warmup_frac`` of the rounds, then linear decay (see :func:`round_lr`).
    ``schedule_rounds``: the rounds that schedule spans (0 = all of ``sim.rounds``); later rounds
    keep its last lr. A run extended with ``--resume --set sim.rounds=N`` records the rounds it
    had here, so that the extended run is this config run from scratch.

    ``device`` (``auto|cpu|cuda[:n]|mps``) and ``precision`` (``fp32|bf16|fp16`` autocast) apply
    to training, evaluation, activation probes and image feature extraction (see
    :mod:`fedpia.device`); ``auto`` is resolved on the machine that runs the client.
    """

    lr: float = 1e-4
    head_lr: float | None = None
    weight_decay: float = 0.01
    batch_size: int = 16
    local_epochs: int = 1
    local_steps: int = 0
    warmup_frac: float = 0.1
    max_grad_norm: float = 1.0
    schedule_rounds: int = 0
    device: str = "auto"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        check_device(self.device)
        check_precision(self.precision)
        if self.lr <= 0:
            raise ValueError(f"train.lr must be > 0, got {self.lr}")
        if self.batch_size < 1:
            raise ValueError(f"train.batch_size must be >= 1, got {self.batch_size}")
        for knob in ("local_epochs", "local_steps"):
            if getattr(self, knob) < 0:
                raise ValueError(f"train.{knob} must be >= 0, got {getattr(self, knob)}")
        if self.local_epochs < 1 and self.local_steps < 1:
            raise ValueError("train.local_epochs or train.local_steps must be >= 1")
        if not 0.0 <= self.warmup_frac < 1.0:
            raise ValueError(f"train.warmup_frac must be in [0, 1), got {self.warmup_frac}")
        if self.schedule_rounds < 0:
            raise ValueError(f"train.schedule_rounds must be >= 0 (0 = sim.rounds), got {self.schedule_rounds}")

    def steps_for(self, n: int) -> int:
        if self.local_steps > 0:
            return self.local_steps
        return self.local_epochs * math.ceil(n / self.batch_size)


def round_lr(cfg: TrainConfig, round_: int, num_rounds: int) -> float:
    """lr at 1-based ``round_`` of a schedule over H = ``cfg.schedule_rounds`` rounds (0: H =
    ``num_rounds``): warm-up ``lr·r/(W+1)`` for r <= W = ceil(warmup_frac·H), then linear decay
    ``lr·(H−r+1)/(H−W)``, reaching lr/(H−W+1) in round H (never 0, so every round trains).
    Rounds after H keep that last lr."""
    horizon = cfg.schedule_rounds or num_rounds
    r = min(round_, horizon)
    warm = math.ceil(cfg.warmup_frac * horizon)
    if r <= warm:
        return cfg.lr * r / (warm + 1)
    return cfg.lr * (horizon - r + 1) / (horizon - warm)


def task_loss(task: str, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the client's answer pool (VQA/multiclass), BCE for multilabel."""
    if task == "multilabel":
        return nn.functional.binary_cross_entropy_with_logits(logits, targets)
    return nn.functional.cross_entropy(logits, targets, ignore_index=-1)


def _batches(n: int, batch: int, steps: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    done = 0
    while done < steps:
        order = torch.randperm(n, generator=gen)
        for s in range(0, n, batch):
            if done == steps:
                return
            yield order[s : s + batch]
            done += 1


def train_local(
    model: nn.Module,
    head: nn.Module,
    data: EncodedSplit,
    *,
    start: State,
    head_state: State,
    cfg: TrainConfig,
    lr: float,
    seed: int,
    hooks: LocalHooks | None = None,
    distill_logits: torch.Tensor | None = None,
) -> tuple[State, State, dict[str, float]]:
    """Train ``start`` (loaded into the shared ``model``) and ``head`` on ``data``.

    ``distill_logits`` [N, C]: teacher predictions on the N training samples; adds
    ``hooks.distill_weight · KD(student, teacher)`` (FedDAT's mutual distillation).
    Returns (trained adapter state, trained head state, stats with mean loss and steps).
    """
    from fedpia.models import set_base_delta, set_frozen_companion

    hooks = hooks or LocalHooks()
    dev = place(model, device=cfg.device, precision=cfg.precision)  # a no-op once placed
    head.to(dev)
    data = data.to(dev)
    if distill_logits is not None:
        distill_logits = distill_logits.to(dev)
    model.load_trainable_state(start)
    set_frozen_companion(model, hooks.parallel_frozen)
    if hooks.base_delta:
        set_base_delta(model, hooks.base_delta)
    head.load_state_dict(head_state)
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    opt_params = [p for n, p in named.items() if hooks.trainable is None or hooks.trainable(n)]
    head_lr = lr if cfg.head_lr is None else cfg.head_lr
    opt = torch.optim.AdamW(
        [{"params": opt_params, "lr": lr}, {"params": list(head.parameters()), "lr": head_lr}],
        weight_decay=cfg.weight_decay,
    )
    clip = opt_params + list(head.parameters())
    scaler = grad_scaler(dev, cfg.precision)
    gen = torch.Generator().manual_seed(seed)
    steps = cfg.steps_for(len(data))
    kd_kind = "multilabel" if data.task == "multilabel" else "multiclass"
    model.train()
    head.train()
    total = 0.0
    try:
        # dropout draws from torch's global RNG: fork and seed it from the round's seed so runs
        # are reproducible (and resumable) without touching the caller's RNG state
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for idx in _batches(len(data), cfg.batch_size, steps, gen):
                with autocast(dev, cfg.precision):
                    logits = head(model(data.batch(idx))).float()
                on_dev = idx.to(dev)
                loss = task_loss(data.task, logits, data.targets[on_dev])
                if distill_logits is not None:
                    loss = loss + hooks.distill_weight * mutual_distillation_loss(
                        logits, distill_logits[on_dev], temperature=hooks.distill_temperature,
                        kind=kd_kind,
                    )
                if hooks.extra_loss is not None:
                    loss = loss + hooks.extra_loss(named)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"local training diverged (loss={loss.item()})")
                opt.zero_grad(set_to_none=True)
                _step(loss, opt, named, clip, hooks, cfg, scaler)
                total += float(loss.detach())
    finally:
        set_frozen_companion(model, None)
        if hooks.base_delta:
            set_base_delta(model, None)
    trained = model.trainable_state()
    trained_head = {k: v.detach().to("cpu", copy=True) for k, v in head.state_dict().items()}
    return trained, trained_head, {"loss": total / max(steps, 1), "steps": float(steps)}


def _step(loss, opt, named, clip, hooks: LocalHooks, cfg: TrainConfig, scaler) -> None:
    """Backward, hook gradient correction, clipping and the optimizer step (fp16 CUDA: scaled)."""
    if scaler is None:
        loss.backward()
    else:
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
    if hooks.grad_correction is not None:
        for n, p in named.items():
            if p.grad is not None:
                p.grad = hooks.grad_correction(n, p.grad)
    if cfg.max_grad_norm > 0:
        nn.utils.clip_grad_norm_(clip, cfg.max_grad_norm)
    if scaler is None:
        opt.step()
    else:
        scaler.step(opt)
        scaler.update()
