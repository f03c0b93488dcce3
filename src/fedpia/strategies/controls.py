"""Controls that isolate the parts of FedPIA (issue 14): the same client λ-mix, no permutation.

``fedavg-mix``: FedAvg on the server; from round 2 on every client starts local training from
``mix · G + (1 − mix) · L`` (G the received global adapter, L the client's own adapter from its
last round), exactly FedPIA's client merge (``fedpia.align.mix_states``) without the
permutation of G and without the server's alignment. Equal to
``fedpia(server_pia=False, client_permute=False)`` (tested); with ``mix=1`` it is FedAvg.
So FedPIA's difference from FedAvg splits into the mix (``fedavg-mix`` − FedAvg) and the
permutations (FedPIA − ``fedavg-mix``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fedpia.align import mix_states
from fedpia.strategies.base import (
    ActivationProbe,
    ClientState,
    LocalHooks,
    RoundContext,
    State,
    Strategy,
)
from fedpia.strategies.registry import register_strategy


@register_strategy("fedavg-mix")
@dataclass
class FedAvgMix(Strategy):
    """FedAvg server + FedPIA's client λ-mix of the global and the local adapter (no permutation)."""

    mix: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.mix <= 1.0:
            raise ValueError(f"fedavg-mix.mix must be in [0, 1], got {self.mix}")

    def client_start(
        self,
        payload: Mapping[str, State],
        client: ClientState,
        ctx: RoundContext,
        *,
        probe: ActivationProbe | None = None,
    ) -> tuple[State, LocalHooks]:
        glob = payload["adapter"]
        if client.adapter is None:  # round 1: every client starts from G
            return {k: v.clone() for k, v in glob.items()}, LocalHooks()
        return mix_states(glob, client.adapter, self.mix), LocalHooks()
