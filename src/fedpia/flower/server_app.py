"""The Flower ServerApp: builds the initial adapter and the fedpia strategy, runs Flower's loop.

The server builds the model only to read the initial trainable state (every node builds the
same seeded model, so all start from the same adapter, as in the in-process simulator). With
``output_dir`` in the run config the history (JSON) and the final global adapter
(safetensors) are written there.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fedpia.flower.config import FlowerRunConfig
from fedpia.flower.env import configure_environment
from fedpia.flower.records import state_to_record
from fedpia.flower.strategy import FlowerStrategy

log = logging.getLogger(__name__)


def num_clients_of(cfg: FlowerRunConfig) -> int:
    """``cfg.num_clients`` or, when 0, the number of clients of the setting (loads it)."""
    if cfg.num_clients:
        return cfg.num_clients
    from fedpia.data import get_setting

    data = get_setting(
        cfg.setting, data_root=cfg.data_root, seed=cfg.sim.seed, **cfg.setting_options
    )
    return len(data.clients)


def run_server(grid: Grid, cfg: FlowerRunConfig) -> FlowerStrategy:
    """Run ``cfg.sim.rounds`` rounds on ``grid``; returns the strategy (history, server state)."""
    from fedpia.models import build_model

    initial = build_model(cfg.model_config()).trainable_state()
    strategy = FlowerStrategy(
        cfg.build_strategy(),
        initial_adapter=initial,
        sim=cfg.sim,
        num_clients=num_clients_of(cfg),
        on_round_failure=cfg.on_round_failure,
        discovery_timeout=cfg.timeout,
    )
    strategy.start(
        grid=grid,
        initial_arrays=state_to_record(initial),
        num_rounds=cfg.sim.rounds,
        timeout=cfg.timeout,
    )
    return strategy


def write_outputs(out_dir: str | Path, strategy: FlowerStrategy, cfg: FlowerRunConfig) -> None:
    from fedpia.models import save_trainable_state

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = {"config": dataclasses.asdict(cfg), "history": strategy.history}
    (out / "history.json").write_text(json.dumps(results, indent=1, default=float))
    save_trainable_state(out / "global_adapter.safetensors", strategy.server.adapter)


def make_server_app(
    cfg: FlowerRunConfig | None = None,
    *,
    on_done: Callable[[FlowerStrategy], Any] | None = None,
) -> ServerApp:
    """A ServerApp bound to ``cfg`` (None: read ``Context.run_config``)."""
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        configure_environment()
        conf = cfg or FlowerRunConfig.from_run_config(context.run_config)
        strategy = run_server(grid, conf)
        if conf.output_dir:
            write_outputs(conf.output_dir, strategy, conf)
        if on_done is not None:
            on_done(strategy)

    return server


#: the module-level ServerApp for ``flwr run`` / SuperLink deployments
app = make_server_app()
