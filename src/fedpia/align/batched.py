"""Exact alignment of equal-width unit groups, batched over the K clients of a server step.

The K client tensors of one key are stacked (``[K, *shape]``) and every step runs as one tensor
op over that stack instead of a Python loop over clients:

* unit rows ``X_k``: ``[K, w, f]`` (unit axis first, see :func:`~fedpia.align.transport.unit_rows`);
* Gram ``G = X Yᵀ`` against the anchor rows ``Y`` (``[w, f]``), summed over support members:
  one matmul ``[K·w, f] @ [f, w]``; cost ``C² = |x_i|² + |y_j|² − 2 G`` in float64 (``[K, w, w]``);
* permutations ``perm_k`` (``[K, w]``) by :func:`~fedpia.align.transport.assignments` (row-argmin
  fast path, scipy ``linear_sum_assignment`` only for the clients whose argmin is no permutation);
* ``||W̃_k − A||²``: support part ``Σ_j C²_k[perm_k[j], j]``, other members exactly on the
  permuted stacks (one ``index_select`` / ``gather``, :func:`permute_stack`);
* integration ``Σ_k w_k W̃_k`` as one ``tensordot`` over the client axis.

Stacks go into reusable :class:`Buffers` (all groups of a model share shapes), so the working
memory is a few copies of one group's stack, whatever the number of groups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from fedpia.align.groups import Member, UnitGroup
from fedpia.align.transport import assignments
from fedpia.align.transport import unit_rows as _rows

Stacks = dict[str, torch.Tensor]


class Buffers:
    """Reusable output tensors by name: groups of one model share shapes, so stacking every
    group into the same buffers avoids re-allocating (and page-faulting) large tensors.

    :meth:`stacks` remembers which clients' group sits in the stack buffers, so asking for the
    same stacks twice in a row (the anchor, then the alignment of one group) copies them once.
    """

    def __init__(self) -> None:
        self._bufs: dict[tuple, torch.Tensor] = {}
        self._held: tuple | None = None
        self._stacks: Stacks = {}

    def stacks(
        self, states: Sequence[Mapping[str, torch.Tensor]], span: slice, g: UnitGroup
    ) -> Stacks:
        """:func:`group_stacks` of ``states[span]`` into these buffers (reused if still held).

        Valid within one server step: ``states`` must not change between calls."""
        key = (g.name, span.start, span.stop)
        if self._held != key:
            self._stacks = group_stacks(states[span], g, self)
            self._held = key
        return self._stacks

    def get(self, name: str, shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
        key = (name, tuple(shape), dtype)
        if key not in self._bufs:
            self._bufs[key] = torch.empty(tuple(shape), dtype=dtype)
        return self._bufs[key]


def stack_key(
    states: Sequence[Mapping[str, torch.Tensor]], key: str, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``[K, *shape]``: the clients' tensors of ``key`` (a copy, into ``out`` when given)."""
    if out is None:
        return torch.stack([s[key] for s in states])
    return torch.stack([s[key] for s in states], out=out)


def group_stacks(
    states: Sequence[Mapping[str, torch.Tensor]], g: UnitGroup, bufs: Buffers | None = None
) -> Stacks:
    """Stacked client tensors of every member of ``g`` (member ``i`` in buffer ``"stack{i}"``)."""
    out = {}
    for i, m in enumerate(g.members):
        t = states[0][m.key]
        buf = bufs.get(f"stack{i}", (len(states), *t.shape), t.dtype) if bufs else None
        out[m.key] = stack_key(states, m.key, buf)
    return out


def stacked_rows(stack: torch.Tensor, m: Member, width: int) -> torch.Tensor:
    """Batched :func:`~fedpia.align.transport.unit_rows`: ``[K, *shape]`` -> ``[K, w, f]`` (a view
    whenever the layout allows, e.g. transposed for a column member)."""
    k = stack.shape[0]
    x = stack.movedim(m.axis % (stack.dim() - 1) + 1, 1)
    if m.repeat > 1:
        x = x.reshape(k, m.repeat, width, *x.shape[2:]).movedim(2, 1)
    return x.reshape(k, width, -1)


def permute_stack(
    stack: torch.Tensor, m: Member, width: int, perms: torch.Tensor,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Client ``k``'s units reordered by ``perms[k]`` along ``m``'s axis (every ``repeat`` block),
    in the stack's layout ``[K, *shape]``: a batched :func:`~fedpia.align.groups.permute_units`.

    Only clients whose permutation is not the identity are gathered; the others are copied (or,
    with no client moved, ``stack`` itself is returned).
    """
    moved = torch.nonzero((perms != torch.arange(width)).any(dim=1)).flatten()
    if moved.numel() == 0:
        return stack
    if moved.numel() < stack.shape[0]:
        res = stack.clone() if out is None else out.copy_(stack)
        return res.index_copy_(0, moved, _gather_units(stack.index_select(0, moved), m, width,
                                                       perms.index_select(0, moved)))
    return _gather_units(stack, m, width, perms, out)


def _gather_units(stack, m: Member, width: int, perms: torch.Tensor, out=None) -> torch.Tensor:
    k, ax = stack.shape[0], m.axis % (stack.dim() - 1) + 1
    idx = perms
    if m.repeat > 1:
        offsets = torch.arange(m.repeat, dtype=perms.dtype).view(1, -1, 1) * width
        idx = (offsets + perms.unsqueeze(1)).reshape(k, -1)
    if ax == 1 and stack.is_contiguous():  # rows: one index_select on [K·n, rest]
        n = stack.shape[1]
        flat = (idx + torch.arange(k).unsqueeze(1) * n).reshape(-1)
        res = torch.index_select(stack.reshape(k * n, -1), 0, flat,
                                 out=None if out is None else out.view(k * n, -1))
        return res.view(stack.shape)
    view = [k] + [1] * (stack.dim() - 1)
    view[ax] = idx.shape[1]
    index = idx.view(view).expand(stack.shape)
    return torch.gather(stack, ax, index) if out is None else torch.gather(stack, ax, index,
                                                                           out=out)


def weighted(stack: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``Σ_k w_k S_k`` for a stack ``[K, *shape]`` and weights ``[K]`` (in the stack's dtype)."""
    return torch.tensordot(w.to(stack.dtype), stack, dims=1)


def _row_sq(x: torch.Tensor) -> torch.Tensor:
    """``|x_i|²`` (float64) of rows ``[..., w, f]``."""
    return torch.linalg.vector_norm(x, dim=-1).double().square()


def align_group(
    stacks: Stacks,
    anchor: Mapping[str, torch.Tensor],
    g: UnitGroup,
    *,
    squared: bool = False,
    include_outgoing: bool = False,
    bufs: Buffers | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact alignment of K equal-width clients of group ``g`` to the anchor.

    Returns ``perms`` (``[K, w]`` int64, aligned unit ``j`` of client ``k`` = its unit
    ``perms[k, j]``), ``||W̃_k − A||²`` over the members of ``g`` and the transport costs before
    (identity, ``tr(C_k)/w``) and after (``Σ_j C_k[perms[k, j], j] / w``) the alignment (three
    ``[K]`` float64). The Gram runs in the state's dtype (for float32 its cancellation error is
    ~1e-6·|A|², so ``d_k`` resolves differences above ~1e-3·|A|); the other members' distances
    are computed exactly on permuted copies.
    """
    w = g.width
    feat = [m for m in g.members if m.role == "in" or include_outgoing]
    gram = ref_sq = src_sq = None
    for m in feat:
        x, y = stacked_rows(stacks[m.key], m, w), _rows(anchor[m.key], m, w)
        gm = torch.matmul(x, y.T)
        gram = gm if gram is None else gram.add_(gm)
        ref_sq = _row_sq(y) if ref_sq is None else ref_sq + _row_sq(y)
        src_sq = _row_sq(x) if src_sq is None else src_sq + _row_sq(x)
    c2 = (src_sq.unsqueeze(2) + ref_sq.view(1, 1, w) - 2.0 * gram.double()).clamp_(min=0.0)
    cost = c2 if squared else c2.sqrt()
    perms = assignments(cost)
    dist = c2.gather(1, perms.unsqueeze(1)).squeeze(1).sum(dim=1)
    before = cost.diagonal(dim1=1, dim2=2).sum(dim=1) / w
    after = cost.gather(1, perms.unsqueeze(1)).squeeze(1).sum(dim=1) / w
    for i, m in enumerate(g.members):
        if m not in feat:
            st = stacks[m.key]
            buf = bufs.get(f"perm{i}", st.shape, st.dtype) if bufs else None
            diff = torch.sub(permute_stack(st, m, w, perms, out=buf), anchor[m.key],
                             out=bufs.get(f"diff{i}", st.shape, st.dtype) if bufs else None)
            dist += torch.linalg.vector_norm(diff.flatten(1), dim=1).double().square()
    return perms, dist, before, after


def integrate_group(
    stacks: Stacks, g: UnitGroup, perms: torch.Tensor, w: torch.Tensor,
    bufs: Buffers | None = None,
) -> dict[str, torch.Tensor]:
    """``Σ_k w_k W̃_k`` for every member of ``g``: permute the stacks, contract the client axis."""
    out = {}
    for i, m in enumerate(g.members):
        st = stacks[m.key]
        buf = bufs.get(f"perm{i}", st.shape, st.dtype) if bufs else None
        out[m.key] = weighted(permute_stack(st, m, g.width, perms, out=buf), w)
    return out
