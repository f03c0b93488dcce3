"""Weighted averaging (FedAvg) and the FedPIA client-side merge."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from fedpia.align.checks import check_finite_sum, check_states, check_weights
from fedpia.align.pairwise import AlignResult, align

State = dict[str, torch.Tensor]


def weighted_sum(states: Sequence[Mapping[str, torch.Tensor]], w: Sequence[float]) -> State:
    """``Σ_k w_k S_k`` for every key (no validation, no normalisation; new tensors)."""
    keys = list(states[0])
    out = {k: states[0][k] * float(w[0]) for k in keys}
    for s, wk in zip(states[1:], w[1:], strict=True):
        if wk == 0.0:
            continue
        for k in keys:
            out[k].add_(s[k], alpha=float(wk))
    return out


def fedavg(
    states: Sequence[Mapping[str, torch.Tensor]], weights: Sequence[float] | torch.Tensor
) -> State:
    """FedAvg (McMahan et al. 2017, https://arxiv.org/abs/1602.05629): ``Σ_k p_k S_k``.

    ``weights`` are example counts (any non-negative numbers with a positive sum); they are
    normalised to ``p_k = n_k / Σ_j n_j``. Every key is averaged in its own dtype. Raises
    ``ValueError`` (naming the key) for empty input, mismatched key sets / shapes / dtypes,
    NaN/Inf values, and negative, non-finite or zero-sum weights.
    """
    check_states(states, finite=False)
    p = check_weights(weights, len(states)).tolist()
    out = weighted_sum(states, p)
    check_finite_sum(states, p, out)
    return out


def mix_states(
    a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], mix: float
) -> State:
    """``mix · a + (1 − mix) · b`` for every key of ``b`` (new tensors): the client merge of
    FedPIA, also used without the permutation by the ``fedavg-mix`` control."""
    if not 0.0 <= float(mix) <= 1.0:
        raise ValueError(f"mix must be in [0, 1], got {mix}")
    mix = float(mix)
    return {k: a[k] * mix + b[k] * (1.0 - mix) for k in b}


@dataclass(frozen=True)
class ClientStep:
    """Result of :func:`fedpia_client_step`: the merged ``state`` and the alignment of ``G``
    onto ``L`` (plans applied, optimal plans proposed, groups kept in place by the margin)."""

    state: State
    alignment: AlignResult


def fedpia_client_step(
    local: Mapping[str, torch.Tensor],
    global_: Mapping[str, torch.Tensor],
    *,
    mix: float = 0.5,
    cost: str = "activation",
    local_acts: Mapping[str, torch.Tensor] | None = None,
    global_acts: Mapping[str, torch.Tensor] | None = None,
    solver: str = "exact",
    squared: bool = False,
    include_outgoing: bool = False,
    reg: float = 0.05,
    margin: float = 0.0,
) -> ClientStep:
    """FedPIA client step with its alignment diagnostics (see :func:`fedpia_client`).

    ``margin``: a group's permutation of ``G`` is applied only when it lowers the transport cost
    by at least that relative share (:func:`~fedpia.align.align`); 0 = the paper's form.
    """
    if not 0.0 <= float(mix) <= 1.0:
        raise ValueError(f"mix must be in [0, 1], got {mix}")
    res = align(global_, local, cost=cost, solver=solver, squared=squared,
                include_outgoing=include_outgoing, reg=reg, source_acts=global_acts,
                reference_acts=local_acts, margin=margin)
    return ClientStep(state=mix_states(res.state, local, mix), alignment=res)


def fedpia_client(
    local: Mapping[str, torch.Tensor],
    global_: Mapping[str, torch.Tensor],
    *,
    mix: float = 0.5,
    cost: str = "activation",
    local_acts: Mapping[str, torch.Tensor] | None = None,
    global_acts: Mapping[str, torch.Tensor] | None = None,
    solver: str = "exact",
    squared: bool = False,
    include_outgoing: bool = False,
    reg: float = 0.05,
    margin: float = 0.0,
) -> State:
    """FedPIA client step: permute the global adapter ``G`` onto the local ``L``, then merge.

    ``perm(G)`` = :func:`~fedpia.align.align` ``(G, L)`` (``G`` expressed in ``L``'s unit order and
    width; activation cost uses ``global_acts`` / ``local_acts``, ``{group: [n_samples, width]}``
    computed on the same ``n_samples`` local inputs). Then for every key
    ``start = mix · perm(G) + (1 − mix) · L``: ``mix`` is the paper's λ (``mix=1`` returns
    ``perm(G)``, ``mix=0`` returns ``L``). Keys in no group are merged with the same λ.
    ``margin > 0`` keeps a group of ``G`` in place unless its permutation lowers the cost by that
    relative share (see :func:`fedpia_client_step`, which also returns the plans).
    """
    return fedpia_client_step(local, global_, mix=mix, cost=cost, local_acts=local_acts,
                              global_acts=global_acts, solver=solver, squared=squared,
                              include_outgoing=include_outgoing, reg=reg, margin=margin).state
