"""The client side of the round protocol (both engines call exactly these functions).

:func:`client_step` is one client's round: simulated failure draw, the injected faults' ``drop``,
local training via :func:`fedpia.client.runtime.client_round` with seeds from the named streams,
then the other injected faults on the upload. :func:`evaluate_client` gives the evaluation views
of a client: ``personalized`` (its own adapter + head) and ``global`` (the global view of the
server state, :func:`global_view`, + its head).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from fedpia.client.runtime import ClientRuntime, client_round, evaluate_adapter
from fedpia.client.train import round_lr
from fedpia.rounds.build import RoundRules
from fedpia.rounds.faults import ClientFailure, apply_fault, faults_for
from fedpia.rounds.privacy import privatize_upload
from fedpia.rounds.seeds import seed_for
from fedpia.strategies.base import ClientState, ClientUpdate, RoundContext, ServerState, State


def simulated_failure(rules: RoundRules, round_: int, index: int) -> bool:
    """Whether client ``index`` crashes in ``round_`` (``sim.failure_prob``, stream ``failure``)."""
    p = rules.sim.failure_prob
    return p > 0 and np.random.default_rng(seed_for(rules.sim.seed, "failure", round_, index)).random() < p


def client_context(rules: RoundRules, rt: ClientRuntime, round_: int) -> RoundContext:
    """The client's RoundContext: its training seed (stream ``client``), lr, steps, counts."""
    sim = rules.sim
    return RoundContext(
        round=round_,
        num_rounds=sim.rounds,
        seed=seed_for(sim.seed, "client", round_, rt.index),
        client=rt.name,
        num_examples=len(rt.train),
        local_steps=rules.train.steps_for(len(rt.train)),
        lr=round_lr(rules.train, round_, sim.rounds),
        num_clients=rules.num_clients,
    )


def client_step(
    rules: RoundRules,
    rt: ClientRuntime,
    payload: Mapping[str, State],
    cstate: ClientState,
    round_: int,
    *,
    noise_secret: bytes | None = None,
) -> tuple[ClientUpdate, ClientState]:
    """One client's round. Returns (upload, new client state); ``upload.metrics`` holds the
    client's training info (loss, steps, lr, start_shift, timings, rounds_trained).

    With ``dp.mode="local"`` the upload is clipped and noised
    (:func:`fedpia.rounds.privacy.privatize_upload`, noise from ``(sim.seed, round, client,
    noise_secret)``; ``loss`` and ``start_shift`` are not uploaded) while the returned client
    state keeps the un-noised adapter. Injected faults then corrupt the upload (they model what
    reaches the server).

    Raises :class:`ClientFailure` for a simulated crash or an injected ``drop`` (nothing is
    trained, the client state is unchanged)."""
    faults = faults_for(rules.faults, round_, rt.index, rt.name)
    if simulated_failure(rules, round_, rt.index):
        raise ClientFailure("simulated client failure")
    if any(f.kind == "drop" for f in faults):
        raise ClientFailure("injected fault: drop")
    sim = rules.sim
    update, new_state, info = client_round(
        rt, rules.strategy, payload, cstate, client_context(rules, rt, round_),
        train_cfg=rules.train,
        probe_size=rules.probe_size,
        probe_seed=seed_for(sim.seed, "probe", round_, rt.index),
        second_seed=seed_for(sim.seed, "second", round_, rt.index),
    )
    metrics = {**info, **update.metrics, "rounds_trained": new_state.rounds_trained}
    update = privatize_upload(rules, replace(update, metrics=metrics), payload["adapter"],
                              round_, secret=noise_secret)
    for fault in faults:
        update = apply_fault(fault, update, payload["adapter"])
    return update, new_state


def initial_client_state(rt: ClientRuntime) -> ClientState:
    """A client before its first round: no adapter, its freshly initialised head."""
    return ClientState(head=rt.initial_head())


def global_view(server: ServerState) -> dict[str, State]:
    """What clients evaluate as the global model: the adapter, plus the base-weight deltas of
    strategies that merge LoRA products into the frozen weights (FLoRA, FedEx-LoRA)."""
    view = {"adapter": server.adapter}
    if server.extra.get("base_delta"):
        view["base_delta"] = server.extra["base_delta"]
    return view


def evaluate_client(
    rt: ClientRuntime, cstate: ClientState, view: Mapping[str, State], *, eval_global: bool
) -> dict[str, Any]:
    """``{"personalized": metrics, "global": metrics}`` of one client on its test split
    (personalized only once it has trained; global only with ``eval_global``)."""
    out: dict[str, Any] = {}
    if cstate.adapter is not None:
        out["personalized"] = evaluate_adapter(rt, cstate.adapter, cstate.head,
                                               base_delta=cstate.extra.get("base_delta"))
    if eval_global and view.get("adapter") is not None:
        out["global"] = evaluate_adapter(rt, view["adapter"], cstate.head,
                                         base_delta=view.get("base_delta"))
    return out
