"""Differential privacy in the round protocol: the ONE place both engines apply ``dp.*``.

* :func:`resolve_dp` (run assembly): σ calibrated for ``dp.target_epsilon`` over ``sim.rounds``
  rounds at the sampling rate ``q = k / n`` (``k = sim.clients_per_round(n)``), once, in
  :meth:`fedpia.rounds.RoundRules.make`; the strategy policy is checked by
  :meth:`fedpia.rounds.ExperimentConfig.validate` (:func:`fedpia.privacy.check_dp_strategy`).
* :func:`privatize_upload` (``client_step``, ``dp.mode="local"``): the upload becomes
  ``θ_recv + clip_C(θ − θ_recv) + N(0, (σC)² I)``; the client KEEPS its un-noised adapter
  (the ClientState is not touched). Metrics computed from the un-noised adapter (``loss``,
  ``start_shift``) are dropped from the upload.
* :func:`central_aggregate` (``server_step`` after screening and bounded influence,
  ``dp.mode="central"``): the clipped, noised uniform mean with the fixed denominator ``k``
  replaces ``strategy.aggregate``.
* :func:`account`: the privacy ledger after a round (local: every client whose noised upload
  reached the server; central: one step per released aggregate).

Noise randomness: ``noise_generator(sim.seed, round, client, secret=...)``. ``secret=None``
(the in-process simulator) makes the noise a function of the run seed: reproducible, and NO
real privacy against anyone who knows the seed. On Flower the ClientApp passes a node-local
secret and the ServerApp fresh OS entropy (docs/security.md). Opacus is imported only when a
run uses DP.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from fedpia.privacy.config import DPConfig

if TYPE_CHECKING:
    from fedpia.privacy.accountant import PrivacyLedger
    from fedpia.rounds.build import RoundRules
    from fedpia.rounds.config import SimConfig
    from fedpia.strategies.base import ClientUpdate, ServerState, State

#: ``noise`` of a ledger whose noise derives from the run seed only
SEEDED_NOISE = ("seeded from sim.seed (simulation): anyone who knows the seed can remove it, "
                "so it gives NO real privacy")
#: metrics computed from the un-noised adapter: not uploaded under local DP
PRIVATE_METRICS = ("loss", "start_shift")
_SERVER = "\x00server"  # the server's noise stream (no client name starts with NUL)


def resolve_dp(dp: DPConfig, sim: SimConfig, num_clients: int) -> DPConfig:
    """``dp`` with σ calibrated for ``dp.target_epsilon`` (unchanged without a target)."""
    if not dp.enabled or dp.target_epsilon is None:
        return dp
    from fedpia.privacy.accountant import resolve_noise_multiplier

    q = sim.clients_per_round(num_clients) / num_clients
    return resolve_noise_multiplier(dp, rounds=sim.rounds, sample_rate=q)


def new_ledger(rules: RoundRules, *, noise: str) -> PrivacyLedger | None:
    """An empty ledger for ``rules.dp`` (None when DP is off); ``noise`` says where the noise
    randomness comes from (:data:`SEEDED_NOISE` in simulation)."""
    if not rules.dp.enabled:
        return None
    from fedpia.privacy.accountant import PrivacyLedger

    q = rules.sim.clients_per_round(rules.num_clients) / rules.num_clients
    return PrivacyLedger(rules.dp, sample_rate=q, noise=noise)


def privatize_upload(rules: RoundRules, update: ClientUpdate, received: State, round_: int, *,
                     secret: bytes | None) -> ClientUpdate:
    """Local DP on ``update`` (unchanged unless ``dp.mode="local"``); see module docstring."""
    if rules.dp.mode != "local":
        return update
    from fedpia.privacy import noise_generator, privatize_client_update

    gen = noise_generator(rules.sim.seed, round_, update.client, secret=secret)
    noisy, _ = privatize_client_update(update, received, dp=rules.dp, generator=gen)
    metrics = {k: v for k, v in update.metrics.items() if k not in PRIVATE_METRICS}
    return replace(noisy, metrics=metrics)


def central_aggregate(rules: RoundRules, server: ServerState, kept: list[ClientUpdate],
                      round_: int, *, secret: bytes | None) -> tuple[ServerState, dict[str, Any]]:
    """Central DP server step: clipped, noised mean with denominator ``k`` (module doc)."""
    from fedpia.privacy import central_dp_aggregate, noise_generator

    gen = noise_generator(rules.sim.seed, round_, _SERVER, secret=secret)
    return central_dp_aggregate(server, kept, dp=rules.dp, round_=round_,
                                expected_clients=rules.sim.clients_per_round(rules.num_clients),
                                generator=gen)


def account(ledger: PrivacyLedger | None, *, uploaded: list[str], released: bool
            ) -> PrivacyLedger | None:
    """The ledger after a round (a copy): local mode records every client in ``uploaded``
    (noised uploads that reached the server, whatever screening made of them); central mode
    records one step when the aggregate was ``released`` (a skipped round releases nothing)."""
    if ledger is None:
        return None
    new = ledger.copy()
    if ledger.dp.mode == "local" and uploaded:
        new.record_round(sorted(uploaded))
    elif ledger.dp.mode == "central" and released:
        new.record_round([])
    return new
