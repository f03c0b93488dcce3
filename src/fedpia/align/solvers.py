"""Per-group solvers of the FedPIA server step: one interface, two implementations.

:func:`fedpia.align.fedpia_server` runs the recipe (anchor → plans → ``d_k`` → ``w_k`` →
integrate) and asks one solver per unit group ``g`` for three things:

* ``anchor(p)``: the group's part of the FedAvg anchor ``A_g = Σ_k p_k W_{k,g}`` (or, with
  ``Knobs.reference``, that client's units);
* ``align(anchor)``: a :class:`GroupFit`, every client's plan onto ``A_g`` with
  ``||W̃_{k,g} − A_g||²`` and the transport costs before/after;
* ``integrate(fit, w, anchor)``: ``Σ_k w_k W̃_{k,g}`` for the group's tensors (anchor's shape).

:class:`BatchedGroup` is the fast path (exact solver, every client as wide as the anchor): the
clients' tensors are stacked in cache-sized chunks of clients (:mod:`fedpia.align.batched`), one
Gram matmul gives all costs, assignments are batched. :class:`GeneralGroup` materialises
per-client plans (Sinkhorn, or clients of unequal widths, OTFusion map). Both give the same
result as a per-client :func:`fedpia.align.align` reference (tests/align/test_align_batched.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from fedpia.align.batched import Buffers, align_group, integrate_group, stack_key, weighted
from fedpia.align.checks import check_finite
from fedpia.align.fuse import weighted_sum
from fedpia.align.groups import UnitGroup, unit_groups
from fedpia.align.pairwise import group_cost
from fedpia.align.transport import GroupPlan, map_member, transport_plan

State = dict[str, torch.Tensor]
CHUNK_BYTES = 8 << 20  # clients are batched in chunks whose group stack fits this many bytes


@dataclass(frozen=True)
class GroupFit:
    """One group's alignment of the K clients to the anchor (tensors indexed by client).

    ``maps``: ``[K, w]`` permutations (fast path) or K :class:`GroupPlan`; ``sq``:
    ``||W̃_{k,g} − A_g||²``; ``before`` / ``after``: transport cost ``<T, C_k>`` of the identity
    and of the plan (``before`` is nan where widths differ). All ``[K]`` float64.
    """

    maps: torch.Tensor | list[GroupPlan]
    sq: torch.Tensor
    before: torch.Tensor
    after: torch.Tensor

    def moved(self) -> list[int]:
        """Per client: anchor units whose source unit has another index (0 = identity)."""
        if isinstance(self.maps, torch.Tensor):
            return (self.maps != torch.arange(self.maps.shape[1])).sum(dim=1).tolist()
        return [u.changed for u in self.maps]


@dataclass(frozen=True)
class Knobs:
    """Cost and solver knobs shared by every group of one server step."""

    solver: str = "exact"
    squared: bool = False
    include_outgoing: bool = False
    reg: float = 0.05
    reference: int | None = None  # anchor on this client's units instead of the FedAvg


def spans(k: int, state: Mapping[str, torch.Tensor], g: UnitGroup) -> list[slice]:
    """Client chunks whose stack of group ``g`` stays within :data:`CHUNK_BYTES` (cache-sized
    batches: larger stacks would stream every batched op through main memory)."""
    per = sum(state[m.key].numel() * state[m.key].element_size() for m in g.members)
    n = max(1, CHUNK_BYTES // max(per, 1))
    return [slice(i, min(i + n, k)) for i in range(0, k, n)]


def _accumulate(total: State, part: Mapping[str, torch.Tensor]) -> None:
    for key, v in part.items():
        if key in total:
            total[key].add_(v)
        else:
            total[key] = v


class BatchedGroup:
    """Exact alignment of an equal-width group, batched over clients in chunks (:func:`spans`);
    the stacks of one chunk are copied once for the anchor and the alignment (:class:`Buffers`)."""

    def __init__(self, states: Sequence[State], g: UnitGroup, knobs: Knobs, bufs: Buffers):
        self.states, self.g, self.knobs, self.bufs = states, g, knobs, bufs
        self.spans = spans(len(states), states[0], g)

    def anchor(self, p: torch.Tensor) -> State:
        if self.knobs.reference is not None:
            return {key: self.states[self.knobs.reference][key].clone() for key in self.g.keys}
        part: State = {}
        for sl in self.spans:
            st = self.bufs.stacks(self.states, sl, self.g)
            _accumulate(part, {key: weighted(st[key], p[sl]) for key in self.g.keys})
        return part

    def align(self, anchor: Mapping[str, torch.Tensor]) -> GroupFit:
        parts = [align_group(self.bufs.stacks(self.states, sl, self.g), anchor, self.g,
                             squared=self.knobs.squared,
                             include_outgoing=self.knobs.include_outgoing, bufs=self.bufs)
                 for sl in self.spans]
        return GroupFit(*(torch.cat(col) for col in zip(*parts, strict=True)))

    def integrate(self, fit: GroupFit, w: torch.Tensor, anchor: Mapping[str, torch.Tensor]) -> State:
        part: State = {}
        for sl in self.spans:
            st = self.bufs.stacks(self.states, sl, self.g)
            _accumulate(part, integrate_group(st, self.g, fit.maps[sl], w[sl], self.bufs))
        return part


class GeneralGroup:
    """Per-client plans and materialised aligned tensors: the Sinkhorn solver, or a group whose
    width differs across clients (anchor on the first widest client, OTFusion map)."""

    def __init__(self, states: Sequence[State], groups_k: Sequence[Mapping[str, UnitGroup]],
                 g: UnitGroup, knobs: Knobs):
        self.states, self.groups_k, self.g, self.knobs = states, groups_k, g, knobs
        self.uneven = len({gk[g.name].width for gk in groups_k}) > 1

    def _group(self, k: int) -> UnitGroup:
        return self.groups_k[k][self.g.name]

    def anchor(self, p: torch.Tensor) -> State:
        if not self.uneven and self.knobs.reference is not None:
            return {key: self.states[self.knobs.reference][key].clone() for key in self.g.keys}
        if not self.uneven:
            return {key: weighted(stack_key(self.states, key), p) for key in self.g.keys}
        # every client mapped (exact OT) onto the *first widest* client's units, then averaged
        widths = [self._group(k).width for k in range(len(self.states))]
        for idx, s in enumerate(self.states):
            check_finite({m.key: s[m.key] for m in self.g.members}, f"states[{idx}]")
        r = widths.index(max(widths))
        aligned = []
        for k, s in enumerate(self.states):
            c = group_cost(s, self.states[r], self._group(k), self._group(r),
                           squared=self.knobs.squared, include_outgoing=self.knobs.include_outgoing)
            gp = transport_plan(c, solver="exact")
            aligned.append({m.key: map_member(s[m.key], m, self._group(k).width, gp)
                            for m in self._group(k).members})
        return weighted_sum(aligned, p.tolist())

    def align(self, anchor: Mapping[str, torch.Tensor]) -> GroupFit:
        ref = unit_groups({key: anchor[key] for key in self.g.keys})[0]  # the anchor's width
        plans, cols = [], torch.zeros(3, len(self.states), dtype=torch.float64)
        for k, s in enumerate(self.states):
            gk = self._group(k)
            c = group_cost(s, anchor, gk, ref, squared=self.knobs.squared,
                           include_outgoing=self.knobs.include_outgoing)
            gp = transport_plan(c, solver=self.knobs.solver, reg=self.knobs.reg)
            for m in gk.members:
                diff = map_member(s[m.key], m, gk.width, gp) - anchor[m.key]
                cols[0, k] += torch.linalg.vector_norm(diff, dtype=torch.float64).square()
            cols[1, k] = math.nan if gp.identity_cost is None else gp.identity_cost
            cols[2, k] = gp.cost
            plans.append(gp)
        return GroupFit(plans, cols[0], cols[1], cols[2])

    def integrate(self, fit: GroupFit, w: torch.Tensor, anchor: Mapping[str, torch.Tensor]) -> State:
        out = {m.key: torch.zeros_like(anchor[m.key]) for m in self.g.members}
        for k, (s, wk) in enumerate(zip(self.states, w.tolist(), strict=True)):
            if wk == 0.0:
                continue
            gk = self._group(k)
            for m in gk.members:
                out[m.key].add_(map_member(s[m.key], m, gk.width, fit.maps[k]), alpha=wk)
        return out
