"""FedPIA server step: align every client adapter to a FedAvg anchor, then integrate.

Recipe (Saha et al., AAAI 2025, https://arxiv.org/abs/2412.14424; docs/align.md), for K clients
with example weights ``p_k`` and every unit group ``g`` ("layerwise"):

1. anchor ``A = Σ_k p_k W_k`` (FedAvg; clients of unequal widths: see
   :class:`~fedpia.align.solvers.GeneralGroup`);
2. plans ``T_{k,g}`` between each client's units and the anchor's (cost on incoming weights +
   bias; ``include_outgoing`` appends outgoing weights), aligned client ``W̃_k`` by the OTFusion
   map (a permutation for equal widths with the exact solver);
3. ``d_k = ||W̃_k − A|| / ||A||`` over the tensors of all unit groups (``distance="layer"``: one
   ``d_{k,g}`` per group, relative to ``||A_g||``);
4. ``w_k ∝ p_k exp(−γ d_k)`` (``"normalized"``, Σ w_k = 1) or ``w_k = exp(−γ d_k) / K``
   (``"paper"``);
5. ``W_G = Σ_k w_k W̃_k`` for every key (keys in no group: ``Σ_k w_k W_k``);
   ``iterations > 1``: ``A ← W_G`` and repeat 2–5 (free-support barycenter iterations).

:func:`fedpia_server` is that loop. Each group is handled by one solver of
:mod:`fedpia.align.solvers` (``anchor`` / ``align`` / ``integrate``): the batched, chunked exact
fast path for equal widths, per-client plans otherwise; both give the same result.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from fedpia.align.batched import Buffers, stack_key, weighted
from fedpia.align.checks import (
    check_choice,
    check_finite_sum,
    check_states,
    check_weights,
    client_groups,
)
from fedpia.align.groups import UnitGroup
from fedpia.align.solvers import BatchedGroup, GeneralGroup, GroupFit, Knobs
from fedpia.align.transport import SOLVERS, relative_gain

log = logging.getLogger(__name__)
State = dict[str, torch.Tensor]
WEIGHTINGS = ("normalized", "paper")
DISTANCES = ("global", "layer")
ANCHORS = ("fedavg", "largest")


@dataclass(frozen=True)
class GroupStats:
    """Diagnostics of one unit group in the last iteration (lists indexed by client).

    ``moved``: anchor units whose source unit has another index (0 = identity alignment);
    ``cost_before`` / ``cost_after``: transport cost ``<T, C_k>`` of the identity and of the plan
    (nan where the client's width differs from the anchor's); ``distance``: ``d_{k,g} =
    ||W̃_{k,g} − A_g|| / ||A_g||``; ``weights``: the integration weights used for this group
    (the global ``w_k`` unless ``distance="layer"``).
    """

    width: int
    moved: list[int]
    cost_before: list[float]
    cost_after: list[float]
    distance: list[float]
    weights: list[float]

    @property
    def gain(self) -> list[float]:
        """Relative cost reduction of the alignment, ``1 − after / before``, per client."""
        return [relative_gain(b, a) for b, a in zip(self.cost_before, self.cost_after,
                                                     strict=True)]


@dataclass(frozen=True)
class ServerResult:
    """Global state and diagnostics of the last iteration (all lists are indexed by client).

    ``distances``: ``d_k``; ``weights``: ``w_k``; ``fedavg_weights``: ``p_k``; ``changed``: per
    client ``{group: number of anchor units whose source unit is not the same index}`` (0
    everywhere = identity alignment); ``groups``: per group :class:`GroupStats`.
    """

    state: State
    distances: list[float]
    weights: list[float]
    changed: list[dict[str, int]]
    iterations: int
    fedavg_weights: list[float] = field(default_factory=list)
    groups: dict[str, GroupStats] = field(default_factory=dict)


def _integration_weights(p: torch.Tensor, d: torch.Tensor, gamma: float, weighting: str):
    """``w_k ∝ p_k e^{−γ d_k}`` normalised (clients with ``p_k = 0`` get 0), or the paper's
    literal ``e^{−γ d_k} / K``."""
    if weighting == "paper":
        return torch.exp(-gamma * d) / len(d)
    logits = torch.where(p > 0, p.log(), torch.tensor(-math.inf, dtype=p.dtype)) - gamma * d
    return torch.softmax(logits, dim=0)


def _check_knobs(gamma, weighting, iterations, solver, distance, anchor) -> None:
    check_choice("weighting", weighting, WEIGHTINGS)
    check_choice("solver", solver, SOLVERS)
    check_choice("distance", distance, DISTANCES)
    check_choice("anchor", anchor, ANCHORS)
    if not (math.isfinite(gamma) and gamma >= 0):
        raise ValueError(f"gamma must be finite and >= 0, got {gamma}")
    if int(iterations) != iterations or iterations < 1:
        raise ValueError(f"iterations must be an integer >= 1, got {iterations}")


def _solvers(states, groups, knobs: Knobs) -> list[BatchedGroup | GeneralGroup]:
    """One solver per group: batched for the exact solver on equal widths, listed first (the
    order in which the groups' distances are summed), then the per-client ones."""
    groups_k = client_groups(states, groups)
    bufs = Buffers()
    general = [GeneralGroup(states, groups_k, g, knobs) for g in groups]
    fast = [BatchedGroup(states, g, knobs, bufs) for g, gg in zip(groups, general, strict=True)
            if knobs.solver == "exact" and not gg.uneven]
    names = {s.g.name for s in fast}
    return fast + [gg for gg in general if gg.g.name not in names]


def _sq_norms(anchor: Mapping[str, torch.Tensor], groups: Sequence[UnitGroup]) -> dict[str, float]:
    """``||A_key||²`` (float64) of every grouped key, in group order."""
    return {key: float(torch.linalg.vector_norm(anchor[key], dtype=torch.float64) ** 2)
            for g in groups for key in g.keys}


def _rel(sq: torch.Tensor, norm_sq: float) -> torch.Tensor:
    """``sqrt(sq) / ||A||`` (the absolute distance when the anchor is 0)."""
    norm = math.sqrt(norm_sq)
    return sq.sqrt() / (norm if norm > 0 else 1.0)


def _owner(key: str, names: Sequence[str]) -> str | None:
    """The group whose name prefixes a loose key (e.g. ``<p>.up.bias`` of group ``<p>``)."""
    return next((n for n in names if key.startswith(n + ".")), None)


def fedpia_server(
    states: Sequence[Mapping[str, torch.Tensor]],
    weights: Sequence[float] | torch.Tensor,
    *,
    gamma: float = 1.0,
    weighting: str = "normalized",
    iterations: int = 1,
    solver: str = "exact",
    squared: bool = False,
    include_outgoing: bool = False,
    reg: float = 0.05,
    distance: str = "global",
    anchor: str = "fedavg",
) -> ServerResult:
    """FedPIA server aggregation of client adapters (module docstring gives the recipe).

    ``states``: K named states (same keys; group members may differ in width along the unit
    axis); ``weights``: example counts (normalised to ``p_k``). ``gamma >= 0``: integration
    temperature (0 = aligned FedAvg). ``distance``: ``"global"`` (one ``d_k`` over all groups,
    DEFAULT) or ``"layer"`` (``d_{k,g}`` and ``w_{k,g}`` per group; a loose key ``<g>.*`` such as
    ``<g>.up.bias`` uses its group's weights, other loose keys the global ones). ``anchor``:
    ``"fedavg"`` (DEFAULT, step 1) or ``"largest"``: the first pass aligns every client to the
    units of the client with the largest weight (OTFusion's reference model; groups whose width
    differs across clients keep the widest-client anchor). A FedAvg anchor contains ``p_k`` of
    each client's own units, which biases every client towards the identity; clients without a
    shared initialisation need a reference (use ``iterations >= 2`` so that ``d_k`` is measured
    to the barycenter, not to the reference). Returns a :class:`ServerResult`; the global state
    has the anchor's width (the widest client's).
    """
    _check_knobs(gamma, weighting, iterations, solver, distance, anchor)
    ref = anchor == "largest"
    groups = check_states(states, same_width=False, finite=ref)  # NaN/Inf: see the anchor below
    p = check_weights(weights, len(states))
    states = list(states)
    grouped = {key for g in groups for key in g.keys}
    loose = [key for key in states[0] if key not in grouped]
    knobs = Knobs(solver, squared, include_outgoing, reg, int(p.argmax()) if ref else None)
    solvers = _solvers(states, groups, knobs)
    # 1. anchor A: FedAvg (or the reference client's units) per group, FedAvg of loose keys;
    # NaN/Inf surface in the weighted sums and are traced back to a client before aligning
    a_state: State = {key: weighted(stack_key(states, key), p) for key in loose}
    check_finite_sum(states, p.tolist(), a_state)
    for it in range(int(iterations)):
        fits: dict[str, GroupFit] = {}
        for sv in solvers:
            if it == 0:
                part = sv.anchor(p)
                check_finite_sum(states, p.tolist(), part)
                a_state.update(part)
            fits[sv.g.name] = sv.align(a_state)  # 2. plans, ||W̃_{k,g} − A_g||² and costs
        # 3. distances to the anchor, 4. integration weights
        norms = _sq_norms(a_state, groups)
        d = _rel(sum((f.sq for f in fits.values()), torch.zeros(len(states), dtype=torch.float64)),
                 sum(norms.values()))
        w = _integration_weights(p, d, gamma, weighting)
        d_g = {g.name: _rel(fits[g.name].sq, sum(norms[key] for key in g.keys)) for g in groups}
        w_g = {name: (_integration_weights(p, dg, gamma, weighting) if distance == "layer" else w)
               for name, dg in d_g.items()}
        # 5. integrate every key with its weights
        names = list(w_g)
        new: State = {key: weighted(stack_key(states, key), w_g.get(_owner(key, names), w))
                      for key in loose}
        for sv in solvers:
            new.update(sv.integrate(fits[sv.g.name], w_g[sv.g.name], a_state))
        a_state = {key: new[key] for key in states[0]}  # 6. re-anchor on W_G
        log.debug("fedpia_server iteration %d: d=%s w=%s", it, d.tolist(), w.tolist())
    stats = {g.name: _stats(fits[g.name], g, a_state, d_g[g.name], w_g[g.name]) for g in groups}
    changed = [{name: st.moved[k] for name, st in stats.items()} for k in range(len(states))]
    return ServerResult(state=a_state, distances=d.tolist(), weights=w.tolist(), changed=changed,
                        iterations=int(iterations), fedavg_weights=p.tolist(), groups=stats)


def _stats(fit: GroupFit, g: UnitGroup, anchor: State, d: torch.Tensor,
           w: torch.Tensor) -> GroupStats:
    m = g.members[0]
    width = int(anchor[m.key].shape[m.axis]) // m.repeat
    return GroupStats(width=width, moved=fit.moved(), cost_before=fit.before.tolist(),
                      cost_after=fit.after.tolist(), distance=d.tolist(), weights=w.tolist())
