"""The Flower run configuration: one dataclass, converted to / from Flower's flat ``run_config``.

Flower passes run configuration as a flat mapping of scalars (``[tool.flwr.app.config]`` in a
Flower app's ``pyproject.toml``, nested TOML tables flattened with dots, ``--run-config``
overrides). :class:`FlowerRunConfig` mirrors the fields of the experiment config
(``fedpia.experiments.ExperimentConfig``) so one object drives both engines; keys:

``setting``, ``data_root``, ``setting_options.<k>``, ``model.<ModelConfig field>``,
``strategy``, ``strategy_options.<knob>``, ``sim.<SimConfig field>``,
``train.<TrainConfig field>``, ``num_clients``, ``on_round_failure``, ``timeout``,
``output_dir``.
``None`` values of dataclass fields are omitted (TOML has no null) and come back as the
dataclass defaults (``None`` for every such field); ``None`` inside the free mappings
(``setting_options``, ``model``, ``strategy_options``, whose builders may default to something
else, e.g. ``label_skew``) travels as the string ``"null"``. Lists / tuples (e.g.
``setting_options.modalities``) travel as JSON strings (``'["x-ray", "ct"]'``) because Flower
config values are scalars only.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fedpia.client import TrainConfig
from fedpia.sim import SimConfig
from fedpia.typecheck import build_dataclass as _build

FAILURE_POLICIES = ("raise", "skip")
_DICT_FIELDS = ("setting_options", "model", "strategy_options")
_SCALARS = (bool, int, float, str)
_NULL = "null"  # None inside a free mapping (a builder's default may not be None)


@dataclass
class FlowerRunConfig:
    """Everything a Flower ServerApp / ClientApp needs to rebuild the same run.

    ``num_clients``: SuperNodes the server waits for (0 = the number of clients of the setting).
    ``on_round_failure``: "raise" (like the in-process simulator: the run stops with
    :class:`fedpia.sim.RoundFailed`, global state unchanged) or "skip" (log, keep the previous
    global state, continue with the next round). ``timeout``: seconds to wait for replies.
    ``output_dir``: where the ServerApp writes ``history.json`` and the final global adapter.
    """

    setting: str = "synthetic"
    data_root: str | None = None
    setting_options: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    strategy: str = "fedpia"
    strategy_options: dict[str, Any] = field(default_factory=dict)
    sim: SimConfig = field(default_factory=SimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    num_clients: int = 0
    on_round_failure: str = "raise"
    timeout: float = 3600.0
    output_dir: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.sim, Mapping):
            self.sim = _build(SimConfig, dict(self.sim), "sim")
        if isinstance(self.train, Mapping):
            self.train = _build(TrainConfig, dict(self.train), "train")
        if self.sim.share_heads:
            raise ValueError(
                "sim.share_heads=True is not supported by the Flower backend (heads stay on the "
                "clients); use the in-process simulator"
            )
        if self.on_round_failure not in FAILURE_POLICIES:
            raise ValueError(
                f"on_round_failure={self.on_round_failure!r}; allowed: {list(FAILURE_POLICIES)}"
            )
        if not isinstance(self.num_clients, int) or self.num_clients < 0:
            raise ValueError(f"num_clients must be an int >= 0, got {self.num_clients!r}")
        if self.timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {self.timeout}")

    def model_config(self) -> Any:
        """The ModelConfig (seeded with ``sim.seed`` unless ``model.seed`` is given)."""
        from fedpia.models import ModelConfig

        return _build(ModelConfig, {"seed": self.sim.seed, **self.model}, "model")

    def build_strategy(self) -> Any:
        from fedpia.strategies import build_strategy

        return build_strategy(self.strategy, **self.strategy_options)

    @classmethod
    def from_experiment(cls, cfg: Any, **overrides: Any) -> FlowerRunConfig:
        """From any object with the experiment-config attributes (duck-typed: no import of
        ``fedpia.experiments``, which sits above this package)."""
        names = [f.name for f in dataclasses.fields(cls)]
        raw = {n: getattr(cfg, n) for n in names if hasattr(cfg, n)}
        for n in _DICT_FIELDS:
            if n in raw:
                raw[n] = dict(raw[n] or {})
        raw.update(overrides)
        return cls(**raw)

    # ------------------------------------------------------------ Flower run_config
    def to_run_config(self) -> dict[str, bool | int | float | str]:
        """Flat Flower run_config (dotted keys, scalars only, ``None`` omitted)."""
        flat: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in _DICT_FIELDS:
                items = value.items()
            elif dataclasses.is_dataclass(value):
                items = ((g.name, getattr(value, g.name)) for g in dataclasses.fields(value))
            else:
                items = [("", value)]
            for sub, v in items:
                key = f"{f.name}.{sub}" if sub else f.name
                if v is None and f.name in _DICT_FIELDS:
                    v = _NULL
                elif v is None:
                    continue
                if isinstance(v, list | tuple):
                    v = json.dumps(list(v))
                if not isinstance(v, _SCALARS):
                    raise ValueError(f"run_config key {key!r}: {v!r} is not a bool/int/float/str")
                flat[key] = v
        return flat

    @classmethod
    def from_run_config(cls, run_config: Mapping[str, Any]) -> FlowerRunConfig:
        """Inverse of :meth:`to_run_config`; unknown keys raise a ValueError naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        nested = _DICT_FIELDS + ("sim", "train")
        raw: dict[str, Any] = {}
        for key, value in run_config.items():
            head, _, tail = key.partition(".")
            if head not in names or (bool(tail) != (head in nested)):
                raise ValueError(f"unknown fedpia run_config key {key!r}; allowed: {sorted(names)}")
            if isinstance(value, str) and value.startswith("["):
                try:
                    value = tuple(json.loads(value))
                except json.JSONDecodeError as exc:
                    raise ValueError(
                        f"run_config key {key!r}: invalid JSON list {value!r}"
                    ) from exc
            if tail and head in _DICT_FIELDS and value == _NULL:
                value = None
            if tail:
                raw.setdefault(head, {})[tail] = value
            else:
                raw[head] = value
        for key in ("data_root", "output_dir"):
            if raw.get(key) == "":
                raw[key] = None
        return _build(cls, raw, "run_config")


