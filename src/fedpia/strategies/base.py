"""Strategy protocol: explicit server and client state, pure hooks.

A strategy is a small object with no hidden mutable state. Every hook takes the state it needs and
returns new state; the in-process simulator (``fedpia.sim``) and the Flower apps
(``fedpia.flower``) are thin drivers that call the same hooks in the same order:

    server = strategy.server_init(initial_adapter)                       # once
    for each round r = 1..R:
        payload = strategy.client_payload(server)                         # server -> clients
        # on client k:
        start, hooks = strategy.client_start(payload, cstate_k, ctx, probe=...)  # client PIA,
                                                                  # prox / scaffold / distill hooks
        trained = <local training from `start` with hooks>
        second  = strategy.second_pass(trained, payload, cstate_k, ctx)  # optional 2nd training
        update_k, cstate_k = strategy.client_finish(trained, payload, cstate_k, ctx, second=...)
        # back on the server:
        server, diag = strategy.aggregate(server, [update_k ...], ctx)

``State`` is a named state dict (``dict[str, Tensor]``); names are never flattened away.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch

State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class RoundContext:
    """What a hook may know about the round: 1-based round index, totals and a seed.

    ``seed``: this hook's own seed (named streams of ``fedpia.rounds.seeds``): on a client, the
    seed of its local training in this round (stream ``client``; the local training loop draws
    batch order and dropout from it); on the server, stream ``server``. A strategy drawing
    random numbers seeds its own ``torch.Generator`` from it.
    """

    round: int
    num_rounds: int
    seed: int
    client: str = ""
    num_examples: int = 0
    local_steps: int = 0
    lr: float = 0.0
    num_clients: int = 0


@dataclass
class ClientState:
    """Everything a (stateful) client keeps between rounds.

    ``adapter``: the client's own adapter after its last local training (None before round 1).
    ``head``: the client-local task head. ``extra``: strategy-specific named states (SCAFFOLD
    control variate, Ditto personal model, FedDAT local teacher ...).
    """

    adapter: State | None = None
    head: State | None = None
    extra: dict[str, State] = field(default_factory=dict)
    rounds_trained: int = 0


@dataclass
class ServerState:
    """Global adapter plus strategy-specific named server state (FedOpt moments, SCAFFOLD c)."""

    adapter: State
    round: int = 0
    extra: dict[str, State] = field(default_factory=dict)


@dataclass
class ClientUpdate:
    """What a client uploads: its adapter (or the part the strategy shares) and example count."""

    client: str
    state: State
    num_examples: int
    extra: dict[str, State] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class LocalHooks:
    """Modifications of the local objective for one round.

    ``extra_loss(named_params) -> Tensor`` is added to the task loss (FedProx, Ditto).
    ``grad_correction(name, grad) -> grad`` is applied before the optimizer step (SCAFFOLD).
    ``trainable(name) -> bool`` can freeze part of the adapter (FFA-LoRA freezes lora_A).
    ``distill_teacher``: an adapter whose predictions (with the client's head, computed once on
    the training split before the pass) are a distillation target (FedDAT), weighted by
    ``distill_weight`` at ``distill_temperature``; ``parallel_frozen``: a frozen adapter added beside the trainable one (FedPIA's
    parallel integration). ``diagnostics``: JSON-friendly facts about the client step (e.g.
    FedPIA's client alignment), stored in the client's round info under ``"pia"``.
    """

    extra_loss: Callable[[Mapping[str, torch.Tensor]], torch.Tensor] | None = None
    grad_correction: Callable[[str, torch.Tensor], torch.Tensor] | None = None
    trainable: Callable[[str], bool] | None = None
    distill_teacher: State | None = None
    distill_weight: float = 1.0
    distill_temperature: float = 1.0
    parallel_frozen: State | None = None
    base_delta: State | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)


class ActivationProbe:
    """Callable giving ``{group: Tensor[n_samples, width]}`` activations of an adapter state.

    Built by the driver for a client (``fedpia.client.runtime.build_probe``): with
    ``Strategy.probe="forward"`` it runs a fixed random batch of the client's training data
    through the shared model with the given adapter loaded; with ``"recorded"`` it applies the
    adapter's unit-producing layers to the pooled adapter inputs recorded during the client's
    last local training (the same inputs for every adapter, no forward pass).
    """

    def __init__(self, fn: Callable[[State], dict[str, torch.Tensor]]):
        self._fn = fn

    def __call__(self, adapter: State) -> dict[str, torch.Tensor]:
        return self._fn(adapter)


class Strategy:
    """Base class = plain FedAvg over the uploaded adapters (weights ∝ number of examples).

    What a strategy needs from the engines is declared here, not discovered by the drivers:
    ``needs_probe`` (activations on the client, see :meth:`probe_size`).
    """

    name = "base"
    #: True when the strategy needs activations of local/global adapters on the client.
    needs_probe = False
    #: m, local samples of the activation probe (0 = the adapter width); a strategy with a
    #: client-side activation cost exposes it as a knob (FedPIA's ``probe_samples`` field)
    probe_samples = 0
    #: where the probe's adapter inputs come from: ``"forward"`` (a forward pass of a probe batch
    #: with each adapter loaded) or ``"recorded"`` (pooled adapter inputs recorded during the
    #: client's last local training, ``fedpia.models.InputRecorder``; no forward pass)
    probe = "forward"

    def probe_size(self, adapter: State) -> int:
        """Samples m of the client's activation probe for ``adapter``: 0 when the strategy needs
        no probe, else ``probe_samples`` or, when that is 0, the widest unit group of ``adapter``
        (the paper's m = adapter width; 16 when the adapter has no unit groups)."""
        if not self.needs_probe:
            return 0
        if self.probe_samples:
            return int(self.probe_samples)
        from fedpia.align import unit_groups

        return max((g.width for g in unit_groups(adapter)), default=16)

    def server_init(self, adapter: State) -> ServerState:
        return ServerState(adapter={k: v.detach().clone() for k, v in adapter.items()})

    def client_payload(self, server: ServerState) -> dict[str, State]:
        return {"adapter": server.adapter}

    def client_start(
        self,
        payload: Mapping[str, State],
        client: ClientState,
        ctx: RoundContext,
        *,
        probe: ActivationProbe | None = None,
    ) -> tuple[State, LocalHooks]:
        """The adapter local training starts from, and the hooks that shape the local objective."""
        return {k: v.clone() for k, v in payload["adapter"].items()}, LocalHooks()

    def second_pass(
        self,
        trained: State,
        payload: Mapping[str, State],
        client: ClientState,
        ctx: RoundContext,
    ) -> tuple[State, LocalHooks] | None:
        """An optional second local training (Ditto's personal model, FedDAT's shared adapter):
        ``(start, hooks)`` or None. Its result reaches :meth:`client_finish` as ``second``."""
        return None

    def client_finish(
        self,
        trained: State,
        payload: Mapping[str, State],
        client: ClientState,
        ctx: RoundContext,
        *,
        second: State | None = None,
    ) -> tuple[ClientUpdate, ClientState]:
        update = ClientUpdate(client=ctx.client, state=trained, num_examples=ctx.num_examples)
        new_client = replace(client, adapter=trained, rounds_trained=client.rounds_trained + 1)
        return update, new_client

    def aggregate(
        self, server: ServerState, updates: list[ClientUpdate], ctx: RoundContext
    ) -> tuple[ServerState, dict[str, Any]]:
        from fedpia.align import fedavg

        if not server.adapter:  # nothing shared (classifier-only: heads stay local)
            return replace(server, round=ctx.round), {}
        avg = fedavg([u.state for u in updates], [float(u.num_examples) for u in updates])
        return replace(server, adapter=avg, round=ctx.round), {}

    def config(self) -> dict[str, Any]:
        """The strategy's knobs (for results provenance)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}
