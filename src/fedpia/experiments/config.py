"""One typed experiment config, validated once, converted from TOML / dicts / CLI in one place.

``ExperimentConfig`` nests the engine's own dataclasses (``SimConfig``, ``TrainConfig``) and keeps
the model and strategy knobs as plain mappings that are validated by their own registries
(``fedpia.models.ModelConfig`` and ``fedpia.strategies.build_strategy``) when the config is
checked. Overrides use dotted keys: ``sim.rounds=5``, ``strategy_options.gamma=2``,
``model.peft=lora``, ``train.lr=1e-3``.
"""

from __future__ import annotations

import ast
import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedpia.client import TrainConfig
from fedpia.sim import SimConfig
from fedpia.typecheck import build_dataclass

ENGINES = ("inprocess", "flower")


@dataclass
class ExperimentConfig:
    """A whole experiment: data setting, model + PEFT method, strategy, engine knobs."""

    name: str = "experiment"
    setting: str = "synthetic"
    data_root: str | None = None
    setting_options: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    strategy: str = "fedpia"
    strategy_options: dict[str, Any] = field(default_factory=dict)
    sim: SimConfig = field(default_factory=SimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    engine: str = "inprocess"

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine={self.engine!r}; allowed: {list(ENGINES)}")
        if isinstance(self.sim, dict):
            self.sim = build_dataclass(SimConfig, self.sim, "sim")
        if isinstance(self.train, dict):
            self.train = build_dataclass(TrainConfig, self.train, "train")

    def validate(self) -> None:
        """Check the registry-validated parts too (model config, strategy knobs, setting name)."""
        from fedpia.data import SETTINGS
        from fedpia.data.settings import check_setting_options
        from fedpia.strategies import build_strategy

        if self.setting not in SETTINGS:
            raise ValueError(f"setting={self.setting!r}; allowed: {sorted(SETTINGS)}")
        check_setting_options(self.setting, self.setting_options)
        self.model_config()
        if self.strategy == "centralized":  # pooled-data upper bound, not a federated strategy
            if self.strategy_options or self.engine != "inprocess":
                raise ValueError("strategy 'centralized' takes no options and runs in-process only")
            return
        build_strategy(self.strategy, **self.strategy_options)

    def model_config(self) -> Any:
        from fedpia.models import ModelConfig

        return build_dataclass(ModelConfig, {"seed": self.sim.seed, **self.model}, "model")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ExperimentConfig:
        return build_dataclass(cls, raw, "config")

    @classmethod
    def from_file(cls, path: str | Path) -> ExperimentConfig:
        """Read a TOML file (same keys as :meth:`to_dict`)."""
        path = Path(path)
        if not path.exists():
            raise ValueError(f"config file {path} does not exist")
        if not path.is_file():
            raise ValueError(f"config file {path} is not a file")
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"config file {path}: invalid TOML: {exc}") from exc
        return cls.from_dict(raw)

    def with_overrides(self, assignments: list[str]) -> ExperimentConfig:
        """Apply ``key.sub=value`` strings; values are parsed as Python literals when possible."""
        raw = self.to_dict()
        for item in assignments:
            if "=" not in item:
                raise ValueError(f"override {item!r} must look like key=value (e.g. sim.rounds=5)")
            key, value = item.split("=", 1)
            path, text = key.strip().split("."), value.strip()
            parsed = _parse_value(text)
            if parsed is not None and not isinstance(parsed, str) and _is_text_field(path):
                parsed = text  # name=42 is the name "42", not the int 42
            _assign(raw, path, parsed, key)
        return ExperimentConfig.from_dict(raw)


def _is_text_field(path: list[str]) -> bool:
    """Whether the dotted ``path`` names a ``str`` (or ``str | None``) config field."""
    hints: dict[str, Any] = typing.get_type_hints(ExperimentConfig)
    if len(path) == 2 and path[0] in ("sim", "train"):
        hints = typing.get_type_hints(hints[path[0]])
    elif len(path) != 1:
        return False
    return hints.get(path[-1]) in (str, str | None)


_FREE_DICTS = ("setting_options", "model", "strategy_options")


def _assign(raw: dict[str, Any], path: list[str], value: Any, original: str) -> None:
    node = raw
    for i, part in enumerate(path[:-1]):
        if part not in node or not isinstance(node[part], dict):
            raise ValueError(f"override {original!r}: {'.'.join(path[: i + 1])} is not a section")
        node = node[part]
    leaf = path[-1]
    if len(path) == 1 and leaf not in raw:
        raise ValueError(f"override {original!r}: unknown field {leaf!r}; allowed: {sorted(raw)}")
    if len(path) > 1 and path[0] not in _FREE_DICTS and leaf not in node:
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
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
