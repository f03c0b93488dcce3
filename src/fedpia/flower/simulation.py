"""Run a fedpia experiment on Flower's simulation engine (Ray backend), in this process.

``run_flower_simulation(cfg)`` starts one virtual SuperNode per client of the setting
(partition-id k = client k), runs the fedpia ServerApp / ClientApp pair with Flower's Ray
backend and returns the per-round history with the in-process simulator's record shape
(``round``, ``clients``, ``failed``, ``rejected``, ``server_time``, ``bytes_down``, ``bytes_up``,
``diagnostics``, ``eval`` {client: {"personalized"|"global": metrics}}, ``round_time``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from fedpia.flower.env import configure_environment

log = logging.getLogger(__name__)


def default_backend_config(num_cpus: int | None = None) -> dict[str, Any]:
    """One CPU per client actor (more than the core count hangs Ray), no GPU."""
    cores = num_cpus or os.cpu_count() or 1
    return {
        "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
        "init_args": {"num_cpus": cores, "num_gpus": 0},
    }


@contextlib.contextmanager
def _flower_logging() -> Iterator[None]:
    """Flower's log lines once (its own console handler, not also through ours on the root
    logger) and without its DEBUG lines — unless the root logger is at DEBUG (``--verbose``),
    where Flower's logger is left as it is. Ray's GPU-env-var tip is silenced."""
    flwr_log = logging.getLogger("flwr")
    saved = flwr_log.propagate, flwr_log.level
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        if flwr_log.handlers:
            flwr_log.propagate = False
        if flwr_log.getEffectiveLevel() < logging.INFO:
            flwr_log.setLevel(logging.INFO)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Tip: In future versions of Ray",
                                    category=FutureWarning)
            yield
    finally:
        flwr_log.propagate = saved[0]
        flwr_log.setLevel(saved[1])


def run_flower_simulation(
    config: Any,
    *,
    num_supernodes: int | None = None,
    backend_config: dict[str, Any] | None = None,
    flower_home: str | None = None,
    client_mods: Sequence[Any] = (),
    return_strategy: bool = False,
) -> Any:
    """Run ``config`` (a :class:`~fedpia.rounds.ExperimentConfig`) on Flower + Ray.

    Returns the history (list of round records), or ``(history, strategy)`` with
    ``return_strategy=True`` (``strategy.server`` is the final ServerState). ``client_mods``
    are Flower client mods wrapped around every ClientApp call (DP, logging, ...); injected
    faults are a config feature (``sim.faults``) and need no mod.
    """
    from flwr.simulation import run_simulation

    from fedpia.flower.client_app import make_client_app
    from fedpia.flower.server_app import check_flower_config, make_server_app
    from fedpia.rounds import build_run

    cfg = config
    check_flower_config(cfg)
    configure_environment(flower_home)
    n = build_run(cfg).num_clients
    if num_supernodes is not None and num_supernodes != n:
        raise ValueError(
            f"num_supernodes={num_supernodes} but setting {cfg.setting!r} has {n} clients "
            "(one SuperNode per client: partition-id k serves client k)"
        )
    if cfg.flower.num_clients != n:
        cfg = dataclasses.replace(cfg, flower=dataclasses.replace(cfg.flower, num_clients=n))
    done: list[Any] = []
    with _flower_logging():
        run_simulation(
            server_app=make_server_app(cfg, on_done=done.append),
            client_app=make_client_app(cfg, mods=client_mods),
            num_supernodes=n,
            backend_name="ray",
            backend_config=backend_config or default_backend_config(),
        )
    if not done:
        raise RuntimeError("the Flower simulation ended without finishing the ServerApp")
    strategy = done[0]
    return (strategy.history, strategy) if return_strategy else strategy.history
