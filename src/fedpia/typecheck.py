"""Field-type checks for dataclasses built from untyped input (TOML, ``--set``, run configs).

A leaf module (imports nothing from fedpia) so every layer that turns mappings into dataclasses
(experiment configs, Flower run configs, strategy and setting knobs) reports a wrong type the
same way: a ``ValueError`` naming the field, before anything runs, instead of a ``TypeError``
deep inside a run.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import types
import typing
from collections.abc import Sequence
from typing import Any


def build_dataclass(cls: type, raw: dict[str, Any], where: str) -> Any:
    """``cls(**raw)`` with unknown fields and constructor errors reported as ValueErrors naming
    ``where`` (every config dataclass is built from a mapping here)."""
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be a table/mapping, got {type(raw).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(names)}")
    raw = check_field_types(cls, raw, where)
    try:
        return cls(**raw)
    except TypeError as exc:
        raise ValueError(f"{where}: {exc}") from exc


def check_field_types(cls: type, raw: dict[str, Any], where: str) -> dict[str, Any]:
    """``raw`` with each value checked against ``cls``'s annotation of that field (ints widened
    to float for float fields, lists to tuples for tuple fields, paths to str)."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # unresolvable annotations: leave checking to the constructor
        return dict(raw)
    return {name: check_value(value, hints.get(name, Any), f"{where}.{name}")
            for name, value in raw.items()}


def check_value(value: Any, hint: Any, where: str) -> Any:
    """``value`` checked against the field type ``hint``: int, float (an int is accepted, nan is
    not), bool, str (a path is accepted), their ``| None``, tuple / list / Sequence (not a str),
    dict, a nested dataclass (an instance or a mapping of its fields). Other hints (``Any``,
    unions of several types) pass through."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return check_value(value, inner[0], where)
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false, got {value!r}")
    elif hint is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(f"{where} must be an integer, got {value!r}")
        return int(value)
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"{where} must be a number, got {value!r}")
        if math.isnan(value):
            raise ValueError(f"{where} must be a number, got nan")
        return float(value)
    elif hint is str:
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if not isinstance(value, str):
            raise ValueError(f"{where} must be a string, got {value!r}")
    elif (origin or hint) in (tuple, list, Sequence):
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise ValueError(f"{where} must be a list, got {value!r}")
        return list(value) if (origin or hint) is list else tuple(value)
    elif (origin or hint) is dict and not isinstance(value, dict):
        raise ValueError(f"{where} must be a table/mapping, got {value!r}")
    elif isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, hint | dict):
            raise ValueError(f"{where} must be a table/mapping of {hint.__name__} fields, got {value!r}")
    return value
