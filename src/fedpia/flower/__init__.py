"""Flower backend: the only fedpia code importing ``flwr`` (Message API, flwr >= 1.22).

A transport around the round layer (:mod:`fedpia.rounds`):

* :class:`FlowerStrategy` wraps any fedpia strategy as a Flower message strategy;
* ``fedpia.flower.server_app:app`` / ``fedpia.flower.client_app:app``: the ServerApp and
  ClientApp for ``flwr run`` and SuperLink / SuperNode deployments (config: run_config, the
  flat form of :class:`fedpia.rounds.ExperimentConfig`);
* :func:`run_flower_simulation`: the same apps on Flower's Ray simulation engine.

See docs/flower.md.
"""

from fedpia.flower.env import configure_environment
from fedpia.flower.simulation import default_backend_config, run_flower_simulation
from fedpia.flower.strategy import FlowerStrategy, NodeInfo, error_reason, parse_update

__all__ = [
    "FlowerStrategy",
    "NodeInfo",
    "configure_environment",
    "default_backend_config",
    "error_reason",
    "parse_update",
    "run_flower_simulation",
]
