"""Baseline strategies: FedAvg (over any PEFT method), local-only training.

More baselines (FedProx, SCAFFOLD, FedOpt, Ditto, LoRA-specific aggregators, FedDAT) are wired
from the pure math in ``fedpia.aggregation``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from fedpia.strategies.base import (
    ActivationProbe,
    ClientState,
    ClientUpdate,
    LocalHooks,
    RoundContext,
    ServerState,
    State,
    Strategy,
)
from fedpia.strategies.registry import register_strategy


@register_strategy("fedavg")
@dataclass
class FedAvg(Strategy):
    """FedAvg (McMahan et al. 2017): weighted by example counts. Paired with any PEFT method
    (Houlsby/Parallel/Compacter/LoRA/Bias/LayerNorm/prompt/classifier-only/full fine-tuning)."""


@register_strategy("local")
@dataclass
class LocalOnly(Strategy):
    """No federation: every client keeps training its own adapter; the server state is unused."""

    def client_start(
        self,
        payload: Mapping[str, State],
        client: ClientState,
        ctx: RoundContext,
        *,
        probe: ActivationProbe | None = None,
    ) -> tuple[State, LocalHooks]:
        own = client.adapter if client.adapter is not None else payload["adapter"]
        return {k: v.clone() for k, v in own.items()}, LocalHooks()

    def aggregate(
        self, server: ServerState, updates: list[ClientUpdate], ctx: RoundContext
    ) -> tuple[ServerState, dict[str, Any]]:
        return replace(server, round=ctx.round), {}
