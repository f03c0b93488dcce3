"""Run assembly from the one config: ``build_run(config) -> Run``.

Every engine entry point (the runner, the in-process simulator, the Flower ServerApp and
ClientApp) builds its run here, so they cannot disagree on the model, the data, the strategy's
derived knobs (``lora_scaling = lora_alpha / lora_rank`` for strategies that merge LoRA products
into base weights), the probe size or the client heads. This is the ONLY place the model is
built (:func:`build_model_for`).

``Run`` is lazy: the model, the data and each client's runtime (encoded splits + head) are built
on first use, so a Flower server that is told ``flower.num_clients`` never loads the data and a
SuperNode encodes only its own partition.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

from torch import nn

from fedpia.client import TrainConfig
from fedpia.client.runtime import ClientRuntime
from fedpia.data import ClientSplit, FederatedData
from fedpia.privacy.config import DPConfig
from fedpia.rounds.config import ExperimentConfig, RobustConfig, SimConfig
from fedpia.rounds.faults import Fault
from fedpia.rounds.privacy import resolve_dp
from fedpia.rounds.seeds import seed_for
from fedpia.strategies.base import State, Strategy


@dataclass(frozen=True)
class RoundRules:
    """Everything the protocol functions decide with: the strategy and the knobs of a run.

    ``num_clients``: clients of the federation (sampling population, SCAFFOLD's N);
    ``probe_size``: m of the client activation probe (``strategy.probe_size(initial adapter)``);
    ``dp``: the run's DP knobs with σ resolved (:func:`fedpia.rounds.privacy.resolve_dp`).
    """

    strategy: Strategy
    sim: SimConfig
    train: TrainConfig
    robust: RobustConfig
    num_clients: int
    probe_size: int
    faults: tuple[Fault, ...] = ()
    dp: DPConfig = DPConfig()

    @classmethod
    def make(cls, strategy: Strategy, *, sim: SimConfig, train: TrainConfig,
             robust: RobustConfig | None = None, num_clients: int,
             initial_adapter: State, dp: DPConfig | None = None) -> RoundRules:
        if num_clients < 1:
            raise ValueError(f"num_clients must be >= 1, got {num_clients}")
        return cls(strategy, sim, train, robust or RobustConfig(), num_clients,
                   strategy.probe_size(initial_adapter), sim.fault_specs(),
                   resolve_dp(dp or DPConfig(), sim, num_clients))


def build_model_for(config: ExperimentConfig) -> nn.Module:
    """The run's model (the one place a model is built from a config), placed once on
    ``train.device`` with ``train.precision`` (``auto`` resolves on the machine running this:
    a Flower node picks its own device)."""
    from fedpia.device import place
    from fedpia.models import build_model

    model = build_model(config.model_config())
    place(model, device=config.train.device, precision=config.train.precision)
    return model


def strategy_knobs(config: ExperimentConfig) -> dict[str, Any]:
    """The strategy's knobs: ``strategy_options`` plus derived ones — ``lora_scaling`` =
    lora_alpha / lora_rank from the model config for strategies that have that knob, unless
    set explicitly."""
    from fedpia.strategies import strategy_fields

    knobs = dict(config.strategy_options)
    if "lora_scaling" in strategy_fields(config.strategy) and "lora_scaling" not in knobs:
        mc = config.model_config()
        knobs["lora_scaling"] = mc.lora_alpha / mc.lora_rank
    return knobs


def client_runtime(model: nn.Module, split: ClientSplit, *, index: int, seed: int) -> ClientRuntime:
    """Client ``index``'s runtime; its head is initialised from stream ``head`` of ``seed``."""
    return ClientRuntime.build(model, split, index=index, head_seed=seed_for(seed, "head", index))


def check_min_clients(sim: SimConfig, data: FederatedData) -> None:
    """ValueError when ``sim.min_clients`` exceeds the setting's clients (no round could succeed)
    or a ``sim.faults`` entry names no client of the setting (it would silently never fire)."""
    if sim.min_clients > len(data.clients):
        raise ValueError(f"sim.min_clients={sim.min_clients} but setting {data.setting!r} has "
                         f"{len(data.clients)} clients: no round could succeed")
    names = [c.name for c in data.clients]
    for i, f in enumerate(sim.fault_specs()):
        if (f.client not in names) if isinstance(f.client, str) else f.client >= len(names):
            raise ValueError(f"sim.faults[{i}].client={f.client!r} is not a client of setting "
                             f"{data.setting!r} (indices 0..{len(names) - 1}, names {names})")


class Run:
    """A run assembled from ``config`` (see module docstring); attributes are built lazily."""

    def __init__(self, config: ExperimentConfig) -> None:
        self.config = config
        self._runtimes: dict[int, ClientRuntime] = {}
        self._sites: dict[tuple[str, str, int], ClientRuntime] = {}
        self._rules: dict[int, RoundRules] = {}

    @functools.cached_property
    def model(self) -> nn.Module:
        return build_model_for(self.config)

    @functools.cached_property
    def data(self) -> FederatedData:
        from fedpia.data import get_setting

        cfg = self.config
        data = get_setting(cfg.setting, data_root=cfg.data_root, seed=cfg.sim.seed,
                           **cfg.setting_options)
        if not data.clients:
            raise ValueError(f"setting {data.setting!r} has no clients")
        check_min_clients(cfg.sim, data)
        return data

    @functools.cached_property
    def strategy(self) -> Strategy | None:
        """The federated strategy (None for ``centralized``, which is not federated)."""
        if self.config.strategy == "centralized":
            return None
        from fedpia.strategies import build_strategy

        return build_strategy(self.config.strategy, **strategy_knobs(self.config))

    @functools.cached_property
    def initial_adapter(self) -> State:
        """The adapter every client starts from (the seeded model's trainable state)."""
        return self.model.trainable_state()

    @property
    def num_clients(self) -> int:
        return len(self.data.clients)

    def rules(self, num_clients: int | None = None) -> RoundRules:
        """The protocol's rules (``num_clients`` defaults to the setting's client count)."""
        if self.strategy is None:
            raise ValueError("strategy 'centralized' has no federated rounds")
        cfg = self.config
        n = num_clients if num_clients else self.num_clients
        if n not in self._rules:
            self._rules[n] = RoundRules.make(self.strategy, sim=cfg.sim, train=cfg.train,
                                             robust=cfg.robust, num_clients=n,
                                             initial_adapter=self.initial_adapter, dp=cfg.dp)
        return self._rules[n]

    def runtime(self, index: int) -> ClientRuntime:
        """Client ``index``'s runtime (built and cached on first use)."""
        clients = self.data.clients
        if not 0 <= index < len(clients):
            raise ValueError(f"client index {index} out of range: setting "
                             f"{self.config.setting!r} has {len(clients)} clients")
        if index not in self._runtimes:
            self._runtimes[index] = client_runtime(self.model, clients[index], index=index,
                                                   seed=self.config.sim.seed)
        return self._runtimes[index]

    def site_runtime(self, site: Any, *, name: str, index: int) -> ClientRuntime:
        """The runtime of client ``index`` named ``name`` from a site's OWN data
        (:class:`fedpia.data.site.SiteSpec`; the run config's setting and ``data_root`` are not
        read). Cached per (site, name, index)."""
        from fedpia.data.site import load_site

        key = (repr(site), name, index)
        if key not in self._sites:
            split = load_site(site, name=name, index=index, seed=self.config.sim.seed)
            self._sites[key] = client_runtime(self.model, split, index=index,
                                              seed=self.config.sim.seed)
        return self._sites[key]


def build_run(config: ExperimentConfig, *, data_root: str | None = None) -> Run:
    """Validate ``config`` and assemble its :class:`Run` (``data_root`` overrides the config's,
    e.g. a SuperNode's own data folder)."""
    if data_root is not None:
        config = dataclasses.replace(config, data_root=data_root)
    config.validate()
    return Run(config)
