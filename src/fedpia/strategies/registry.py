"""One registry of federated strategies, filled at import time (``register_strategy``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from fedpia.strategies.base import Strategy
from fedpia.typecheck import check_field_types

STRATEGIES: dict[str, type[Strategy]] = {}


def register_strategy(name: str) -> Callable[[type[Strategy]], type[Strategy]]:
    """Class decorator: register a strategy dataclass under ``name``."""

    def deco(cls: type[Strategy]) -> type[Strategy]:
        if name in STRATEGIES:
            raise ValueError(f"strategy {name!r} registered twice")
        cls.name = name
        STRATEGIES[name] = cls
        return cls

    return deco


def strategy_fields(name: str) -> dict[str, Any]:
    """Knob names and defaults of a registered strategy."""
    cls = _lookup(name)
    if not dataclasses.is_dataclass(cls):
        return {}
    return {
        f.name: (f.default if f.default is not dataclasses.MISSING else None)
        for f in dataclasses.fields(cls)
    }


def build_strategy(name: str, **knobs: Any) -> Strategy:
    """Instantiate a registered strategy; unknown knobs raise a ValueError naming them."""
    cls = _lookup(name)
    allowed = strategy_fields(name)
    unknown = sorted(set(knobs) - set(allowed))
    if unknown:
        raise ValueError(
            f"strategy {name!r} has no option(s) {unknown}; allowed: {sorted(allowed) or 'none'} "
            "(options carried over from another strategy: reset them with strategy_options={})"
        )
    if dataclasses.is_dataclass(cls):
        knobs = check_field_types(cls, knobs, "strategy_options")
    return cls(**knobs)


def _lookup(name: str) -> type[Strategy]:
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; allowed: {sorted(STRATEGIES)}")
    return STRATEGIES[name]
