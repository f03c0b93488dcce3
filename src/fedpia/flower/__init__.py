"""Flower backend: the only fedpia code importing ``flwr`` (Message API, flwr >= 1.22).

* :class:`FlowerStrategy` wraps any fedpia strategy as a Flower message strategy;
* ``fedpia.flower.server_app:app`` / ``fedpia.flower.client_app:app``: the ServerApp and
  ClientApp for ``flwr run`` and SuperLink / SuperNode deployments (config: run_config);
* :func:`run_flower_simulation`: the same apps on Flower's Ray simulation engine.

See docs/flower.md.
"""

from fedpia.flower.config import FlowerRunConfig
from fedpia.flower.env import configure_environment
from fedpia.flower.simulation import default_backend_config, run_flower_simulation
from fedpia.flower.strategy import FlowerStrategy, NodeInfo, parse_update, sample_clients

__all__ = [
    "FlowerRunConfig",
    "FlowerStrategy",
    "NodeInfo",
    "configure_environment",
    "default_backend_config",
    "parse_update",
    "run_flower_simulation",
    "sample_clients",
]
