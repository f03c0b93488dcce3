"""Cost matrices, transport plans and the OTFusion map between two unit groups.

Shapes: a source group has ``n`` units, the reference group ``m``. Support points are rows of a
features matrix (``[n, f]`` / ``[m, f]``); the cost is ``C[i, j] = ||x_i - y_j||`` (``squared``:
its square). Marginals are uniform, ``α = 1/n``, ``β = 1/m``. A plan ``T`` (``[n, m]``, float64)
has row sums ``α`` and column sums ``β``; with equal widths and the exact solver it is a
permutation matrix divided by ``n``.

OTFusion map (Singh & Jaggi 2020, https://arxiv.org/abs/1910.05653), on *unit rows* (the unit
axis moved first, everything else flattened):

* incoming members (``role="in"``):  ``R_aligned = diag(1/β) Tᵀ R``  (barycentric projection),
* outgoing members (``role="out"``): ``R_aligned = Tᵀ diag(1/α) R``,
  i.e. ``W_out_aligned = W_out diag(1/α) T = W_out T diag(1/β) · (m/n)``.

For a permutation both maps are the permutation matrix, so the adapter function is unchanged. The
outgoing scaling also preserves the function when a source unit is split into ``m/n`` identical
copies (each consumes ``n/m`` of its weight) and when identical source units are merged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import ot
import torch
from scipy.optimize import linear_sum_assignment

from fedpia.align.groups import Member, UnitGroup, full_index

SOLVERS = ("exact", "sinkhorn")


@dataclass(frozen=True)
class GroupPlan:
    """Transport between one source group (``n`` units) and its reference group (``m`` units).

    ``plan``: ``[n, m]`` float64 with uniform marginals. ``perm``: ``[m]`` int64 with aligned unit
    ``j`` = source unit ``perm[j]`` (only for equal widths with the exact solver, else ``None``).
    ``cost``: ``<T, C>``, the transport cost. ``identity_cost``: ``<I/n, C> = tr(C)/n``, the cost of
    leaving every unit where it is (``None`` when ``n != m``): ``cost <= identity_cost`` for the
    exact solver, and ``1 - cost/identity_cost`` is the relative gain of the alignment.
    """

    plan: torch.Tensor
    perm: torch.Tensor | None
    cost: float
    identity_cost: float | None = None

    @property
    def gain(self) -> float:
        """Relative cost reduction over the identity, ``1 − cost / identity_cost`` (0 when the
        identity costs nothing, nan for unequal widths)."""
        return relative_gain(self.identity_cost, self.cost)

    def identity(self) -> GroupPlan:
        """The plan that leaves every unit in place (same cost matrix, ``n == m`` only)."""
        n, m = self.plan.shape
        if self.identity_cost is None:
            raise ValueError(f"no identity plan between {n} and {m} units")
        plan = torch.eye(n, dtype=torch.float64) / n
        return GroupPlan(plan=plan, perm=torch.arange(n), cost=self.identity_cost,
                         identity_cost=self.identity_cost)

    @property
    def changed(self) -> int:
        """Reference units whose dominant source unit is not the unit of the same index."""
        src = self.perm if self.perm is not None else self.plan.argmax(dim=0)
        return int((src != torch.arange(src.numel())).sum())


def relative_gain(before: float | None, after: float) -> float:
    """``1 − after / before``: the share of the identity's transport cost an alignment removes
    (0 when ``before`` is 0, nan when there is no identity, i.e. unequal widths)."""
    if before is None or not math.isfinite(before):
        return math.nan
    return 0.0 if before <= 0 else 1.0 - after / before


def unit_rows(t: torch.Tensor, member: Member, width: int) -> torch.Tensor:
    """View ``t`` as ``[width, f]``: unit axis first, ``repeat`` blocks and the rest flattened."""
    x = t.movedim(member.axis, 0)
    if member.repeat > 1:
        x = x.reshape(member.repeat, width, *x.shape[1:]).movedim(1, 0)
    return x.reshape(width, -1)


def from_unit_rows(rows: torch.Tensor, member: Member, like: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`unit_rows` for ``rows`` of shape ``[w, f]`` (``w`` may differ from the
    width of ``like``, whose other dimensions are kept)."""
    w = rows.shape[0]
    rest = list(like.movedim(member.axis, 0).shape[1:])
    if member.repeat > 1:
        x = rows.reshape(w, member.repeat, *rest).movedim(0, 1).reshape(member.repeat * w, *rest)
    else:
        x = rows.reshape(w, *rest)
    return x.movedim(0, member.axis).contiguous()


def weight_features(
    state: Mapping[str, torch.Tensor], group: UnitGroup, *, include_outgoing: bool = False
) -> torch.Tensor:
    """Support points ``[width, f]`` float64: incoming weights and bias (+ outgoing weights)."""
    parts = [unit_rows(state[m.key], m, group.width).to(torch.float64)
             for m in group.members if m.role == "in" or include_outgoing]
    return torch.cat(parts, dim=1)


def cost_matrix(x: torch.Tensor, y: torch.Tensor, *, squared: bool = False) -> torch.Tensor:
    """``C[i, j] = ||x_i - y_j||`` (or its square), ``x: [n, f]``, ``y: [m, f]`` -> ``[n, m]``."""
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"cost_matrix needs [n, f] and [m, f], got {tuple(x.shape)}, "
                         f"{tuple(y.shape)}")
    c = torch.cdist(x.to(torch.float64), y.to(torch.float64))
    return c.square() if squared else c


def activation_costs(
    source_acts: torch.Tensor, reference_acts: torch.Tensor, *, squared: bool = False
) -> torch.Tensor:
    """Cost between units from activations ``[n_samples, n]`` and ``[n_samples, m]`` -> ``[n, m]``.

    Unit ``i``'s support point is its activation vector over the same ``n_samples`` inputs.
    """
    if source_acts.shape[0] != reference_acts.shape[0]:
        raise ValueError(f"activations need the same samples: {source_acts.shape[0]} vs "
                         f"{reference_acts.shape[0]} rows")
    return cost_matrix(source_acts.T, reference_acts.T, squared=squared)


def assignments(cost: torch.Tensor) -> torch.Tensor:
    """Exact min-cost perfect matchings of a batch of square costs ``[K, n, n]`` -> ``[K, n]``.

    Row ``k`` is ``perm_k`` with aligned unit ``j`` = source unit ``perm_k[j]``. Fast exact path:
    when the row-wise argmins of ``C_k`` are pairwise distinct, that assignment reaches the lower
    bound ``Σ_i min_j C_k[i, j]`` and is optimal; the other matrices go to scipy's
    ``linear_sum_assignment``.
    """
    n = cost.shape[-1]
    col = cost.argmin(dim=2)  # [K, n]: source i -> reference col[i]
    ok = (torch.sort(col, dim=1).values == torch.arange(n)).all(dim=1)
    for k in torch.nonzero(~ok).flatten().tolist():
        _, col_np = linear_sum_assignment(cost[k].detach().cpu().numpy())
        col[k] = torch.from_numpy(np.asarray(col_np, dtype=np.int64))
    return torch.argsort(col, dim=1)  # aligned[col[i]] = source[i]


def assignment(cost: torch.Tensor) -> torch.Tensor:
    """Exact min-cost matching of one square cost ``[n, n]`` -> ``perm`` (see :func:`assignments`)."""
    return assignments(cost.unsqueeze(0))[0]


def transport_plan(
    cost: torch.Tensor, *, solver: str = "exact", reg: float = 0.05
) -> GroupPlan:
    """Optimal plan for ``cost`` (``[n, m]``) with uniform marginals.

    ``exact``: assignment (equal widths, plan = permutation/n) or ``ot.emd`` (unequal widths).
    ``sinkhorn``: ``ot.sinkhorn`` (log-domain) on ``cost / max(cost)`` with entropic ``reg``, so
    ``reg`` is relative to the largest cost.
    """
    n, m = cost.shape
    c = cost.detach().to(torch.float64)
    a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    ident = float(c.diagonal().sum() / n) if n == m else None
    if solver == "exact" and n == m:
        perm = assignment(c)
        plan = torch.zeros(n, m, dtype=torch.float64)
        plan[perm, torch.arange(m)] = 1.0 / n
        return GroupPlan(plan=plan, perm=perm, cost=float(c[perm, torch.arange(m)].sum() / n),
                         identity_cost=ident)
    if solver == "exact":
        plan = torch.from_numpy(np.asarray(ot.emd(a, b, c.numpy()), dtype=np.float64))
    elif solver == "sinkhorn":
        if not reg > 0:
            raise ValueError(f"reg must be > 0 for solver='sinkhorn', got {reg}")
        scale = float(c.max()) if float(c.max()) > 0 else 1.0
        plan = torch.from_numpy(np.asarray(ot.sinkhorn(
            a, b, c.numpy() / scale, reg, method="sinkhorn_log", numItermax=10_000,
            stopThr=1e-10), dtype=np.float64))
    else:
        raise ValueError(f"solver={solver!r} is not one of {SOLVERS}")
    return GroupPlan(plan=plan, perm=None, cost=float((plan * c).sum()), identity_cost=ident)


def unit_maps(plan: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """OTFusion maps on unit rows: ``M_in = diag(1/β) Tᵀ``, ``M_out = Tᵀ diag(1/α)`` (``[m, n]``)."""
    beta, alpha = plan.sum(dim=0), plan.sum(dim=1)
    return plan.T / beta.unsqueeze(1), plan.T / alpha.unsqueeze(0)


def map_member(t: torch.Tensor, member: Member, width: int, gp: GroupPlan) -> torch.Tensor:
    """Express one member tensor of a source group in the reference's units (new tensor)."""
    if gp.perm is not None:
        return t.index_select(member.axis, full_index(gp.perm, member, width))
    m_in, m_out = unit_maps(gp.plan)
    mat = (m_in if member.role == "in" else m_out).to(t.dtype)
    return from_unit_rows(mat @ unit_rows(t, member, width), member, t)
