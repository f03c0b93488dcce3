"""Field-type checks for dataclasses built from untyped input (TOML, ``--set``, run configs).

A leaf module (imports nothing from fedpia) so every layer that turns mappings into dataclasses
(experiment configs, strategy knobs) reports a wrong type the same way: a ``ValueError`` naming
the field, instead of a ``TypeError`` deep inside a run.
"""

from __future__ import annotations

import os
import types
import typing
from typing import Any


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
    """``value`` checked against the scalar field type ``hint`` (int, float, bool, str, their
    ``| None``, tuples / lists / dicts); an int is accepted for a float. Other hints (nested
    dataclasses, ``Any``) pass through, their own constructors check them."""
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
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where} must be an integer, got {value!r}")
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where} must be a number, got {value!r}")
        return float(value)
    elif hint is str:
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if not isinstance(value, str):
            raise ValueError(f"{where} must be a string, got {value!r}")
    elif (origin or hint) in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ValueError(f"{where} must be a list, got {value!r}")
        return (origin or hint)(value)
    elif (origin or hint) is dict and not isinstance(value, dict):
        raise ValueError(f"{where} must be a table/mapping, got {value!r}")
    return value
