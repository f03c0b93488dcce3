"""FedPIA: Permuting and Integrating Adapters (Saha et al., AAAI 2025, arXiv:2412.14424).

Server: FedAvg anchor -> OT-align every client adapter to it (layerwise) -> integrate with
weights w_k ∝ p_k exp(-γ d_k) (``fedpia.align.fedpia_server``).
Client (stateful): from round 2 on, permute the received global adapter G onto the client's own
adapter L (activation cost on ``probe_samples`` local samples by default: 256, where plans
agree across probe batches on ≥ 95% of units, docs/align.md; 0 = the adapter width m, the
paper's m samples; ``probe="forward"``, the default, runs the probe batch through the model once
with G and once with L, as the paper does; ``probe="recorded"`` takes the pooled adapter inputs
of the last m samples of the client's previous local training and evaluates both adapters on
them, no forward pass) and merge
``start = λ perm(G) + (1-λ) L`` (``fedpia.align.fedpia_client_step``); or, with
``integration="parallel"``, train L with the frozen perm(G) beside it (outputs summed).
Ablations: ``server_pia=False`` (client-only), ``client_pia=False`` (server-only: clients start
from G, no permutation and no mix), ``client_permute=False`` (the λ-mix without permutation),
both PIA steps off (= FedAvg), ``client_cost="weight"``, ``distance="layer"``,
``anchor="largest"`` (align to the largest client, for clients with no shared initialisation).

Every round record carries diagnostics (JSON, per unit group and client): the server's
``fedpia_server`` statistics in the aggregate diagnostics, the client's alignment through
``LocalHooks.diagnostics`` (see :func:`server_diagnostics`, :func:`client_diagnostics`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from fedpia.align import (
    ClientStep,
    ServerResult,
    fedavg,
    fedpia_client_step,
    fedpia_server,
    mix_states,
)
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
    "distance": ("global", "layer"),
    "anchor": ("fedavg", "largest"),
    "probe": ("forward", "recorded"),
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
    probe_samples: int = 256  # samples for the activation cost (0 = the adapter width, paper)
    probe: str = "forward"  # probe forwards with L and G (paper), or "recorded" inputs (fast)
    client_permute: bool = True  # False: the client's λ-mix without the permutation (control)
    client_margin: float = 0.0  # accept a client permutation only if it cuts the cost this much
    distance: str = "global"  # integration weights from d_k over all groups, or per "layer"
    anchor: str = "fedavg"  # server's first anchor: FedAvg, or the "largest" client's units

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
        if not 0.0 <= self.client_margin < 1.0:
            raise ValueError(f"fedpia.client_margin must be in [0, 1), got {self.client_margin}")

    @property
    def needs_probe(self) -> bool:  # type: ignore[override]
        return self.client_pia and self.client_permute and self.client_cost == "activation"

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
        if not self.client_permute:  # control: the same λ-mix, G in its own unit order
            return mix_states(glob, local, self.mix), LocalHooks()
        acts: dict[str, Any] = {}
        if self.client_cost == "activation":
            if probe is None:
                raise ValueError("fedpia client PIA with activation cost needs an ActivationProbe")
            acts = {"local_acts": probe(local), "global_acts": probe(glob)}
        mix = 1.0 if self.integration == "parallel" else self.mix
        step = fedpia_client_step(local, glob, mix=mix, cost=self.client_cost,
                                  margin=self.client_margin, **acts)
        diag = client_diagnostics(step, cost=self.client_cost, margin=self.client_margin)
        if self.integration == "parallel":
            return ({k: v.clone() for k, v in local.items()},
                    LocalHooks(parallel_frozen=step.state, diagnostics=diag))
        return step.state, LocalHooks(diagnostics=diag)

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
            distance=self.distance,
            anchor=self.anchor,
        )
        diag = server_diagnostics(res, [u.client for u in updates])
        return replace(server, adapter=res.state, round=ctx.round), diag


def _r(x: float) -> float | None:
    """6 significant digits (records stay small); nan/inf become None (valid JSON)."""
    return float(f"{x:.6g}") if math.isfinite(x) else None


def server_diagnostics(res: ServerResult, clients: list[str]) -> dict[str, Any]:
    """JSON-friendly diagnostics of a :class:`~fedpia.align.ServerResult`.

    ``clients`` order every list; ``distances`` (``d_k``), ``weights`` (``w_k``) and
    ``fedavg_weights`` (``p_k``) per client; ``groups``: ``{group: {width, moved, cost_before,
    cost_after, gain, distance[, weights]}}``, each a list over clients (``weights`` only when
    they differ from the global ``w_k``, i.e. ``distance="layer"``). ``ServerResult.changed``
    (the same numbers as ``moved``, one dict per client) is left out to keep records small.
    """
    groups = {}
    for name, st in res.groups.items():
        g = {"width": st.width, "moved": st.moved,
             "cost_before": [_r(x) for x in st.cost_before],
             "cost_after": [_r(x) for x in st.cost_after],
             "gain": [_r(x) for x in st.gain],
             "distance": [_r(x) for x in st.distance]}
        if st.weights != res.weights:
            g["weights"] = [_r(x) for x in st.weights]
        groups[name] = g
    return {"clients": clients, "distances": [_r(x) for x in res.distances],
            "weights": [_r(x) for x in res.weights],
            "fedavg_weights": [_r(x) for x in res.fedavg_weights],
            "iterations": res.iterations, "groups": groups}


def client_diagnostics(step: ClientStep, *, cost: str, margin: float) -> dict[str, Any]:
    """JSON-friendly diagnostics of one client step (lists indexed like ``groups``).

    ``widths``: the local adapter's group widths; ``moved``: units of G the applied plan moves;
    ``proposed_moved``: units the optimal plan would
    move; ``cost_before`` / ``cost_after``: transport cost of the identity and of the optimal
    plan; ``gain``: ``1 − after/before``; ``accepted``: whether the plan passed the margin.
    """
    al = step.alignment
    names = list(al.proposed)
    prop = [al.proposed[n] for n in names]
    return {"cost": cost, "margin": margin, "groups": names,
            "widths": [int(al.plans[n].plan.shape[1]) for n in names],
            "moved": [al.plans[n].changed for n in names],
            "proposed_moved": [gp.changed for gp in prop],
            "cost_before": [_r(math.nan if gp.identity_cost is None else gp.identity_cost)
                            for gp in prop],
            "cost_after": [_r(gp.cost) for gp in prop],
            "gain": [_r(gp.gain) for gp in prop],
            "accepted": [n not in al.rejected for n in names]}
