"""FedPIA: Permuting and Integrating Adapters (Saha et al., AAAI 2025, arXiv:2412.14424).

Server: FedAvg anchor -> OT-align every client adapter to it (layerwise) -> integrate with
weights w_k ∝ p_k exp(-γ d_k) (``fedpia.align.fedpia_server``).
Client (stateful): from round 2 on, permute the received global adapter G onto the client's own
adapter L (activation cost on m local samples by default) and merge
``start = λ perm(G) + (1-λ) L`` (``fedpia.align.fedpia_client``); or, with
``integration="parallel"``, train L with the frozen perm(G) beside it (outputs summed).
Ablations: ``server_pia=False`` (client-only), ``client_pia=False`` (server-only), both False
(= FedAvg), ``client_cost="weight"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, is_dataclass, replace
from typing import Any

from fedpia.align import fedavg, fedpia_client, fedpia_server
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

_CHOICES = {
    "client_cost": ("activation", "weight"),
    "weighting": ("normalized", "paper"),
    "solver": ("exact", "sinkhorn"),
    "integration": ("merge", "parallel"),
}


@register_strategy("fedpia")
@dataclass
class FedPIA(Strategy):
    """FedPIA: align and integrate adapters on the server and the clients (paper recipe + ablations).

    The recipe, defaults and options: docs/align.md (server and client steps).
    """

    server_pia: bool = True
    client_pia: bool = True
    client_cost: str = "activation"
    gamma: float = 1.0
    weighting: str = "normalized"
    iterations: int = 1
    solver: str = "exact"
    mix: float = 0.5
    integration: str = "merge"
    probe_samples: int = 0  # m samples for the activation cost; 0 = the adapter width

    def __post_init__(self) -> None:
        for knob, allowed in _CHOICES.items():
            if getattr(self, knob) not in allowed:
                raise ValueError(f"fedpia.{knob}={getattr(self, knob)!r}; allowed: {allowed}")
        if not 0.0 <= self.mix <= 1.0:
            raise ValueError(f"fedpia.mix must be in [0, 1], got {self.mix}")
        if self.gamma < 0:
            raise ValueError(f"fedpia.gamma must be >= 0, got {self.gamma}")
        if self.iterations < 1:
            raise ValueError(f"fedpia.iterations must be >= 1, got {self.iterations}")
        if self.probe_samples < 0:
            raise ValueError(f"fedpia.probe_samples must be >= 0, got {self.probe_samples}")

    @property
    def needs_probe(self) -> bool:  # type: ignore[override]
        return self.client_pia and self.client_cost == "activation"

    def client_start(
        self,
        payload: Mapping[str, State],
        client: ClientState,
        ctx: RoundContext,
        *,
        probe: ActivationProbe | None = None,
    ) -> tuple[State, LocalHooks]:
        glob = payload["adapter"]
        local = client.adapter
        if not self.client_pia or local is None:  # round 1 (or ablation): plain start from G
            return {k: v.clone() for k, v in glob.items()}, LocalHooks()
        acts: dict[str, Any] = {}
        if self.client_cost == "activation":
            if probe is None:
                raise ValueError("fedpia client PIA with activation cost needs an ActivationProbe")
            acts = {"local_acts": probe(local), "global_acts": probe(glob)}
        if self.integration == "parallel":
            permuted = fedpia_client(local, glob, mix=1.0, cost=self.client_cost, **acts)
            return {k: v.clone() for k, v in local.items()}, LocalHooks(parallel_frozen=permuted)
        start = fedpia_client(local, glob, mix=self.mix, cost=self.client_cost, **acts)
        return start, LocalHooks()

    def aggregate(
        self, server: ServerState, updates: list[ClientUpdate], ctx: RoundContext
    ) -> tuple[ServerState, dict[str, Any]]:
        states = [u.state for u in updates]
        weights = [float(u.num_examples) for u in updates]
        if not self.server_pia:
            return replace(server, adapter=fedavg(states, weights), round=ctx.round), {}
        res = fedpia_server(
            states,
            weights,
            gamma=self.gamma,
            weighting=self.weighting,
            iterations=self.iterations,
            solver=self.solver,
        )
        return replace(server, adapter=res.state, round=ctx.round), _diagnostics(res, updates)


def _diagnostics(res: Any, updates: list[ClientUpdate]) -> dict[str, Any]:
    """JSON-friendly diagnostics of a ServerResult (everything but the state)."""
    raw = asdict(res) if is_dataclass(res) else dict(vars(res))
    raw.pop("state", None)
    out: dict[str, Any] = {"clients": [u.client for u in updates]}
    for key, value in raw.items():
        out[key] = _jsonable(value)
    return out


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
