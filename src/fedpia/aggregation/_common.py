"""Shared validation and the weighted average used by every server rule in this package.

All functions here work on *named state dicts* ``dict[str, torch.Tensor]``; names are never
flattened away. ``weighted_average`` is the FedAvg of McMahan et al. 2017
(https://arxiv.org/abs/1602.05629) and is kept private to ``fedpia.aggregation`` so that this
package does not depend on the timing of ``fedpia.align.fedavg``; the two may be unified later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

State = dict[str, torch.Tensor]


class AggregationError(RuntimeError):
    """Raised when a server round cannot aggregate (e.g. too few valid client updates)."""


def normalize_weights(weights: Sequence[float] | torch.Tensor | None, n: int) -> torch.Tensor:
    """Return ``p_k = w_k / sum_j w_j`` as a float64 tensor of shape ``[n]``.

    ``weights=None`` means uniform weights. Raises ``ValueError`` when the length differs from
    ``n``, a weight is negative or non-finite, or the sum is not positive.
    """
    if n <= 0:
        raise ValueError("need at least one state to aggregate (got 0)")
    if weights is None:
        return torch.full((n,), 1.0 / n, dtype=torch.float64)
    w = torch.as_tensor(weights, dtype=torch.float64).reshape(-1)
    if w.numel() != n:
        raise ValueError(f"weights has {w.numel()} entries but there are {n} states")
    if not torch.isfinite(w).all():
        raise ValueError(f"weights must be finite, got {w.tolist()}")
    if (w < 0).any():
        raise ValueError(f"weights must be >= 0, got {w.tolist()}")
    total = w.sum()
    if total <= 0:
        raise ValueError(f"weights must have a positive sum, got {w.tolist()}")
    return w / total


def check_same_structure(
    states: Sequence[Mapping[str, torch.Tensor]], *, names: Sequence[str] | None = None
) -> None:
    """Check that all states have the same keys, shapes and dtypes (``ValueError`` naming the key).

    ``names`` labels the states in error messages (default ``state[k]``).
    """
    if len(states) == 0:
        raise ValueError("need at least one state (got 0)")
    labels = list(names) if names is not None else [f"state[{k}]" for k in range(len(states))]
    ref, ref_name = states[0], labels[0]
    for k, state in enumerate(states[1:], start=1):
        missing = sorted(set(ref) - set(state))
        extra = sorted(set(state) - set(ref))
        if missing:
            raise ValueError(f"{labels[k]} is missing key {missing[0]!r} present in {ref_name}")
        if extra:
            raise ValueError(f"{labels[k]} has extra key {extra[0]!r} absent from {ref_name}")
        for key, t in state.items():
            r = ref[key]
            if tuple(t.shape) != tuple(r.shape):
                raise ValueError(
                    f"key {key!r}: shape {tuple(t.shape)} in {labels[k]} "
                    f"!= {tuple(r.shape)} in {ref_name}"
                )
            if t.dtype != r.dtype:
                raise ValueError(
                    f"key {key!r}: dtype {t.dtype} in {labels[k]} != {r.dtype} in {ref_name}"
                )


def check_finite(state: Mapping[str, torch.Tensor], *, name: str = "state") -> None:
    """Raise ``ValueError`` naming the first key of ``state`` holding a NaN or Inf."""
    for key, t in state.items():
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name}[{key!r}] is a {type(t).__name__}, expected a torch.Tensor")
        if (t.is_floating_point() or t.is_complex()) and not torch.isfinite(t).all():
            raise ValueError(f"{name}[{key!r}] contains NaN or Inf")


def weighted_average(
    states: Sequence[Mapping[str, torch.Tensor]],
    weights: Sequence[float] | torch.Tensor | None,
) -> State:
    r"""Weighted FedAvg of named states: :math:`\bar x[key] = \sum_k p_k x_k[key]`.

    ``p_k = w_k / \sum_j w_j`` (``weights=None``: uniform). Accumulation is done in float64 and
    cast back to each key's dtype, so a single state is returned exactly.

    Args:
        states: K >= 1 dicts with identical key sets, shapes and floating dtypes.
        weights: K non-negative finite numbers with a positive sum (e.g. example counts).

    Returns:
        A new dict (fresh tensors) with the same keys, shapes and dtypes.

    Raises:
        ValueError: empty input, mismatched keys/shapes/dtypes (naming the key), NaN/Inf,
            non-floating tensors, bad weights.
    """
    states = list(states)
    p = normalize_weights(weights, len(states))
    check_same_structure(states)
    for k, state in enumerate(states):
        check_finite(state, name=f"state[{k}]")
    out: State = {}
    for key, ref in states[0].items():
        if not ref.is_floating_point():
            raise ValueError(f"key {key!r}: cannot average non-floating dtype {ref.dtype}")
        acc = torch.zeros(ref.shape, dtype=torch.float64)
        for pk, state in zip(p, states, strict=True):
            acc += pk * state[key].detach().to(device="cpu", dtype=torch.float64)
        out[key] = acc.to(dtype=ref.dtype, device=ref.device)
    return out
