"""Which strategies each DP mode can protect, and the DP steps on fedpia's update objects.

Both engines call these (one decision, one place):

- :func:`check_dp_strategy` once at run assembly — refuses combinations whose guarantee would be
  false: central DP for a strategy whose aggregate is not a mean of the uploaded states
  (FedPIA's OT alignment and exp(−γd) weights, FedOpt moments, SCAFFOLD control variates, LoRA
  re-factorisations ...), and either mode with head sharing (heads would travel unclipped).
- :func:`privatize_client_update` on the client after ``strategy.client_finish`` (local mode).
- :func:`central_dp_aggregate` on the server instead of ``strategy.aggregate`` (central mode).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch

from fedpia.privacy.config import DPConfig
from fedpia.privacy.mechanism import State, central_aggregate, privatize_update

if TYPE_CHECKING:  # the strategies package pulls POT/scikit-learn: imported only when needed
    from fedpia.strategies.base import ClientUpdate, ServerState, Strategy


def _mean_aggregates() -> tuple[Any, ...]:
    """``aggregate`` implementations that are a weighted mean of the uploaded states (the base
    FedAvg one inherited by FedAvg / FedProx / Ditto / FedDAT, and FedIT's)."""
    from fedpia.strategies.base import Strategy
    from fedpia.strategies.baselines import FedIT

    return (Strategy.aggregate, FedIT.aggregate)


#: strategies whose client uploads carry extra states besides the adapter (refused by local DP
#: at run assembly; :func:`privatize_client_update` also refuses any update with extras)
EXTRA_UPLOADS = {"scaffold": "its control-variate update delta_c"}


def central_dp_supported(strategy: Strategy) -> bool:
    """True when the strategy's server step is a mean of uploads (central DP replaces it by the
    clipped, noised mean). Decided by the aggregate IMPLEMENTATION, so a new strategy that
    overrides ``aggregate`` is refused until it is reviewed and listed here."""
    return type(strategy).aggregate in _mean_aggregates()


def check_dp_strategy(dp: DPConfig, strategy: Strategy, *, share_heads: bool = False) -> None:
    """ValueError when ``dp`` cannot give its guarantee with ``strategy`` (see module doc)."""
    if not dp.enabled:
        return
    if share_heads:
        raise ValueError(f"dp.mode={dp.mode!r} with sim.share_heads=True: heads would be uploaded "
                         "without clipping or noise; keep heads local")
    if dp.mode == "local" and strategy.name in EXTRA_UPLOADS:
        raise ValueError(f"dp.mode='local' covers the uploaded adapter only; {strategy.name!r} "
                         f"also uploads {EXTRA_UPLOADS[strategy.name]} (not protected)")
    if dp.mode == "central" and not central_dp_supported(strategy):
        raise ValueError(
            f"dp.mode='central' needs a strategy whose aggregate is a mean of client updates "
            f"(fedavg, fedprox, ditto, feddat, fedit); {strategy.name!r} aggregates otherwise "
            "(FedPIA's server step needs each client's adapter in the clear). Use dp.mode='local'")


def privatize_client_update(update: ClientUpdate, received: State, *, dp: DPConfig,
                            generator: torch.Generator) -> tuple[ClientUpdate, dict[str, Any]]:
    """Local DP: the update whose ``state`` is ``received + clip(state − received) + noise``.

    ``received`` = the global adapter this client got this round (``payload["adapter"]``).
    Strategies that upload extra states (SCAFFOLD's control variate) are refused: the extras
    would leave the client without clipping or noise."""
    if update.extra:
        raise ValueError(f"local DP covers the uploaded adapter only; this strategy also uploads "
                         f"{sorted(update.extra)} (not protected)")
    state, info = privatize_update(update.state, received, dp=dp, generator=generator)
    return replace(update, state=state), info


def central_dp_aggregate(server: ServerState, updates: list[ClientUpdate], *, dp: DPConfig,
                         round_: int, expected_clients: float, generator: torch.Generator
                         ) -> tuple[ServerState, dict[str, Any]]:
    """Central DP server step: new global = clipped, noised uniform mean (fixed denominator
    ``expected_clients``). The round's diagnostics (per-client norms) are NOT private."""
    if any(u.extra for u in updates):
        raise ValueError("central DP covers uploaded adapters only; an update carries extra states")
    adapter, info = central_aggregate(server.adapter, [u.state for u in updates], dp=dp,
                                      expected_clients=expected_clients, generator=generator)
    return replace(server, adapter=adapter, round=round_), {"dp": info}
