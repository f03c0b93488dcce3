"""Flower backend: the only fedpia code importing ``flwr`` (Message API, flwr >= 1.22).

A transport around the round layer (:mod:`fedpia.rounds`):

* :class:`FlowerStrategy` wraps any fedpia strategy as a Flower message strategy; the node
  directories (:mod:`fedpia.flower.nodes`) say which node serves which client (authenticated
  public keys in deployment, ``partition-id`` in simulation);
* ``fedpia.flower.server_app:app`` / ``fedpia.flower.client_app:app``: the ServerApp and
  ClientApp for ``flwr run`` and SuperLink / SuperNode deployments (config: run_config, the
  flat form of :class:`fedpia.rounds.ExperimentConfig`; the server operator's config; each
  node's own data);
* :func:`run_flower_simulation`: the same apps on Flower's simulation runtime through ``flwr run``
  (:mod:`fedpia.flower.submit`: submit, wait, exit status).

Names are imported lazily (PEP 562): importing ``fedpia.flower`` or the ClientApp module loads
neither torch nor the model code (a SuperNode's ClientApp must start fast). See docs/flower.md.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "configure_environment": "fedpia.flower.env",
    "FlowerStrategy": "fedpia.flower.strategy",
    "error_reason": "fedpia.flower.strategy",
    "parse_update": "fedpia.flower.strategy",
    "NodeInfo": "fedpia.flower.nodes",
    "KeyDirectory": "fedpia.flower.nodes",
    "PartitionDirectory": "fedpia.flower.nodes",
    "run_flower_simulation": "fedpia.flower.simulation",
    "FlowerRunFailed": "fedpia.flower.submit",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'fedpia.flower' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
