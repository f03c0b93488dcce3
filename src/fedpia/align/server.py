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

Fast path (exact solver, client width = anchor width): cost matrices come from one Gram matrix
per client and group, ``C² = |x|² + |y|² − 2 x·y``; the same Gram gives the distances of step 3
without materialising aligned clients, and step 4 accumulates with ``index_add_`` (no copies).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from fedpia.align.checks import (
    check_choice,
    check_finite,
    check_finite_sum,
    check_states,
    check_weights,
    client_groups,
)
from fedpia.align.fuse import weighted_sum
from fedpia.align.groups import Member, UnitGroup, full_index, unit_groups
from fedpia.align.pairwise import group_cost
from fedpia.align.transport import SOLVERS, GroupPlan, assignments, map_member, transport_plan
from fedpia.align.transport import unit_rows as _rows

log = logging.getLogger(__name__)
State = dict[str, torch.Tensor]
WEIGHTINGS = ("normalized", "paper")
UnitMap = tuple[torch.Tensor, torch.Tensor] | GroupPlan  # (perm, inverse perm) or a plan


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


def _row_sq(x: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(x, dim=1).double().square()


def _perm_member(t: torch.Tensor, m: Member, width: int, perm: torch.Tensor) -> torch.Tensor:
    return t.index_select(m.axis, full_index(perm, m, width))


def _fast_group(states, anchor, g: UnitGroup, *, squared: bool, include_outgoing: bool):
    """Exact alignment of equal-width groups: permutations (``[w]`` each) and ``||W̃_k − A||²``.

    One Gram matrix ``G_k = X_k Yᵀ`` per client (``X_k``, ``Y``: ``[w, f]`` support points, summed
    over members with ``addmm_``) gives ``C_k² = |x|² + |y|² − 2 G_k``, and the support part of
    ``||W̃_k − A||²`` as ``Σ_j C_k²[perm_k[j], j]`` (Gram in the state's dtype: for float32 the
    cancellation error is ~1e-6·|A|², i.e. ``d_k`` resolves differences above ~1e-3·|A|).
    """
    w, feat = g.width, [m for m in g.members if m.role == "in" or include_outgoing]
    ref = [_rows(anchor[m.key], m, w) for m in feat]
    ref_sq = sum(_row_sq(r) for r in ref)
    gram = torch.empty(len(states), w, w, dtype=ref[0].dtype)
    src_sq = torch.empty(len(states), w, dtype=torch.float64)
    for k, s in enumerate(states):
        rows = [_rows(s[m.key], m, w) for m in feat]
        torch.mm(rows[0], ref[0].T, out=gram[k])
        for x, y in zip(rows[1:], ref[1:], strict=True):
            gram[k].addmm_(x, y.T)
        src_sq[k] = sum(_row_sq(x) for x in rows)
    c2 = (src_sq.unsqueeze(2) + ref_sq.view(1, 1, w) - 2.0 * gram.double()).clamp_(min=0.0)
    cost = c2 if squared else c2.sqrt()
    perms = assignments(cost)
    # ||W̃_k − A||² on the support members = Σ_j C²_k[perm_k[j], j] (from the Gram, float64);
    # the other members exactly on their permuted copies
    dist = c2.gather(1, perms.unsqueeze(1)).squeeze(1).sum(dim=1)
    for m in (m for m in g.members if m not in feat):
        for k, s in enumerate(states):
            diff = _perm_member(s[m.key], m, w, perms[k]).sub_(anchor[m.key])
            dist[k] += float(torch.linalg.vector_norm(diff)) ** 2
    return list(zip(perms, torch.argsort(perms, dim=1), strict=True)), dist


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


def _anchor(states, p, groups_k, g0: list[UnitGroup], *, squared, include_outgoing) -> State:
    """FedAvg anchor. A group whose width differs across clients is first mapped (exact OT,
    OTFusion map) onto the *first widest* client's units, then averaged: the anchor has the
    widest width and FedAvg is recovered whenever all widths agree."""
    uneven = [g for g in g0 if len({gk[g.name].width for gk in groups_k}) > 1]
    skip = {key for g in uneven for key in g.keys}
    anchor = weighted_sum([{k: v for k, v in s.items() if k not in skip} for s in states], p)
    for g in uneven:
        widths = [gk[g.name].width for gk in groups_k]
        for idx, s in enumerate(states):
            check_finite({m.key: s[m.key] for m in g.members}, f"states[{idx}]")
        r = widths.index(max(widths))
        ref_g, aligned = groups_k[r][g.name], []
        for s, gk in zip(states, groups_k, strict=True):
            src = gk[g.name]
            c = group_cost(s, states[r], src, ref_g, squared=squared,
                           include_outgoing=include_outgoing)
            gp = transport_plan(c, solver="exact")
            aligned.append({m.key: map_member(s[m.key], m, src.width, gp) for m in src.members})
        anchor.update(weighted_sum(aligned, p))
    return anchor


def _integration_weights(p: torch.Tensor, d: torch.Tensor, gamma: float, weighting: str):
    if weighting == "paper":
        return torch.exp(-gamma * d) / len(d)
    logits = torch.where(p > 0, p.log(), torch.tensor(-math.inf, dtype=p.dtype)) - gamma * d
    return torch.softmax(logits, dim=0)


def _integrate(states, anchor, g0, groups_k, maps, w: list[float]) -> State:
    """``Σ_k w_k W̃_k`` for every key; permutations accumulate in place (``index_add_`` on axis 0)."""
    out = {k: torch.zeros_like(v) for k, v in anchor.items()}
    grouped = {key for g in g0 for key in g.keys}
    for k, s in enumerate(states):
        if w[k] == 0.0:
            continue
        for key, v in s.items():
            if key not in grouped:
                out[key].add_(v, alpha=w[k])
        for g in g0:
            umap, gk = maps[g.name][k], groups_k[k][g.name]
            for m in gk.members:
                if isinstance(umap, GroupPlan):
                    out[m.key].add_(map_member(s[m.key], m, gk.width, umap), alpha=w[k])
                elif m.axis == 0:  # scatter-add of rows: no temporary
                    inv = full_index(umap[1], m, gk.width)
                    out[m.key].index_add_(0, inv, s[m.key], alpha=w[k])
                else:  # column scatter is slow in torch: gather then add
                    out[m.key].add_(_perm_member(s[m.key], m, gk.width, umap[0]), alpha=w[k])
    return out


def _changed(maps: list[UnitMap]) -> list[int]:
    """Per client: anchor units whose source unit has another index (batched for permutations)."""
    if all(isinstance(u, tuple) for u in maps):
        perms = torch.stack([u[0] for u in maps])
        return (perms != torch.arange(perms.shape[1])).sum(dim=1).tolist()
    return [u.changed if isinstance(u, GroupPlan) else _changed([u])[0] for u in maps]


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
    anchor's width (the widest client's, see :func:`_anchor`).
    """
    check_choice("weighting", weighting, WEIGHTINGS)
    check_choice("solver", solver, SOLVERS)
    if not (math.isfinite(gamma) and gamma >= 0):
        raise ValueError(f"gamma must be finite and >= 0, got {gamma}")
    if int(iterations) != iterations or iterations < 1:
        raise ValueError(f"iterations must be an integer >= 1, got {iterations}")
    g0 = check_states(states, same_width=False, finite=False)
    p = check_weights(weights, len(states))
    groups_k = client_groups(states, g0)
    anchor = _anchor(states, p.tolist(), groups_k, g0, squared=squared,
                     include_outgoing=include_outgoing)
    check_finite_sum(states, p.tolist(), anchor)
    for it in range(int(iterations)):
        maps: dict[str, list[UnitMap]] = {}
        sq = torch.zeros(len(states), dtype=torch.float64)
        for ga in unit_groups(anchor):
            if solver == "exact" and all(gk[ga.name].width == ga.width for gk in groups_k):
                maps[ga.name], d2 = _fast_group(states, anchor, ga, squared=squared,
                                                include_outgoing=include_outgoing)
            else:
                maps[ga.name], d2 = _general_group(states, groups_k, anchor, ga, solver=solver,
                                                  squared=squared,
                                                  include_outgoing=include_outgoing, reg=reg)
            sq += d2
        norm = math.sqrt(sum(float(torch.linalg.vector_norm(anchor[key], dtype=torch.float64)
                                   ** 2) for g in g0 for key in g.keys))
        d = sq.sqrt() / (norm if norm > 0 else 1.0)
        w = _integration_weights(p, d, gamma, weighting)
        anchor = _integrate(states, anchor, g0, groups_k, maps, w.tolist())
        log.debug("fedpia_server iteration %d: d=%s w=%s", it, d.tolist(), w.tolist())
    per_group = {name: _changed(ms) for name, ms in maps.items()}
    changed = [{name: c[k] for name, c in per_group.items()} for k in range(len(states))]
    return ServerResult(state=anchor, distances=d.tolist(), weights=w.tolist(), changed=changed,
                        iterations=int(iterations))
