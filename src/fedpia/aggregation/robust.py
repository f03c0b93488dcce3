"""Screening of whole client uploads before aggregation (pure; used by ``fedpia.rounds``).

An upload is its example count, its state (named tensors that must match the global state's keys,
shapes and dtypes) and its extras (strategy-specific named states, e.g. SCAFFOLD's ``delta_c``).
Each check returns None (valid) or a human-readable reason naming the first offending item, so
one corrupt upload is rejected rather than poisoning (or crashing) the round:

* count: an integer (``int``, or an integral float such as ``24.0``), finite, ``>= 1``,
  ``<= max_examples`` — −5, NaN, ±Inf, None, 2.5 and 1e15 (with the default cap) are rejected;
* tensors: a ``torch.Tensor``, dense (strided layout: sparse layouts are rejected before any
  arithmetic touches them), not on the ``meta`` device (no data), the reference's shape and
  dtype (state; extras: floating point), every value finite and ``|x| <= max_abs``.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Mapping, Sequence

import torch

from ._common import AggregationError

logger = logging.getLogger(__name__)


def check_count(n: object, *, max_examples: int | None = None) -> str | None:
    """None if ``n`` is a valid example count (integer in ``[1, max_examples]``), else why not."""
    if isinstance(n, bool) or not isinstance(n, numbers.Real):
        return f"example count {n!r} is not a number"
    x = float(n)
    if not math.isfinite(x):
        return f"example count {n!r} is not finite"
    if x != math.floor(x):
        return f"example count {n!r} is not an integer"
    if x < 1:
        return f"example count {n!r} must be >= 1"
    if max_examples is not None and x > max_examples:
        return f"example count {n!r} exceeds the cap robust.max_examples={max_examples}"
    return None


def check_tensor(key: str, t: object, *, max_abs: float | None = None) -> str | None:
    """None if ``t`` is a dense, strided, non-meta floating tensor with finite values bounded by
    ``max_abs``; else a reason naming ``key``. Layout and device are checked before any value is
    read (a sparse or meta tensor must not crash the screening)."""
    if not isinstance(t, torch.Tensor):
        return f"key {key!r} is a {type(t).__name__}, not a tensor"
    if t.layout != torch.strided:
        return f"key {key!r} is not a dense tensor (layout {t.layout})"
    if t.is_meta:
        return f"key {key!r} is a meta tensor (no data)"
    if not t.is_floating_point():
        return f"key {key!r} has dtype {t.dtype}, expected a floating point dtype"
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        return f"key {key!r} has {int((~finite).sum())} NaN/Inf value(s)"
    if max_abs is not None and t.numel() and float(t.abs().max()) > max_abs:
        return f"key {key!r} has max |x| = {float(t.abs().max()):.3g} > robust.max_abs={max_abs:g}"
    return None


def validate_update(
    update: Mapping[str, torch.Tensor],
    reference: Mapping[str, torch.Tensor],
    *,
    max_abs: float | None = None,
) -> str | None:
    """None if ``update`` has exactly ``reference``'s keys, shapes and dtypes and every tensor
    passes :func:`check_tensor`; else a reason naming the first offending key."""
    if not isinstance(update, Mapping):
        return f"update is a {type(update).__name__}, expected a dict of tensors"
    for what, keys in (("missing", set(reference) - set(update)),
                       ("unexpected", set(update) - set(reference))):
        if keys:
            first = sorted(keys)[0]
            more = f" (+{len(keys) - 1} more)" if len(keys) > 1 else ""
            return f"{what} key {first!r}{more}"
    for key, ref in reference.items():
        t = update[key]
        if not isinstance(t, torch.Tensor):
            return f"key {key!r} is a {type(t).__name__}, not a tensor"
        if tuple(t.shape) != tuple(ref.shape):
            return f"key {key!r} has shape {tuple(t.shape)}, expected {tuple(ref.shape)}"
        if t.dtype != ref.dtype:
            return f"key {key!r} has dtype {t.dtype}, expected {ref.dtype}"
        reason = check_tensor(key, t, max_abs=max_abs)
        if reason is not None:
            return reason
    return None


def validate_extra(extra: object, *, max_abs: float | None = None) -> str | None:
    """None if ``extra`` is ``{name: {key: tensor}}`` with every tensor passing
    :func:`check_tensor`; else a reason naming ``name/key``."""
    if not isinstance(extra, Mapping):
        return f"extras are a {type(extra).__name__}, expected a dict of states"
    for name, state in extra.items():
        if not isinstance(state, Mapping):
            return f"extra {name!r} is a {type(state).__name__}, expected a dict of tensors"
        for key, t in state.items():
            reason = check_tensor(f"{name}/{key}", t, max_abs=max_abs)
            if reason is not None:
                return f"extra {reason}"
    return None


def screen_upload(
    state: Mapping[str, torch.Tensor],
    num_examples: object,
    extra: object,
    reference: Mapping[str, torch.Tensor],
    *,
    max_examples: int | None = None,
    max_abs: float | None = None,
) -> str | None:
    """The whole upload: count, state against ``reference``, extras. None = accept."""
    return (check_count(num_examples, max_examples=max_examples)
            or validate_update(state, reference, max_abs=max_abs)
            or validate_extra(extra, max_abs=max_abs))


def filter_updates(
    updates: Sequence[Mapping[str, torch.Tensor]],
    reference: Mapping[str, torch.Tensor],
    *,
    min_clients: int = 1,
    max_abs: float | None = None,
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
        reason = validate_update(update, reference, max_abs=max_abs)
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
