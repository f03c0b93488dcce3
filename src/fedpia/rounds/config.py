"""The ONE run config of both engines, validated once, converted from TOML / dicts / CLI here.

``ExperimentConfig`` nests typed sections (``sim``: the round protocol, ``train``: local
optimisation, ``robust``: screening and bounded influence, ``dp``: client-level differential
privacy (:class:`fedpia.privacy.DPConfig`), ``flower``: Flower-only transport knobs,
``logging``: where per-round metrics go) and keeps the model and strategy knobs as plain
mappings validated by their own registries (``fedpia.models.ModelConfig``,
``fedpia.strategies.build_strategy``). Overrides use dotted keys (:mod:`fedpia.rounds.overrides`):
``sim.rounds=5``, ``strategy_options.gamma=2``, ``model.peft=lora``, ``robust.norm_factor=3``.
Flower's flat ``run_config`` is a conversion of this config
(:mod:`fedpia.rounds.flat`), not a second list of fields.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedpia.client import TrainConfig
from fedpia.privacy.config import DPConfig
from fedpia.rounds.faults import parse_faults
from fedpia.typecheck import build_dataclass

ENGINES = ("inprocess", "flower")
FAILURE_POLICIES = ("skip", "raise")
NORM_BOUNDS = ("clip", "reject", "off")
INDEPENDENT_PEFT = ("houlsby", "parallel", "compacter", "lora")


@dataclass(frozen=True)
class SimConfig:
    """Round protocol knobs shared by both engines.

    ``failure_prob``: simulated client crashes (seeded per round and client). A round fails when
    more than ``max_failure_frac`` of the sampled clients failed, fewer than ``min_clients``
    updates survive screening, or aggregation raises; ``on_failure`` then either keeps the
    previous global state and records the round as skipped (``"skip"``, default) or stops the
    run with :class:`fedpia.rounds.RoundFailed` (``"raise"``). ``faults``: injected upload
    corruptions (:mod:`fedpia.rounds.faults`). ``independent_epochs`` = E > 0: hospitals that
    fine-tuned their own adapters before federating — every client starts from an adapter
    initialised with its own seed, trained E local epochs alone, and the server fuses them once
    before round 1 (recorded as round 0; :mod:`fedpia.rounds.independent`; in-process only).
    """

    rounds: int = 30
    fraction_fit: float = 1.0
    min_clients: int = 1
    seed: int = 0
    share_heads: bool = False
    failure_prob: float = 0.0
    max_failure_frac: float = 0.5
    eval_global: bool = True
    on_failure: str = "skip"
    faults: tuple[dict[str, Any], ...] = ()
    independent_epochs: int = 0

    def __post_init__(self) -> None:
        if self.independent_epochs < 0:
            raise ValueError(f"sim.independent_epochs must be >= 0, got {self.independent_epochs}")
        if self.rounds < 1:
            raise ValueError(f"sim.rounds must be >= 1, got {self.rounds}")
        if not 0.0 < self.fraction_fit <= 1.0:
            raise ValueError(f"sim.fraction_fit must be in (0, 1], got {self.fraction_fit}")
        if self.min_clients < 1:
            raise ValueError(f"sim.min_clients must be >= 1, got {self.min_clients}")
        if self.seed < 0:
            raise ValueError(f"sim.seed must be >= 0, got {self.seed}")
        for knob in ("failure_prob", "max_failure_frac"):
            if not 0.0 <= getattr(self, knob) <= 1.0:
                raise ValueError(f"sim.{knob} must be in [0, 1], got {getattr(self, knob)}")
        if self.on_failure not in FAILURE_POLICIES:
            raise ValueError(f"sim.on_failure={self.on_failure!r}; allowed: {list(FAILURE_POLICIES)}")
        parsed = parse_faults(self.faults)
        canonical = tuple({"client": f.client, "round": f.round, "kind": f.label} for f in parsed)
        object.__setattr__(self, "faults", canonical)

    def fault_specs(self) -> tuple[Any, ...]:
        return parse_faults(self.faults)

    def clients_per_round(self, n: int) -> int:
        """k = ``min(n, max(min_clients, round(fraction_fit · n)))``: clients sampled per round
        out of ``n`` (also the fixed denominator of central DP and its sampling rate k/n)."""
        return min(max(self.min_clients, round(self.fraction_fit * n)), n)


@dataclass(frozen=True)
class RobustConfig:
    """Server-side defences, applied to every upload before ANY aggregation rule.

    Screening (a failing upload is rejected with a reason, exactly as if the client had dropped
    out): example count an integer in ``[1, max_examples]``; tensors dense, strided, not meta,
    of the global's keys, shapes and dtypes, finite, with ``max |x| <= max_abs`` (``inf`` = no
    magnitude bound). Bounded influence: each client's update ``Δ_k = W_k − G`` with
    ``‖Δ_k‖ > norm_factor · median_k ‖Δ_k‖`` is clipped to that bound (``"clip"``), rejected
    (``"reject"``) or left alone (``"off"``); see :func:`fedpia.aggregation.bound_updates`.
    """

    max_examples: int = 10_000_000
    max_abs: float = 1e4
    norm_bound: str = "clip"
    norm_factor: float = 2.0

    def __post_init__(self) -> None:
        if self.max_examples < 1:
            raise ValueError(f"robust.max_examples must be >= 1, got {self.max_examples}")
        if not self.max_abs > 0:
            raise ValueError(f"robust.max_abs must be > 0 (inf = off), got {self.max_abs}")
        if self.norm_bound not in NORM_BOUNDS:
            raise ValueError(f"robust.norm_bound={self.norm_bound!r}; allowed: {list(NORM_BOUNDS)}")
        if not (math.isfinite(self.norm_factor) and self.norm_factor >= 1.0):
            raise ValueError(f"robust.norm_factor must be a finite number >= 1, got {self.norm_factor}")


@dataclass(frozen=True)
class FlowerConfig:
    """Flower-only transport knobs. ``num_clients``: SuperNodes the server waits for (0 = the
    setting's clients; with the operator's ``[[clients]]`` list: 0 or its length);
    ``timeout``: seconds to wait for nodes and replies. Where the ServerApp writes is NOT a run
    config knob: the server operator fixes it (:mod:`fedpia.deploy.operator`)."""

    num_clients: int = 0
    timeout: float = 3600.0

    def __post_init__(self) -> None:
        if self.num_clients < 0:
            raise ValueError(f"flower.num_clients must be >= 0, got {self.num_clients}")
        if not self.timeout > 0:
            raise ValueError(f"flower.timeout must be > 0, got {self.timeout}")


LOGGING_BACKENDS = ("csv", "tensorboard", "mlflow")


@dataclass(frozen=True)
class LoggingConfig:
    """Where a run's per-round metrics go besides ``results.json`` (``fedpia.experiments.loggers``).

    ``backends``: any of ``"csv"`` (``OUT/rounds.csv``, on by default), ``"tensorboard"`` (extra
    ``tensorboard``), ``"mlflow"`` (``pip install mlflow``). ``dir``: TensorBoard's log folder
    (None = ``OUT/tensorboard``; a given folder gets one subfolder per run, named after OUT).
    ``mlflow_uri``: MLflow tracking URI (None = MLflow's own default, ``MLFLOW_TRACKING_URI``).
    Not part of a run's identity: may change on ``--resume``."""

    backends: tuple[str, ...] = ("csv",)
    dir: str | None = None
    mlflow_uri: str | None = None

    def __post_init__(self) -> None:
        unknown = [b for b in self.backends if b not in LOGGING_BACKENDS]
        if unknown:
            raise ValueError(f"logging.backends: unknown {unknown}; allowed: {list(LOGGING_BACKENDS)}")
        if len(set(self.backends)) != len(self.backends):
            raise ValueError(f"logging.backends names a backend twice: {list(self.backends)}")


SECTIONS: dict[str, type] = {"sim": SimConfig, "train": TrainConfig, "robust": RobustConfig,
                             "dp": DPConfig, "flower": FlowerConfig, "logging": LoggingConfig}
FREE_DICTS = ("setting_options", "model", "strategy_options")


@dataclass
class ExperimentConfig:
    """A whole run: data setting, model + PEFT method, strategy, protocol and engine knobs."""

    name: str = "experiment"
    setting: str = "synthetic"
    data_root: str | None = None
    setting_options: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    strategy: str = "fedpia"
    strategy_options: dict[str, Any] = field(default_factory=dict)
    sim: SimConfig = field(default_factory=SimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    robust: RobustConfig = field(default_factory=RobustConfig)
    dp: DPConfig = field(default_factory=DPConfig)
    flower: FlowerConfig = field(default_factory=FlowerConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    engine: str = "inprocess"

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine={self.engine!r}; allowed: {list(ENGINES)}")
        for name, cls in SECTIONS.items():
            if isinstance(getattr(self, name), dict):
                setattr(self, name, build_dataclass(cls, getattr(self, name), name))
        for name in FREE_DICTS:
            setattr(self, name, dict(getattr(self, name) or {}))

    def validate(self) -> None:
        """Check the registry-validated parts too (model config, strategy knobs, setting name)."""
        from fedpia.data import SETTINGS
        from fedpia.data.settings import check_setting_options
        from fedpia.strategies import build_strategy

        if self.setting not in SETTINGS:
            raise ValueError(f"setting={self.setting!r}; allowed: {sorted(SETTINGS)}")
        check_setting_options(self.setting, self.setting_options)
        self.model_config()
        if self.engine == "flower" and self.sim.share_heads:
            raise ValueError("sim.share_heads=True is not supported by the Flower engine (heads "
                             "stay on the clients); use the in-process engine")
        if self.sim.independent_epochs:
            if self.engine == "flower":
                raise ValueError("sim.independent_epochs > 0 (independently initialised clients) "
                                 "runs in-process only; use the in-process engine")
            if self.dp.mode != "off":
                raise ValueError("sim.independent_epochs > 0 with dp.mode != 'off': the round-0 "
                                 "uploads of independently trained adapters carry no DP noise")
            if self.model_config().peft not in INDEPENDENT_PEFT:
                raise ValueError(f"sim.independent_epochs > 0 needs an adapter with hidden units "
                                 f"(model.peft in {list(INDEPENDENT_PEFT)})")
        if self.strategy == "centralized":  # pooled-data upper bound, not a federated strategy
            if self.strategy_options or self.engine != "inprocess" or self.dp.enabled:
                raise ValueError("strategy 'centralized' takes no options, no dp and runs "
                                 "in-process only")
            return
        from fedpia.privacy import check_dp_strategy

        strategy = build_strategy(self.strategy, **self.strategy_options)
        check_dp_strategy(self.dp, strategy, share_heads=self.sim.share_heads)

    def model_config(self) -> Any:
        """The ModelConfig (seeded with ``sim.seed`` unless ``model.seed`` is given)."""
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
        """Apply ``key.sub=value`` strings (:func:`fedpia.rounds.overrides.apply_overrides`:
        values parsed as Python literals when possible; ``strategy=NAME`` drops the
        carried-over strategy options NAME does not take)."""
        from fedpia.rounds.overrides import apply_overrides

        return ExperimentConfig.from_dict(apply_overrides(self.to_dict(), assignments))
