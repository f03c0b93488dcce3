"""Unit groups: which rows/columns of which tensors share one hidden-unit axis.

A hidden unit of an adapter can be permuted without changing the function the adapter computes
(rows of the down projection / LoRA ``A`` and the matching columns of the up projection / LoRA
``B``). :func:`unit_groups` derives these groups from key names alone, following the naming
contract of ``docs/architecture.md``; :func:`permute_units` applies a permutation per group.

Permutation convention (used everywhere in :mod:`fedpia.align`): ``perm`` is a ``LongTensor`` of
shape ``[width]`` and the permuted unit ``j`` is the old unit ``perm[j]`` (a gather). For a member
with ``repeat = r`` the unit axis has length ``r * width`` and index ``a * width + b`` becomes
``a * width + perm[b]`` in every block ``a``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch

State = dict[str, torch.Tensor]

_ROLES = ("in", "out")
_BOTTLENECK = re.compile(r"^(?P<prefix>.+)\.(?P<side>down|up)\.weight$")
_COMPACTER = re.compile(r"^(?P<prefix>.+)\.(?P<side>down|up)\.phm_w$")
_LORA = re.compile(r"^(?P<prefix>.+)\.lora_(?P<side>[AB])(?:\.(?P<adapter>[^.]+))?\.weight$")


@dataclass(frozen=True)
class Member:
    """One tensor of a unit group: ``key``'s axis ``axis`` indexes the group's units.

    ``role="in"`` tensors produce the unit (rows of a down projection, its bias), ``role="out"``
    tensors consume it (columns of an up projection). ``repeat`` > 1: the axis has length
    ``repeat * width``, laid out as ``repeat`` blocks of ``width`` (Kronecker / PHM layers).
    """

    key: str
    axis: int
    role: str
    repeat: int = 1

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise ValueError(f"Member {self.key!r}: role={self.role!r} is not one of {_ROLES}")
        if self.repeat < 1:
            raise ValueError(f"Member {self.key!r}: repeat must be >= 1, got {self.repeat}")


@dataclass(frozen=True)
class UnitGroup:
    """A named set of tensors sharing one axis of ``width`` hidden units."""

    name: str
    width: int
    members: tuple[Member, ...]

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError(f"UnitGroup {self.name!r}: width must be >= 1, got {self.width}")
        if not any(m.role == "in" for m in self.members):
            raise ValueError(f"UnitGroup {self.name!r} has no role='in' member")

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(m.key for m in self.members)


def _unit_len(state: Mapping[str, torch.Tensor], m: Member) -> int:
    t = state[m.key]
    if not -t.dim() <= m.axis < t.dim():
        raise ValueError(f"key {m.key!r}: shape {tuple(t.shape)} has no axis {m.axis}")
    return int(t.shape[m.axis])


def _make_group(state: Mapping[str, torch.Tensor], name: str, members: list[Member]) -> UnitGroup:
    """Build a group; its width comes from the first member, every member must agree."""
    first = members[0]
    width = _unit_len(state, first) // first.repeat
    for m in members:
        size = _unit_len(state, m)
        if size != width * m.repeat:
            raise ValueError(
                f"unit group {name!r}: key {m.key!r} has {size} units on axis {m.axis}, expected "
                f"{width * m.repeat} (width {width} x repeat {m.repeat}, from {first.key!r})"
            )
    return UnitGroup(name=name, width=width, members=tuple(members))


def _partner(state: Mapping[str, torch.Tensor], key: str, other: str, what: str) -> None:
    if other not in state:
        raise ValueError(f"key {key!r} is a {what} but its partner {other!r} is missing")


def _bottleneck(state: Mapping[str, torch.Tensor], prefix: str) -> UnitGroup:
    down, up, bias = f"{prefix}.down.weight", f"{prefix}.up.weight", f"{prefix}.down.bias"
    _partner(state, down, up, "bottleneck down projection")
    _partner(state, up, down, "bottleneck up projection")
    for key in (down, up):
        if state[key].dim() != 2:
            raise ValueError(f"key {key!r}: expected a 2-d weight, got {tuple(state[key].shape)}")
    members = [Member(down, 0, "in")]
    if bias in state:
        members.append(Member(bias, 0, "in"))
    members.append(Member(up, 1, "out"))
    return _make_group(state, prefix, members)


def _compacter(state: Mapping[str, torch.Tensor], prefix: str) -> UnitGroup:
    down, up, bias = f"{prefix}.down.phm_w", f"{prefix}.up.phm_w", f"{prefix}.down.bias"
    _partner(state, down, up, "Compacter down phm_w")
    _partner(state, up, down, "Compacter up phm_w")
    for key in (down, up):
        if state[key].dim() != 3:
            raise ValueError(f"key {key!r}: expected phm_w of shape (n, a, b), got "
                             f"{tuple(state[key].shape)}")
    n = int(state[down].shape[0])
    if int(state[up].shape[0]) != n:
        raise ValueError(f"key {up!r}: PHM dimension {state[up].shape[0]} != {n} of {down!r}")
    members = [Member(down, 1, "in")]
    if bias in state:
        members.append(Member(bias, 0, "in", repeat=n))
    members.append(Member(up, 2, "out"))
    return _make_group(state, prefix, members)


def _lora(state: Mapping[str, torch.Tensor], prefix: str, adapter: str | None) -> UnitGroup:
    seg = f".{adapter}" if adapter else ""
    a_key, b_key = f"{prefix}.lora_A{seg}.weight", f"{prefix}.lora_B{seg}.weight"
    _partner(state, a_key, b_key, "LoRA A matrix")
    _partner(state, b_key, a_key, "LoRA B matrix")
    for key in (a_key, b_key):
        if state[key].dim() != 2:
            raise ValueError(f"key {key!r}: expected a 2-d weight, got {tuple(state[key].shape)}")
    name = f"{prefix}{seg}"
    return _make_group(state, name, [Member(a_key, 0, "in"), Member(b_key, 1, "out")])


def unit_groups(state: Mapping[str, torch.Tensor]) -> list[UnitGroup]:
    """Derive the unit groups of ``state`` from its key names (order of first appearance).

    Recognised (``docs/architecture.md``): bottleneck ``<p>.down.weight`` / ``<p>.down.bias`` /
    ``<p>.up.weight``; Compacter ``<p>.down.phm_w`` / ``<p>.down.bias`` (repeat n) /
    ``<p>.up.phm_w``; peft LoRA ``<p>.lora_A[.<adapter>].weight`` / ``<p>.lora_B[...].weight``.
    Keys matching none of these belong to no group. Raises ``ValueError`` naming the key when a
    group is malformed (a projection without its partner, widths that disagree).
    """
    found: dict[str, tuple] = {}
    for key in state:
        if m := _COMPACTER.match(key):
            found.setdefault(("c", m["prefix"]), (_compacter, m["prefix"]))
        elif m := _BOTTLENECK.match(key):
            found.setdefault(("b", m["prefix"]), (_bottleneck, m["prefix"]))
        elif m := _LORA.match(key):
            found.setdefault(("l", m["prefix"], m["adapter"]), (_lora, m["prefix"], m["adapter"]))
    groups: list[UnitGroup] = []
    owner: dict[str, str] = {}
    for build, *args in found.values():
        g = build(state, *args)
        for key in g.keys:
            if key in owner:
                raise ValueError(f"key {key!r} belongs to two unit groups: {owner[key]!r}, {g.name!r}")
            owner[key] = g.name
        if any(other.name == g.name for other in groups):
            raise ValueError(f"two unit groups are named {g.name!r} (key {g.members[0].key!r})")
        groups.append(g)
    return groups


def full_index(perm: torch.Tensor, member: Member, width: int) -> torch.Tensor:
    """Index along ``member``'s axis realising ``perm`` in every one of its ``repeat`` blocks."""
    if member.repeat == 1:
        return perm
    offsets = torch.arange(member.repeat, dtype=perm.dtype).unsqueeze(1) * width
    return (offsets + perm.unsqueeze(0)).reshape(-1)


def check_perm(name: str, perm: torch.Tensor, width: int) -> torch.Tensor:
    """Validate that ``perm`` is a permutation of ``range(width)``; return it as int64."""
    perm = torch.as_tensor(perm)
    if perm.dtype.is_floating_point or perm.dtype == torch.bool or perm.dim() != 1:
        raise ValueError(f"perm for group {name!r} must be a 1-d integer tensor, got "
                         f"dtype {perm.dtype} shape {tuple(perm.shape)}")
    if perm.numel() != width:
        raise ValueError(f"perm for group {name!r} has length {perm.numel()}, group width {width}")
    perm = perm.to(torch.int64)
    if not torch.equal(torch.sort(perm).values, torch.arange(width)):
        raise ValueError(f"perm for group {name!r} is not a permutation of range({width})")
    return perm


def permute_units(state: Mapping[str, torch.Tensor], perms: Mapping[str, torch.Tensor]) -> State:
    """Return a new state with the units of each group in ``perms`` reordered (pure).

    ``perms[name][j]`` is the old index of new unit ``j``. Groups not in ``perms`` and keys in no
    group are shared with the input (not copied); permuted tensors are new. Raises ``ValueError``
    for an unknown group name or a ``perm`` that is not a permutation of the group width.
    """
    groups = {g.name: g for g in unit_groups(state)}
    unknown = sorted(set(perms) - set(groups))
    if unknown:
        raise ValueError(f"perms name unknown unit groups {unknown}; known: {sorted(groups)}")
    out = dict(state)
    for name, perm in perms.items():
        g = groups[name]
        perm = check_perm(name, perm, g.width)
        for m in g.members:
            out[m.key] = state[m.key].index_select(m.axis, full_index(perm, m, g.width))
    return out
