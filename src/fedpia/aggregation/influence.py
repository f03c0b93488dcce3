"""Bounded influence of single clients: a norm bound on updates, and robust averaging rules.

Norm bound (applied by ``fedpia.rounds`` before ANY aggregation rule, FedPIA included): with
the global state G and client states W_k (K screened uploads), the update of client k is
``Δ_k = W_k − G`` with norm ``n_k = sqrt(Σ_keys ‖Δ_k[key]‖²)`` (float64). The bound is
``b = c · med(n)`` with ``med`` the LOWER median (the ⌈K/2⌉-th smallest norm; for K = 2 the
smaller one, so one of two clients cannot set the scale by itself). Clients with ``n_k > b``
are clipped, ``W_k ← G + (b / n_k) Δ_k`` (``mode="clip"``: the direction is kept, the length
bounded), or dropped (``mode="reject"``). Then one client moves a FedAvg average by at most
``p_k · b``, whatever it sends. Updates at or below the bound are returned unchanged (the same
tensor objects), so an honest round is bit-identical to an unbounded one unless an honest
client exceeds ``c`` times the median. With ``b = 0`` (the majority sent G back) nothing is
bounded.

Robust rules (Yin et al. 2018, arXiv:1803.01498), unweighted, per coordinate over K states:
``coordinate_median`` (the median; mean of the two middle values for even K) and
``trimmed_mean(beta)`` (drop the ⌊βK⌋ smallest and largest values, average the rest).

All states must have the global's keys and shapes (the engines' screening guarantees it; clients
of different adapter widths are not comparable coordinate-wise: align them first, see
``fedpia.align.align``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from ._common import AggregationError

State = dict[str, torch.Tensor]
BOUND_MODES = ("clip", "reject", "off")


def update_norms(states: Sequence[Mapping[str, torch.Tensor]],
                 reference: Mapping[str, torch.Tensor]) -> list[float]:
    """``‖W_k − G‖`` over all keys of ``reference`` (float64); ValueError on a shape mismatch."""
    out = []
    for k, s in enumerate(states):
        sq = 0.0
        for key, ref in reference.items():
            if s[key].shape != ref.shape:
                raise ValueError(f"states[{k}][{key!r}] has shape {tuple(s[key].shape)}, the "
                                 f"global {tuple(ref.shape)}: align unequal widths first")
            d = s[key].to(torch.float64) - ref.to(torch.float64)
            sq += float(torch.linalg.vector_norm(d) ** 2)
        out.append(math.sqrt(sq))
    return out


def lower_median(values: Sequence[float]) -> float:
    """The ⌈K/2⌉-th smallest value (K = len(values) >= 1)."""
    if not values:
        raise ValueError("lower_median of no values")
    return sorted(values)[(len(values) - 1) // 2]


@dataclass(frozen=True)
class Bounded:
    """Result of :func:`bound_updates`: ``states`` (clipped ones replaced, same order),
    ``norms`` n_k, ``bound`` b (None when off or b = 0), ``scales`` {k: b/n_k} of clipped
    clients, ``rejected`` {k: reason} (mode "reject")."""

    states: list[Mapping[str, torch.Tensor]]
    norms: list[float]
    bound: float | None
    scales: dict[int, float]
    rejected: dict[int, str]


def bound_updates(
    states: Sequence[Mapping[str, torch.Tensor]],
    reference: Mapping[str, torch.Tensor],
    *,
    factor: float,
    mode: str = "clip",
) -> Bounded:
    """Bound each update to ``factor`` x the lower-median update norm (module docstring)."""
    if mode not in BOUND_MODES:
        raise ValueError(f"mode={mode!r}; allowed: {list(BOUND_MODES)}")
    if not (math.isfinite(factor) and factor >= 1.0):
        raise ValueError(f"factor must be a finite number >= 1, got {factor}")
    states = list(states)
    if not states or not reference:
        return Bounded(states, [0.0] * len(states), None, {}, {})
    norms = update_norms(states, reference)
    bound = factor * lower_median(norms)
    if mode == "off" or bound == 0.0:
        return Bounded(states, norms, None, {}, {})
    scales: dict[int, float] = {}
    rejected: dict[int, str] = {}
    for k, n in enumerate(norms):
        if n <= bound:
            continue
        if mode == "reject":
            rejected[k] = f"update norm {n:.4g} > bound {bound:.4g} ({factor:g} x median)"
            continue
        scales[k] = bound / n
        states[k] = {key: ref + (states[k][key] - ref) * scales[k] for key, ref in reference.items()}
    return Bounded(states, norms, bound, scales, rejected)


def _stack(states: Sequence[Mapping[str, torch.Tensor]], key: str) -> torch.Tensor:
    return torch.stack([s[key] for s in states])


def coordinate_median(states: Sequence[Mapping[str, torch.Tensor]]) -> State:
    """Per-coordinate median of K states (mean of the two middle values for even K)."""
    if not states:
        raise AggregationError("coordinate_median of no states")
    out: State = {}
    for key in states[0]:
        x = _stack(states, key).sort(dim=0).values
        k = x.shape[0]
        out[key] = x[(k - 1) // 2] if k % 2 else (x[k // 2 - 1] + x[k // 2]) / 2
    return out


def trimmed_mean(states: Sequence[Mapping[str, torch.Tensor]], *, beta: float) -> State:
    """Per-coordinate mean after dropping the ⌊βK⌋ smallest and largest values (0 <= β < 0.5)."""
    if not states:
        raise AggregationError("trimmed_mean of no states")
    if not 0.0 <= beta < 0.5:
        raise ValueError(f"beta must be in [0, 0.5), got {beta}")
    t = int(math.floor(beta * len(states)))
    out: State = {}
    for key in states[0]:
        x = _stack(states, key).sort(dim=0).values
        out[key] = x[t: x.shape[0] - t].mean(dim=0)
    return out
