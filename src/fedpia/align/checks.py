"""Input validation shared by the alignment core; every error names the offending key/field."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from fedpia.align.groups import UnitGroup, unit_groups

State = dict[str, torch.Tensor]


def check_choice(field: str, value: str, allowed: tuple[str, ...]) -> str:
    """Raise ``ValueError`` listing ``allowed`` when ``value`` is not one of them."""
    if value not in allowed:
        raise ValueError(f"{field}={value!r} is not one of {allowed}")
    return value


def check_weights(weights: Sequence[float] | torch.Tensor, n: int) -> torch.Tensor:
    """Return ``p_k = w_k / sum_j w_j`` (float64, shape ``[n]``); reject bad weights."""
    w = torch.as_tensor(weights, dtype=torch.float64).reshape(-1)
    if w.numel() != n:
        raise ValueError(f"weights has {w.numel()} entries but there are {n} states")
    for k, v in enumerate(w.tolist()):
        if not math.isfinite(v):
            raise ValueError(f"weights[{k}] = {v} is not finite")
        if v < 0:
            raise ValueError(f"weights[{k}] = {v} is negative")
    total = float(w.sum())
    if total <= 0:
        raise ValueError(f"weights sum to {total}; need a positive total")
    return w / total


def _check_finite(state: Mapping[str, torch.Tensor], label: str) -> None:
    for key, t in state.items():
        # A finite sum implies finite entries (NaN/Inf propagate); confirm exactly otherwise.
        if not torch.isfinite(t.sum()) and not bool(torch.isfinite(t).all()):
            raise ValueError(f"key {key!r} in {label} has NaN/Inf values")


def _unit_free_shape(t: torch.Tensor, axis: int | None) -> tuple[int, ...]:
    shape = list(t.shape)
    if axis is not None:
        shape[axis] = -1
    return tuple(shape)


def check_states(
    states: Sequence[Mapping[str, torch.Tensor]],
    *,
    what: str = "states",
    labels: Sequence[str] | None = None,
    same_width: bool = True,
) -> list[UnitGroup]:
    """Validate a list of named states and return the unit groups of ``states[0]``.

    Checks: at least one state; no empty state; equal key sets; floating dtypes equal per key;
    finite values; equal shapes per key (with ``same_width=False`` a group member may differ on
    its unit axis only, i.e. clients may have different adapter widths); same unit groups.
    ``labels`` names the states in messages (default ``f"{what}[k]"``).
    """
    names_ = list(labels) if labels is not None else [f"{what}[{k}]" for k in range(len(states))]
    if len(states) == 0:
        raise ValueError(f"{what} is empty: need at least one state")
    ref = states[0]
    if len(ref) == 0:
        raise ValueError(f"{names_[0]} has no keys")
    groups = unit_groups(ref)
    axis_of = {m.key: m.axis for g in groups for m in g.members}
    names = [g.name for g in groups]
    for key, t in ref.items():
        if not t.dtype.is_floating_point:
            raise ValueError(f"key {key!r}: dtype {t.dtype} is not floating point")
    for idx, s in enumerate(states):
        if idx > 0:
            missing, extra = sorted(set(ref) - set(s)), sorted(set(s) - set(ref))
            if missing or extra:
                raise ValueError(f"{names_[idx]} key set differs from {names_[0]}: missing keys "
                                 f"{missing}, unexpected keys {extra}")
            for key, t in s.items():
                r = ref[key]
                if t.dtype != r.dtype:
                    raise ValueError(f"key {key!r}: dtype {t.dtype} in {names_[idx]} != {r.dtype} "
                                     f"in {names_[0]}")
                ax = None if same_width else axis_of.get(key)
                if _unit_free_shape(t, ax) != _unit_free_shape(r, ax):
                    raise ValueError(f"key {key!r}: shape {tuple(t.shape)} in {names_[idx]} != "
                                     f"{tuple(r.shape)} in {names_[0]}")
            if not same_width:
                other = [g.name for g in unit_groups(s)]
                if other != names:
                    raise ValueError(f"{names_[idx]} unit groups {other} != {names} of {names_[0]}")
        _check_finite(s, names_[idx])
    return groups


def check_acts(
    acts: Mapping[str, torch.Tensor] | None, groups: Sequence[UnitGroup], *, what: str
) -> dict[str, torch.Tensor]:
    """Validate ``{group name: Tensor[n_samples, width]}`` activations for every group."""
    if acts is None:
        raise ValueError(f"cost='activation' needs {what} ({{group name: Tensor[n_samples, "
                         f"width]}}), got None")
    out: dict[str, torch.Tensor] = {}
    for g in groups:
        if g.name not in acts:
            raise ValueError(f"{what} has no activations for group {g.name!r}")
        a = torch.as_tensor(acts[g.name])
        if a.dim() != 2 or a.shape[1] != g.width or a.shape[0] < 1:
            raise ValueError(f"{what}[{g.name!r}] has shape {tuple(a.shape)}; expected "
                             f"(n_samples, {g.width})")
        if not bool(torch.isfinite(a).all()):
            raise ValueError(f"{what}[{g.name!r}] has NaN/Inf values")
        out[g.name] = a
    return out
