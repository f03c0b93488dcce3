"""One registry of federated strategies (FedPIA and baselines), pure hooks with explicit state."""

from fedpia.strategies import baselines, controls, fedpia, robust  # noqa: F401  (fill the registry)
from fedpia.strategies.base import (
    ActivationProbe,
    ClientState,
    ClientUpdate,
    LocalHooks,
    RoundContext,
    ServerState,
    State,
    Strategy,
)
from fedpia.strategies.fedpia import FedPIA
from fedpia.strategies.registry import (
    STRATEGIES,
    build_strategy,
    register_strategy,
    strategy_fields,
)

__all__ = [
    "STRATEGIES",
    "ActivationProbe",
    "ClientState",
    "ClientUpdate",
    "FedPIA",
    "LocalHooks",
    "RoundContext",
    "ServerState",
    "State",
    "Strategy",
    "build_strategy",
    "register_strategy",
    "strategy_fields",
]
