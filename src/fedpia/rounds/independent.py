"""Hospitals that fine-tuned their own adapters before federating (issue 14, "where alignment
is the point").

Each client starts from an adapter drawn from the PEFT method's own initialisation with its
*own* seed (so hidden units of different clients share no order), trains it for ``epochs`` local
epochs on its local data alone (with its own head), and only then joins the federation. This
is the regime where permutation symmetry actually separates FedAvg from an aligned fusion: with
a shared initialisation the units of all clients stay in correspondence.

Round layer: with ``sim.independent_epochs = E > 0`` the run starts from
:func:`independent_clients` and :func:`round_zero` fuses their adapters once before round 1
("round 0", the one-shot fusion) through :func:`fedpia.rounds.server_step` — the same
screening, bounded influence and aggregation as every round — and records it as round 0.
:func:`independent_adapter` alone gives one client's initial adapter. Seeds come from the named
stream ``"independent"`` (:mod:`fedpia.rounds.seeds`): client k's initialisation is
``seed_for(seed, "independent", k)`` and its batch order ``seed_for(seed, "independent", k, 1)``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch

from fedpia.client.runtime import ClientRuntime
from fedpia.client.train import TrainConfig, train_local
from fedpia.rounds.seeds import seed_for
from fedpia.strategies.base import ClientState, ClientUpdate, ServerState, State


def _check_peft(model_cfg) -> None:
    from fedpia.rounds.config import INDEPENDENT_PEFT

    if model_cfg.peft not in INDEPENDENT_PEFT:
        raise ValueError(f"independent initialisation needs an adapter with hidden units "
                         f"(houlsby, parallel, compacter, lora), got peft={model_cfg.peft!r}")


def independent_adapter(model_cfg, k: int, *, seed: int) -> State:
    """Client ``k``'s adapter from the PEFT initialisation seeded ``seed_for(seed, "independent", k)``.

    It is the trainable state of ``build_model(model_cfg with that seed)``: same keys and shapes
    as the shared model's adapter, an independent draw (its backbone is discarded; with
    ``model_cfg.pretrained`` the backbone is the same checkpoint anyway). Only adapter methods
    with hidden units (houlsby, parallel, compacter, lora) are accepted: for the others an
    "independent initialisation" would re-draw backbone weights.
    """
    from fedpia.models import build_model

    _check_peft(model_cfg)
    cfg = dataclasses.replace(model_cfg, seed=seed_for(seed, "independent", k) % (2**31))
    return {key: v.detach().clone() for key, v in build_model(cfg).trainable_state().items()}


def independent_adapters(model_cfg, n: int, *, seed: int) -> list[State]:
    """:func:`independent_adapter` for clients ``0 .. n-1``."""
    _check_peft(model_cfg)
    return [independent_adapter(model_cfg, k, seed=seed) for k in range(n)]


def train_alone(
    rt: ClientRuntime, adapter: State, head: State, *, epochs: int, train: TrainConfig, seed: int
) -> tuple[State, State]:
    """``epochs`` passes of local training on ``rt``'s training split, constant ``train.lr``."""
    if epochs < 1:
        raise ValueError(f"independent training needs epochs >= 1, got {epochs}")
    cfg = dataclasses.replace(train, local_epochs=epochs, local_steps=0)
    trained, head, _ = train_local(rt.model, rt.head, rt.train, start=adapter, head_state=head,
                                   cfg=cfg, lr=train.lr, seed=seed)
    return trained, head


def independent_client(
    model_cfg, rt: ClientRuntime, head: State, *, epochs: int, train: TrainConfig, seed: int
) -> ClientState:
    """One client (e.g. one Flower node): its own adapter (:func:`independent_adapter` for
    ``rt.index``) trained ``epochs`` epochs alone from ``head``; ``rounds_trained`` stays 0."""
    adapter = independent_adapter(model_cfg, rt.index, seed=seed)
    trained, head = train_alone(rt, adapter, head, epochs=epochs, train=train,
                                seed=seed_for(seed, "independent", rt.index, 1))
    return ClientState(adapter=trained, head=head)


def independent_clients(
    model_cfg, runtimes: Sequence[ClientRuntime], *, epochs: int, train: TrainConfig, seed: int
) -> dict[str, ClientState]:
    """:func:`independent_client` for every runtime, heads from ``rt.initial_head()`` (call this
    before any training on them: the head module holds the last trained head)."""
    return {rt.name: independent_client(model_cfg, rt, rt.initial_head(), epochs=epochs,
                                        train=train, seed=seed) for rt in runtimes}


def uploads(states: dict[str, ClientState], runtimes: Sequence[ClientRuntime]) -> list[ClientUpdate]:
    """The clients' adapters as round-0 updates (weights = training examples) for the one-shot
    fusion ``strategy.aggregate(server, uploads(...), ctx)``."""
    return [ClientUpdate(client=rt.name, state=states[rt.name].adapter,
                         num_examples=len(rt.train)) for rt in runtimes]


def round_zero(rules, server: ServerState, states: dict[str, ClientState],
               runtimes: Sequence[ClientRuntime]):
    """The one-shot fusion of the independently trained adapters ``states`` as round 0:
    :func:`fedpia.rounds.server_step` over every client's upload (all clients chosen; the
    global ``server.adapter`` is the common initial adapter the norm bound is measured from).
    Returns its :class:`~fedpia.rounds.server.RoundOutcome` (the engine adds ``eval``)."""
    from fedpia.rounds.server import server_step

    return server_step(rules, server, 0, chosen=[(rt.index, rt.name) for rt in runtimes],
                       updates=uploads(states, runtimes), failed={},
                       payload={"adapter": server.adapter})


def label_strings(rt: ClientRuntime, split) -> list[str]:
    """True answers of ``split`` (a ``ClientSplit`` part) as label strings, VQA normalised."""
    from fedpia.data.schema import normalize_answer

    return [normalize_answer(s.target) if rt.task == "vqa" else str(s.target) for s in split]


def mapped_probs(probs: torch.Tensor, source: Sequence[str], target: Sequence[str]) -> torch.Tensor:
    """Class probabilities ``[N, |source|]`` re-indexed onto ``target`` labels (0 where absent)."""
    index = {lab: j for j, lab in enumerate(source)}
    out = torch.zeros(probs.shape[0], len(target), dtype=probs.dtype)
    for i, lab in enumerate(target):
        if lab in index:
            out[:, i] = probs[:, index[lab]]
    return out


def string_accuracy(probs: torch.Tensor, labels: Sequence[str], truth: Sequence[str]) -> float:
    """Share of samples whose arg-max label string equals the true answer string."""
    pred = probs.argmax(dim=1).tolist()
    hits = sum(labels[p] == t for p, t in zip(pred, truth, strict=True))
    return hits / max(len(truth), 1) if truth else math.nan
