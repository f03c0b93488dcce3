"""Environment variables Flower needs on these machines (set only when not already set).

* ``FLWR_TELEMETRY_ENABLED=0`` and ``FLWR_DISABLE_UPDATE_CHECK=1``: no network calls;
* ``FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1``: otherwise every run ``uv sync``s the app's
  dependencies and may replace the CPU torch build by a multi-GB CUDA one;
* ``FLWR_HOME``: a private directory (default: a fresh temporary directory) for Flower's
  state, logs and app cache.
"""

from __future__ import annotations

import os
import tempfile

DEFAULTS = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
}


def configure_environment(flower_home: str | None = None) -> dict[str, str]:
    """Set the defaults above in ``os.environ`` where unset; returns the values in effect."""
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    if flower_home is not None:
        os.environ["FLWR_HOME"] = flower_home
    elif "FLWR_HOME" not in os.environ:
        os.environ["FLWR_HOME"] = tempfile.mkdtemp(prefix="fedpia-flwr-home-")
    return {k: os.environ[k] for k in (*DEFAULTS, "FLWR_HOME")}
