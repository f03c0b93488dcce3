"""Weighted averaging (FedAvg) and the FedPIA client-side merge."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from fedpia.align.checks import check_finite_sum, check_states, check_weights
from fedpia.align.pairwise import align

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
) -> State:
    """FedPIA client step: permute the global adapter ``G`` onto the local ``L``, then merge.

    ``perm(G)`` = :func:`~fedpia.align.align` ``(G, L)`` (``G`` expressed in ``L``'s unit order and
    width; activation cost uses ``global_acts`` / ``local_acts``, ``{group: [n_samples, width]}``
    computed on the same ``n_samples`` local inputs). Then for every key
    ``start = mix · perm(G) + (1 − mix) · L``: ``mix`` is the paper's λ (``mix=1`` returns
    ``perm(G)``, ``mix=0`` returns ``L``). Keys in no group are merged with the same λ.
    """
    if not 0.0 <= float(mix) <= 1.0:
        raise ValueError(f"mix must be in [0, 1], got {mix}")
    res = align(global_, local, cost=cost, solver=solver, squared=squared,
                include_outgoing=include_outgoing, reg=reg, source_acts=global_acts,
                reference_acts=local_acts)
    mix = float(mix)
    return {k: res.state[k] * mix + local[k] * (1.0 - mix) for k in local}
