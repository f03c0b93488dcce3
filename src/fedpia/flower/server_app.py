"""The Flower ServerApp: assembles the run with :func:`fedpia.rounds.build_run`, runs Flower's loop.

The server builds the model only to read the initial trainable state (every node builds the
same seeded model, so all start from the same adapter, as in the in-process simulator). It loads
the data only when ``flower.num_clients`` is 0 (to count the setting's clients). With
``flower.output_dir`` the history (JSON) and the final global adapter (safetensors) are written
there.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fedpia.flower.env import configure_environment
from fedpia.flower.records import state_to_record
from fedpia.flower.strategy import FlowerStrategy
from fedpia.rounds import ExperimentConfig, Run, build_run, from_run_config

log = logging.getLogger(__name__)


def check_flower_config(cfg: ExperimentConfig) -> None:
    """What the Flower transport cannot do (ValueError)."""
    if cfg.sim.share_heads:
        raise ValueError("sim.share_heads=True is not supported by the Flower engine (heads stay "
                         "on the clients); use the in-process engine")


def num_clients_of(run: Run) -> int:
    """``flower.num_clients`` or, when 0, the number of clients of the setting (loads it)."""
    return run.config.flower.num_clients or run.num_clients


def server_strategy(run: Run) -> FlowerStrategy:
    """The FlowerStrategy of ``run`` (its rules, initial adapter and discovery timeout)."""
    check_flower_config(run.config)
    return FlowerStrategy(run.rules(num_clients_of(run)), initial_adapter=run.initial_adapter,
                          discovery_timeout=run.config.flower.timeout)


def run_server(grid: Grid, cfg: ExperimentConfig) -> FlowerStrategy:
    """Run ``cfg.sim.rounds`` rounds on ``grid``; returns the strategy (history, server state)."""
    run = build_run(cfg)
    strategy = server_strategy(run)
    strategy.start(grid=grid, initial_arrays=state_to_record(run.initial_adapter),
                   num_rounds=cfg.sim.rounds, timeout=cfg.flower.timeout)
    return strategy


def write_outputs(out_dir: str | Path, strategy: FlowerStrategy, cfg: ExperimentConfig) -> None:
    from fedpia.models import save_trainable_state

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = {"config": cfg.to_dict(), "history": strategy.history}
    (out / "history.json").write_text(json.dumps(results, indent=1, default=float))
    save_trainable_state(out / "global_adapter.safetensors", strategy.server.adapter)


def make_server_app(
    cfg: ExperimentConfig | None = None,
    *,
    on_done: Callable[[FlowerStrategy], Any] | None = None,
) -> ServerApp:
    """A ServerApp bound to ``cfg`` (None: read ``Context.run_config``)."""
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        configure_environment()
        conf = cfg or from_run_config(context.run_config)
        strategy = run_server(grid, conf)
        if conf.flower.output_dir:
            write_outputs(conf.flower.output_dir, strategy, conf)
        if on_done is not None:
            on_done(strategy)

    return server


#: the module-level ServerApp for ``flwr run`` / SuperLink deployments
app = make_server_app()
