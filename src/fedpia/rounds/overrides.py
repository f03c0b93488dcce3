"""``key.sub=value`` overrides of an experiment config (``--set``, ``with_overrides``), in one place.

Values are parsed as Python literals when possible (``sim.rounds=5``, ``'sim.faults=[...]'``,
``robust.max_abs=inf``, ``none``/``null``, ``true``/``false``); a text field keeps the text
(``name=42`` is the name "42"). Switching the strategy (``strategy=NAME``) drops the carried-over
``strategy_options`` that NAME does not accept (logged as a note naming them); options NAME
accepts are kept, and options set in the same call (``strategy_options.x=...``, or the whole
``strategy_options={...}``) always stay, whatever the order of the assignments.
"""

from __future__ import annotations

import ast
import logging
import math
import typing
from typing import Any

from fedpia.rounds.config import FREE_DICTS, SECTIONS, ExperimentConfig

log = logging.getLogger(__name__)


def apply_overrides(raw: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """``raw`` (a config as :meth:`ExperimentConfig.to_dict`) with ``assignments`` applied;
    ValueError naming an unknown field or a malformed assignment."""
    raw = dict(raw)
    before = raw.get("strategy")
    explicit: set[str] | None = set()  # option keys set here; None: the whole mapping was
    for item in assignments:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value (e.g. sim.rounds=5)")
        key, value = item.split("=", 1)
        path, text = key.strip().split("."), value.strip()
        parsed = _parse_value(text)
        if parsed is not None and not isinstance(parsed, str) and is_text_field(path):
            parsed = text  # name=42 is the name "42", not the int 42
        _assign(raw, path, parsed, key)
        if path == ["strategy_options"]:
            explicit = None
        elif path[0] == "strategy_options" and explicit is not None:
            explicit.add(path[1])
    switched = raw["strategy"] != before and isinstance(raw["strategy_options"], dict)
    if switched and explicit is not None:
        raw["strategy_options"] = _drop_foreign_options(raw["strategy"], raw["strategy_options"],
                                                        keep=explicit, previous=before)
    return raw


def strategy_option_names(strategy: str) -> set[str] | None:
    """The option names ``strategy`` accepts (none for ``centralized``); None for a name no
    registry knows (:meth:`ExperimentConfig.validate` reports it)."""
    from fedpia.strategies import STRATEGIES, strategy_fields

    if strategy == "centralized":
        return set()
    return set(strategy_fields(strategy)) if strategy in STRATEGIES else None


def _drop_foreign_options(strategy: Any, options: dict[str, Any], *, keep: set[str],
                          previous: str) -> dict[str, Any]:
    """``options`` without the keys ``strategy`` does not accept, except those in ``keep``."""
    accepted = strategy_option_names(strategy) if isinstance(strategy, str) else None
    if accepted is None:
        return options
    dropped = sorted(k for k in options if k not in accepted and k not in keep)
    if dropped:
        log.info("note: strategy %r takes no option(s) %s (set for %r): dropped", strategy,
                 dropped, previous)
    return {k: v for k, v in options.items() if k not in dropped}


def is_text_field(path: list[str]) -> bool:
    """Whether the dotted ``path`` names a ``str`` (or ``str | None``) config field."""
    hints: dict[str, Any] = typing.get_type_hints(ExperimentConfig)
    if len(path) == 2 and path[0] in SECTIONS:
        hints = typing.get_type_hints(SECTIONS[path[0]])
    elif len(path) != 1:
        return False
    return hints.get(path[-1]) in (str, str | None)


def _assign(raw: dict[str, Any], path: list[str], value: Any, original: str) -> None:
    node = raw
    for i, part in enumerate(path[:-1]):
        if part not in node or not isinstance(node[part], dict):
            raise ValueError(f"override {original!r}: {'.'.join(path[: i + 1])} is not a section")
        node = node[part]
    leaf = path[-1]
    if len(path) == 1 and leaf not in raw:
        raise ValueError(f"override {original!r}: unknown field {leaf!r}; allowed: {sorted(raw)}")
    if len(path) > 1 and path[0] not in FREE_DICTS and leaf not in node:
        raise ValueError(
            f"override {original!r}: unknown field {leaf!r} in {path[0]}; allowed: {sorted(node)}"
        )
    node[leaf] = value


def _parse_value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    if lowered in ("inf", "+inf", "infinity"):
        return math.inf
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
