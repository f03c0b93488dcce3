"""FedPIA server step: align every client adapter to a FedAvg anchor, then integrate.

Recipe (Saha et al., AAAI 2025, https://arxiv.org/abs/2412.14424; docs/align.md):

1. anchor ``A = Σ_k p_k W_k`` (FedAvg, ``p_k ∝`` example counts; see :func:`_anchor` for
   clients of unequal adapter widths);
2. per client and per unit group: plan ``T_k`` between the client's units and the anchor's (cost
   on incoming weights + bias; ``include_outgoing`` appends outgoing weights), aligned client
   ``W̃_k`` = OTFusion map (a permutation for equal widths with the exact solver);
3. ``d_k = ||W̃_k − A|| / ||A||`` over the tensors of all unit groups;
4. ``w_k ∝ p_k exp(−γ d_k)`` (``"normalized"``, Σ w_k = 1) or ``w_k = exp(−γ d_k) / K``
   (``"paper"``); ``W_G = Σ_k w_k W̃_k`` for every key (keys in no group: ``Σ_k w_k W_k``);
5. ``iterations > 1``: ``A ← W_G`` and repeat 2–4 (free-support barycenter iterations).

Fast path (exact solver, client width = anchor width), batched over clients
(:mod:`fedpia.align.batched`): the K clients' tensors of a group are stacked, one Gram matmul
per support member gives every cost ``C_k² = |x|² + |y|² − 2 x·y`` and the support part of step
3; the assignments, permutations (one ``gather``) and step 4 (one ``tensordot`` over clients) run
on the stacks. Groups are processed one at a time (stacked again for step 4 into reused buffers),
so the working memory is a few copies of one group's stack.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from fedpia.align.batched import (
    Buffers,
    align_group,
    group_stacks,
    integrate_group,
    stack_key,
    weighted,
)
from fedpia.align.checks import (
    check_choice,
    check_finite,
    check_finite_sum,
    check_states,
    check_weights,
    client_groups,
)
from fedpia.align.fuse import weighted_sum
from fedpia.align.groups import UnitGroup, unit_groups
from fedpia.align.pairwise import group_cost
from fedpia.align.transport import SOLVERS, GroupPlan, map_member, transport_plan

log = logging.getLogger(__name__)
State = dict[str, torch.Tensor]
WEIGHTINGS = ("normalized", "paper")
_CHUNK_BYTES = 8 << 20  # clients are batched in chunks whose group stack fits this many bytes


@dataclass(frozen=True)
class ServerResult:
    """Global state and diagnostics of the last iteration (all lists are indexed by client).

    ``distances``: ``d_k``; ``weights``: ``w_k``; ``changed``: per client ``{group: number of
    anchor units whose source unit is not the same index}`` (0 everywhere = identity alignment).
    """

    state: State
    distances: list[float]
    weights: list[float]
    changed: list[dict[str, int]]
    iterations: int


def _general_group(states, groups_k, anchor, g: UnitGroup, *, solver, squared, include_outgoing,
                   reg):
    """Plans for unequal widths or Sinkhorn: aligned tensors are materialised per client."""
    plans, dist = [], torch.zeros(len(states), dtype=torch.float64)
    for k, s in enumerate(states):
        gk = groups_k[k][g.name]
        c = group_cost(s, anchor, gk, g, squared=squared, include_outgoing=include_outgoing)
        gp = transport_plan(c, solver=solver, reg=reg)
        for m in gk.members:
            diff = map_member(s[m.key], m, gk.width, gp) - anchor[m.key]
            dist[k] += torch.linalg.vector_norm(diff, dtype=torch.float64).square()
        plans.append(gp)
    return plans, dist


def _uneven_anchor(states, p, groups_k, g: UnitGroup, *, squared, include_outgoing) -> State:
    """Anchor of a group whose width differs across clients: every client is mapped (exact OT,
    OTFusion map) onto the *first widest* client's units, then averaged, so the anchor has the
    widest width."""
    widths = [gk[g.name].width for gk in groups_k]
    for idx, s in enumerate(states):
        check_finite({m.key: s[m.key] for m in g.members}, f"states[{idx}]")
    r = widths.index(max(widths))
    ref_g, aligned = groups_k[r][g.name], []
    for s, gk in zip(states, groups_k, strict=True):
        src = gk[g.name]
        c = group_cost(s, states[r], src, ref_g, squared=squared, include_outgoing=include_outgoing)
        gp = transport_plan(c, solver="exact")
        aligned.append({m.key: map_member(s[m.key], m, src.width, gp) for m in src.members})
    return weighted_sum(aligned, p)


def _spans(k: int, state: Mapping[str, torch.Tensor], g: UnitGroup) -> list[slice]:
    """Client chunks whose stack of group ``g`` stays within ``_CHUNK_BYTES`` (cache-sized
    batches: larger stacks would stream every batched op through main memory)."""
    per = sum(state[m.key].numel() * state[m.key].element_size() for m in g.members)
    n = max(1, _CHUNK_BYTES // max(per, 1))
    return [slice(i, min(i + n, k)) for i in range(0, k, n)]


def _accumulate(total: State, part: Mapping[str, torch.Tensor]) -> None:
    for key, v in part.items():
        if key in total:
            total[key].add_(v)
        else:
            total[key] = v


def _integration_weights(p: torch.Tensor, d: torch.Tensor, gamma: float, weighting: str):
    if weighting == "paper":
        return torch.exp(-gamma * d) / len(d)
    logits = torch.where(p > 0, p.log(), torch.tensor(-math.inf, dtype=p.dtype)) - gamma * d
    return torch.softmax(logits, dim=0)


def _integrate_general(states, groups_k, g: UnitGroup, plans: list[GroupPlan], w: list[float],
                       like: State) -> State:
    """``Σ_k w_k W̃_k`` for one group with per-client plans (aligned tensors materialised)."""
    out = {m.key: torch.zeros_like(like[m.key]) for m in g.members}
    for k, s in enumerate(states):
        if w[k] == 0.0:
            continue
        gk = groups_k[k][g.name]
        for m in gk.members:
            out[m.key].add_(map_member(s[m.key], m, gk.width, plans[k]), alpha=w[k])
    return out


def _changed(maps: torch.Tensor | list[GroupPlan]) -> list[int]:
    """Per client: anchor units whose source unit has another index."""
    if isinstance(maps, torch.Tensor):  # [K, w] permutations
        return (maps != torch.arange(maps.shape[1])).sum(dim=1).tolist()
    return [u.changed for u in maps]


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
) -> ServerResult:
    """FedPIA server aggregation of client adapters (module docstring gives the recipe).

    ``states``: K named states (same keys; group members may differ in width along the unit
    axis); ``weights``: example counts (normalised to ``p_k``). ``gamma >= 0``: integration
    temperature (0 = aligned FedAvg). Returns a :class:`ServerResult`; the global state has the
    anchor's width (the widest client's, see :func:`_uneven_anchor`).
    """
    check_choice("weighting", weighting, WEIGHTINGS)
    check_choice("solver", solver, SOLVERS)
    if not (math.isfinite(gamma) and gamma >= 0):
        raise ValueError(f"gamma must be finite and >= 0, got {gamma}")
    if int(iterations) != iterations or iterations < 1:
        raise ValueError(f"iterations must be an integer >= 1, got {iterations}")
    g0 = check_states(states, same_width=False, finite=False)
    p = check_weights(weights, len(states))
    states = list(states)
    groups_k = client_groups(states, g0)
    uneven = {g.name for g in g0 if len({gk[g.name].width for gk in groups_k}) > 1}
    fast = [g for g in g0 if solver == "exact" and g.name not in uneven]
    slow = [g for g in g0 if g not in fast]
    grouped = {key for g in g0 for key in g.keys}
    loose = [key for key in states[0] if key not in grouped]
    bufs = Buffers()
    # anchor of the loose keys and slow groups now; of the fast groups inside the first pass
    # (from the stacks the alignment uses), each checked for NaN/Inf before it is aligned to
    anchor: State = {key: weighted(stack_key(states, key), p) for key in loose}
    for g in slow:
        if g.name in uneven:
            anchor.update(_uneven_anchor(states, p.tolist(), groups_k, g, squared=squared,
                                         include_outgoing=include_outgoing))
        else:
            anchor.update({key: weighted(stack_key(states, key), p) for key in g.keys})
    check_finite_sum(states, p.tolist(), anchor)
    slow_anchor = unit_groups({key: anchor[key] for g in slow for key in g.keys})
    for it in range(int(iterations)):
        maps: dict[str, torch.Tensor | list[GroupPlan]] = {}
        sq = torch.zeros(len(states), dtype=torch.float64)
        for g in fast:
            spans = _spans(len(states), states[0], g)
            st = None
            if it == 0:
                part: State = {}
                for sl in spans:
                    st = group_stacks(states[sl], g, bufs)
                    _accumulate(part, {key: weighted(st[key], p[sl]) for key in g.keys})
                check_finite_sum(states, p.tolist(), part)
                anchor.update(part)
            perms, d2 = [], []
            for sl in spans:
                if st is None or len(spans) > 1:
                    st = group_stacks(states[sl], g, bufs)
                pm, dm = align_group(st, anchor, g, squared=squared,
                                     include_outgoing=include_outgoing, bufs=bufs)
                perms.append(pm)
                d2.append(dm)
            maps[g.name] = torch.cat(perms)
            sq += torch.cat(d2)
        for ga in slow_anchor:
            maps[ga.name], d2 = _general_group(states, groups_k, anchor, ga, solver=solver,
                                               squared=squared, include_outgoing=include_outgoing,
                                               reg=reg)
            sq += d2
        norm = math.sqrt(sum(float(torch.linalg.vector_norm(anchor[key], dtype=torch.float64)
                                   ** 2) for g in g0 for key in g.keys))
        d = sq.sqrt() / (norm if norm > 0 else 1.0)
        w = _integration_weights(p, d, gamma, weighting)
        new: State = {key: weighted(stack_key(states, key), w) for key in loose}
        for g in fast:
            part = {}
            for sl in _spans(len(states), states[0], g):
                _accumulate(part, integrate_group(group_stacks(states[sl], g, bufs), g,
                                                  maps[g.name][sl], w[sl], bufs))
            new.update(part)
        for ga in slow_anchor:
            new.update(_integrate_general(states, groups_k, ga, maps[ga.name], w.tolist(),
                                          anchor))
        anchor = {key: new[key] for key in states[0]}
        log.debug("fedpia_server iteration %d: d=%s w=%s", it, d.tolist(), w.tolist())
    per_group = {g.name: _changed(maps[g.name]) for g in g0}
    changed = [{name: c[k] for name, c in per_group.items()} for k in range(len(states))]
    return ServerResult(state=anchor, distances=d.tolist(), weights=w.tolist(), changed=changed,
                        iterations=int(iterations))
