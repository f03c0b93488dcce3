"""The Flower ServerApp: assembles the run with :func:`fedpia.rounds.build_run`, runs Flower's loop.

What the submitted run config may NOT decide is the server operator's
(:mod:`fedpia.deploy.operator`, file named by ``$FEDPIA_SERVER_CONFIG``; the app refuses to run
without it):

* where results go: ``<output_dir>/<run id>/results.json`` (config, history, status, failure,
  privacy) and ``global_adapter.safetensors`` — a run config naming an output path is refused
  (:data:`fedpia.rounds.flat.REMOVED`);
* which node is which client: with ``[[clients]]`` (deployment) nodes are identified by their
  authenticated public keys and a run config naming ``data_root`` is refused (each SuperNode
  reads its own data, node config ``data-path``); without it nodes name their own partition
  (simulation).

A run in which every round was skipped (:func:`fedpia.rounds.run_failure`) or that raised
writes its results with ``status = "failed"`` and then raises, so Flower marks the run
``finished:failed`` (and ``fedpia.flower.submit`` / ``fedpia run --engine flower`` exit non-zero).
The server builds the model only to read the initial trainable state (every node builds the same
seeded model); it loads the setting's data only in simulation with ``flower.num_clients = 0``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fedpia.deploy.operator import OperatorConfig, operator_config_from_env
from fedpia.flower.env import configure_environment
from fedpia.flower.nodes import KeyDirectory, PartitionDirectory
from fedpia.flower.records import state_to_record
from fedpia.flower.strategy import FlowerStrategy
from fedpia.rounds import ExperimentConfig, Run, build_run, from_run_config, run_failure

log = logging.getLogger(__name__)


def check_flower_config(cfg: ExperimentConfig, operator: OperatorConfig | None = None) -> None:
    """What the Flower transport, or this server operator, does not accept (ValueError)."""
    if cfg.sim.share_heads:
        raise ValueError("sim.share_heads=True is not supported by the Flower engine (heads stay "
                         "on the clients); use the in-process engine")
    if operator is None or not operator.deployment:
        return
    if cfg.data_root is not None:
        raise ValueError(f"data_root={cfg.data_root!r} in a submitted run config is refused: each "
                         "SuperNode reads its own data (node config data-format / data-path)")
    n = len(operator.clients)
    if cfg.flower.num_clients not in (0, n):
        raise ValueError(f"flower.num_clients={cfg.flower.num_clients} but the server operator "
                         f"lists {n} clients")
    if cfg.sim.min_clients > n:
        raise ValueError(f"sim.min_clients={cfg.sim.min_clients} but the server operator lists "
                         f"{n} clients: no round could succeed")


def server_strategy(run: Run, operator: OperatorConfig | None = None) -> FlowerStrategy:
    """The FlowerStrategy of ``run``: its rules over the operator's clients (deployment) or
    ``flower.num_clients`` / the setting's clients (simulation)."""
    cfg = run.config
    check_flower_config(cfg, operator)
    timeout = cfg.flower.timeout
    if operator is not None and operator.deployment:
        directory: Any = KeyDirectory(operator.clients, timeout=timeout)
        n = len(operator.clients)
    else:
        n = cfg.flower.num_clients or run.num_clients
        directory = PartitionDirectory(n, timeout=timeout)
    return FlowerStrategy(run.rules(n), initial_adapter=run.initial_adapter, directory=directory)


def write_results(out: Path, strategy: FlowerStrategy, cfg: ExperimentConfig, *, run_id: int,
                  failure: str | None) -> Path:
    """``out/results.json`` and ``out/global_adapter.safetensors``; returns the JSON path."""
    from fedpia.models import save_trainable_state

    out.mkdir(parents=True, exist_ok=True)
    history = strategy.history
    results = {"run_id": run_id, "config": cfg.to_dict(), "clients": list(strategy.names), "history": history,
               "status": "failed" if failure else "completed", "failure": failure,
               "privacy": history[-1].get("privacy") if history else None,
               "adapter_keys": list(strategy.server.adapter)}  # safetensors sorts its keys
    path = out / "results.json"
    path.write_text(json.dumps(results, indent=1, default=float))
    save_trainable_state(out / "global_adapter.safetensors", strategy.server.adapter)
    return path


def serve(grid: Grid, cfg: ExperimentConfig, operator: OperatorConfig, *, run_id: int
          ) -> FlowerStrategy:
    """Run ``cfg`` on ``grid`` and write its results under ``operator.run_dir(run_id)``; raises
    RuntimeError after writing when the run failed (module docstring)."""
    strategy = server_strategy(build_run(cfg), operator)
    out = operator.run_dir(run_id)
    try:
        strategy.start(grid=grid, initial_arrays=state_to_record(strategy.server.adapter),
                       num_rounds=cfg.sim.rounds, timeout=cfg.flower.timeout)
    except Exception as exc:
        write_results(out, strategy, cfg, run_id=run_id, failure=f"{type(exc).__name__}: {exc}")
        raise
    failure = run_failure(strategy.history)
    path = write_results(out, strategy, cfg, run_id=run_id, failure=failure)
    log.info("results of run %s: %s", run_id, path)
    if failure:
        raise RuntimeError(f"fedpia run {run_id} failed: {failure} (results: {path})")
    return strategy


def make_server_app(
    cfg: ExperimentConfig | None = None,
    *,
    operator: OperatorConfig | None = None,
    on_done: Callable[[FlowerStrategy], Any] | None = None,
) -> ServerApp:
    """A ServerApp bound to ``cfg`` (None: ``Context.run_config``) and ``operator`` (None: the
    file named by ``$FEDPIA_SERVER_CONFIG``, read when the app starts)."""
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        configure_environment()
        op = operator if operator is not None else operator_config_from_env()
        conf = cfg or from_run_config(context.run_config)
        check_flower_config(conf, op)
        strategy = serve(grid, conf, op, run_id=context.run_id)
        if on_done is not None:
            on_done(strategy)

    return server


#: the module-level ServerApp for ``flwr run`` / SuperLink deployments
app = make_server_app()
