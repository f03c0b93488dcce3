"""Screening of client updates before aggregation (used by the simulator and Flower engine).

A corrupt update (NaN/Inf, missing or extra keys, wrong shapes or dtypes, non-tensors) is
rejected with a human-readable reason rather than poisoning the average; the round fails with
:class:`AggregationError` if fewer than ``min_clients`` valid updates remain.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import torch

from ._common import AggregationError

logger = logging.getLogger(__name__)


def validate_update(
    update: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor]
) -> str | None:
    """Return None if ``update`` matches ``reference`` (same keys, shapes, dtypes) and is
    finite; else a reason naming the first offending key."""
    if not isinstance(update, Mapping):
        return f"update is a {type(update).__name__}, expected a dict of tensors"
    missing = sorted(set(reference) - set(update))
    if missing:
        return f"missing key {missing[0]!r}" + (
            f" (+{len(missing) - 1} more)" if len(missing) > 1 else ""
        )
    extra = sorted(set(update) - set(reference))
    if extra:
        return f"unexpected key {extra[0]!r}" + (
            f" (+{len(extra) - 1} more)" if len(extra) > 1 else ""
        )
    for key, ref in reference.items():
        t = update[key]
        if not isinstance(t, torch.Tensor):
            return f"key {key!r} is a {type(t).__name__}, not a tensor"
        if tuple(t.shape) != tuple(ref.shape):
            return f"key {key!r} has shape {tuple(t.shape)}, expected {tuple(ref.shape)}"
        if t.dtype != ref.dtype:
            return f"key {key!r} has dtype {t.dtype}, expected {ref.dtype}"
        if (t.is_floating_point() or t.is_complex()) and not torch.isfinite(t).all():
            n_bad = int((~torch.isfinite(t)).sum())
            return f"key {key!r} has {n_bad} NaN/Inf value(s)"
    return None


def filter_updates(
    updates: Sequence[Mapping[str, torch.Tensor]],
    reference: Mapping[str, torch.Tensor],
    *,
    min_clients: int = 1,
) -> tuple[list[int], dict[int, str]]:
    """Split ``updates`` into valid indices and ``{index: reason}`` rejections (logged).

    Raises:
        ValueError: ``min_clients`` < 1.
        AggregationError: fewer than ``min_clients`` valid updates remain.
    """
    if not isinstance(min_clients, int) or min_clients < 1:
        raise ValueError(f"min_clients must be an int >= 1, got {min_clients!r}")
    valid: list[int] = []
    rejected: dict[int, str] = {}
    for k, update in enumerate(updates):
        reason = validate_update(update, reference)
        if reason is None:
            valid.append(k)
        else:
            rejected[k] = reason
            logger.warning("rejecting client update %d: %s", k, reason)
    if len(valid) < min_clients:
        details = "; ".join(f"{k}: {r}" for k, r in rejected.items()) or "no updates received"
        raise AggregationError(
            f"only {len(valid)} valid client update(s) out of {len(updates)}, "
            f"need min_clients={min_clients} (rejected: {details})"
        )
    return valid, rejected
