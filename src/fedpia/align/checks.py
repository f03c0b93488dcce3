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


def check_finite(state: Mapping[str, torch.Tensor], label: str) -> None:
    """Raise ``ValueError`` naming the first key of ``state`` with NaN/Inf values."""
    for key, t in state.items():
        # A finite sum implies finite entries (NaN/Inf propagate); confirm exactly otherwise.
        if not torch.isfinite(t.sum()) and not bool(torch.isfinite(t).all()):
            raise ValueError(f"key {key!r} in {label} has NaN/Inf values")


def check_finite_sum(
    states: Sequence[Mapping[str, torch.Tensor]],
    p: Sequence[float],
    total: Mapping[str, torch.Tensor],
    *,
    what: str = "states",
) -> None:
    """NaN/Inf check folded into a weighted sum ``total = Σ_k p_k S_k`` (saves a pass over data).

    NaN/Inf in any ``S_k`` with ``p_k > 0`` propagate into ``total``; only then are the clients
    scanned (to name key and state). States with ``p_k = 0`` are scanned directly.
    """
    bad = [k for k, t in total.items()
           if not torch.isfinite(t.sum()) and not bool(torch.isfinite(t).all())]
    for idx, s in enumerate(states):
        if p[idx] == 0.0:
            check_finite(s, f"{what}[{idx}]")
        elif bad:
            check_finite({k: s[k] for k in bad}, f"{what}[{idx}]")
    if bad:
        raise ValueError(f"key {bad[0]!r}: the weighted average overflows to Inf")


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
    finite: bool = True,
) -> list[UnitGroup]:
    """Validate a list of named states and return the unit groups of ``states[0]``.

    Checks: at least one state; no empty state; equal key sets; floating dtypes equal per key;
    finite values; equal shapes per key (with ``same_width=False`` a group member may differ on
    its unit axis only, i.e. clients may have different adapter widths); same unit groups.
    ``labels`` names the states in messages (default ``f"{what}[k]"``). ``finite=False`` skips the
    NaN/Inf scan: the caller then runs :func:`check_finite_sum` on its weighted sum instead.
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
                if t.shape != r.shape and _unit_free_shape(t, ax) != _unit_free_shape(r, ax):
                    raise ValueError(f"key {key!r}: shape {tuple(t.shape)} in {names_[idx]} != "
                                     f"{tuple(r.shape)} in {names_[0]}")
            if not same_width and any(s[k].shape != ref[k].shape for k in axis_of):
                other = [g.name for g in unit_groups(s)]
                if other != names:
                    raise ValueError(f"{names_[idx]} unit groups {other} != {names} of {names_[0]}")
        if finite:
            check_finite(s, names_[idx])
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


def client_groups(
    states: Sequence[Mapping[str, torch.Tensor]], groups: Sequence[UnitGroup]
) -> list[dict[str, UnitGroup]]:
    """Unit groups of every state (validated by :func:`check_states`); re-derived only for states
    whose group tensors differ in shape from ``states[0]`` (another adapter width)."""
    first = {g.name: g for g in groups}
    keys = [k for g in groups for k in g.keys]
    out = []
    for s in states:
        same = all(s[k].shape == states[0][k].shape for k in keys)
        out.append(first if same else {g.name: g for g in unit_groups(s)})
    return out
