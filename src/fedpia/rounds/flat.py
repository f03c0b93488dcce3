"""Flower's flat ``run_config`` <-> :class:`~fedpia.rounds.ExperimentConfig` (one conversion).

Flower passes run configuration as a flat mapping of scalars (``[tool.flwr.app.config]`` in a
Flower app's ``pyproject.toml``, nested TOML tables flattened with dots, ``--run-config``
overrides). The keys are derived from the config's own fields, so there is no second list of
fields to keep in sync: top-level fields by name (``setting``, ``strategy`` ...), sections and
free mappings as ``<section>.<field>`` (``sim.rounds``, ``robust.norm_factor``,
``flower.num_clients``, ``model.peft``, ``strategy_options.gamma``).

``None`` values of typed fields are omitted (TOML has no null) and come back as the field
defaults (None for every such field; ``""`` also reads as None for ``str | None`` fields, the
Flower-app convention); ``None`` inside the free mappings (``setting_options``, ``model``,
``strategy_options``, whose builders may default to something else, e.g. ``label_skew``) travels
as the string ``"null"``. Lists / tuples (``setting_options.modalities``, ``sim.faults``)
travel as JSON strings because Flower config values are scalars only.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Mapping
from typing import Any

from fedpia.rounds.config import FREE_DICTS, SECTIONS, ExperimentConfig
from fedpia.typecheck import build_dataclass

_SCALARS = (bool, int, float, str)
_NULL = "null"  # None inside a free mapping (a builder's default may not be None)
#: keys a submitted run config may not set, and why
REMOVED = {"flower.output_dir": "the ServerApp writes only under the server operator's folder "
           "(output_dir in the file named by FEDPIA_SERVER_CONFIG; docs/flower.md), results in "
           "<output_dir>/<run id>/"}


def to_run_config(cfg: ExperimentConfig) -> dict[str, bool | int | float | str]:
    """Flat Flower run_config of ``cfg`` (dotted keys, scalars only, ``None`` omitted)."""
    flat: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.name in FREE_DICTS:
            items = value.items()
        elif f.name in SECTIONS:
            items = ((g.name, getattr(value, g.name)) for g in dataclasses.fields(value))
        else:
            items = [("", value)]
        for sub, v in items:
            key = f"{f.name}.{sub}" if sub else f.name
            if v is None:
                if f.name not in FREE_DICTS:
                    continue
                v = _NULL
            if isinstance(v, list | tuple):
                v = json.dumps(list(v))
            if not isinstance(v, _SCALARS):
                raise ValueError(f"run_config key {key!r}: {v!r} is not a bool/int/float/str")
            flat[key] = v
    return flat


def from_run_config(run_config: Mapping[str, Any]) -> ExperimentConfig:
    """Inverse of :func:`to_run_config`; unknown keys raise a ValueError naming them."""
    names = {f.name for f in dataclasses.fields(ExperimentConfig)}
    nested = (*FREE_DICTS, *SECTIONS)
    raw: dict[str, Any] = {}
    for key, value in run_config.items():
        if key in REMOVED:
            raise ValueError(f"run_config key {key!r} is not accepted: {REMOVED[key]}")
        head, _, tail = key.partition(".")
        if head not in names or (bool(tail) != (head in nested)):
            raise ValueError(f"unknown fedpia run_config key {key!r}; allowed: {sorted(names)} "
                             f"(sections {list(nested)} take dotted keys)")
        if isinstance(value, str) and value.startswith("["):
            try:
                value = tuple(json.loads(value))
            except json.JSONDecodeError as exc:
                raise ValueError(f"run_config key {key!r}: invalid JSON list {value!r}") from exc
        if tail and head in FREE_DICTS and value == _NULL:
            value = None
        elif value == "" and _optional_text(head, tail):
            value = None
        if tail:
            raw.setdefault(head, {})[tail] = value
        else:
            raw[head] = value
    return build_dataclass(ExperimentConfig, raw, "run_config")


def _optional_text(head: str, tail: str) -> bool:
    cls = SECTIONS.get(head, ExperimentConfig) if tail else ExperimentConfig
    return typing.get_type_hints(cls).get(tail or head) == (str | None)
