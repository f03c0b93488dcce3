"""The server side of the round protocol (both engines call exactly these functions).

A round, as the engines drive it::

    chosen  = sample_clients(n, r, sim)                    # stream "sample"
    payload = strategy.client_payload(server)              # -> chosen clients (client_step)
    outcome = server_step(rules, server, r, chosen=..., updates=..., failed=..., payload=...)

:func:`server_step` is every server decision of a round, in this order:

1. failure policy input: more than ``sim.max_failure_frac`` of the chosen clients failed;
2. screening of each whole upload (:func:`fedpia.aggregation.screen_upload`): a rejected upload
   is dropped with its reason — exactly as if the client had dropped out;
3. bounded influence (:func:`fedpia.aggregation.bound_updates`) relative to the screened ones;
4. ``sim.min_clients`` valid updates, then ``strategy.aggregate`` (any rule, FedPIA included)
   or, with ``dp.mode="central"``, the clipped and noised mean
   (:func:`fedpia.rounds.privacy.central_aggregate`);
5. a failing round (1, 4 or an aggregation error) keeps the previous global state: recorded as
   ``skipped`` (``sim.on_failure="skip"``) or raised as :class:`RoundFailed` (``"raise"``);
6. the privacy ledger (:func:`fedpia.rounds.privacy.account`) is advanced and reported in the
   record's ``privacy`` (None without DP).

The round record (:func:`new_record`) has the same keys on both engines. :func:`run_failure`
says whether a finished run failed as a whole (every round skipped).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from fedpia.aggregation import bound_updates, screen_upload
from fedpia.rounds.build import RoundRules
from fedpia.rounds.config import SimConfig
from fedpia.rounds.faults import faults_for
from fedpia.rounds.privacy import account, central_aggregate
from fedpia.rounds.seeds import seed_for
from fedpia.strategies.base import ClientUpdate, RoundContext, ServerState, State

if TYPE_CHECKING:
    from fedpia.privacy.accountant import PrivacyLedger

log = logging.getLogger(__name__)

RECORD_KEYS = ("round", "clients", "failed", "rejected", "faults", "influence", "skipped",
               "server_time", "bytes_down", "bytes_up", "diagnostics", "privacy", "eval",
               "eval_time", "round_time")


class RoundFailed(RuntimeError):
    """A round could not complete (``sim.on_failure="raise"``); the global state is unchanged.
    ``record``: the round's record with its ``skipped`` reason."""

    def __init__(self, message: str, record: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.record = record


def sample_clients(n: int, round_: int, sim: SimConfig) -> list[int]:
    """Sorted indices of the clients trained in ``round_``: ``max(min_clients,
    round(fraction_fit · n))`` of them, drawn without replacement (stream ``sample``)."""
    k = sim.clients_per_round(n)
    if k == n:
        return list(range(n))
    rng = np.random.default_rng(seed_for(sim.seed, "sample", round_))
    return sorted(rng.choice(n, size=k, replace=False).tolist())


def state_bytes(state: Mapping[str, Any]) -> int:
    return sum(t.numel() * t.element_size() for t in state.values())


@dataclass
class RoundOutcome:
    """``server``: the new (or, skipped, the previous) server state; ``record``: the round
    record (``eval`` and ``round_time`` are filled by the engine); ``kept``: names of the
    clients whose updates were aggregated; ``ledger``: the privacy ledger after the round."""

    server: ServerState
    record: dict[str, Any]
    kept: list[str]
    ledger: PrivacyLedger | None = None

    @property
    def skipped(self) -> bool:
        return self.record["skipped"] is not None


def new_record(rules: RoundRules, round_: int, chosen: Sequence[tuple[int, str]],
               updates: Sequence[ClientUpdate], failed: Mapping[str, str],
               payload: Mapping[str, State]) -> dict[str, Any]:
    """The round record before the server's decisions (see ``RECORD_KEYS``)."""
    injected = {name: [f.label for f in faults_for(rules.faults, round_, i, name)]
                for i, name in chosen}
    return {
        "round": round_,
        "clients": {u.client: dict(u.metrics) for u in updates},
        "failed": dict(failed),
        "rejected": {},
        "faults": {name: kinds for name, kinds in injected.items() if kinds},
        "influence": {"bound": None, "norms": {}, "clipped": {}},
        "skipped": None,
        "server_time": 0.0,
        "bytes_down": state_bytes(payload["adapter"]) * len(chosen),
        "bytes_up": sum(state_bytes(u.state) for u in updates),
        "diagnostics": {},
        "privacy": None,
    }


def screen(rules: RoundRules, server: ServerState,
           updates: Sequence[ClientUpdate]) -> tuple[list[ClientUpdate], dict[str, str]]:
    """Screen whole uploads. Returns (valid updates with int counts, {client: reason})."""
    rob = rules.robust
    valid, rejected = [], {}
    for u in updates:
        reason = screen_upload(u.state, u.num_examples, u.extra, server.adapter,
                               max_examples=rob.max_examples, max_abs=rob.max_abs)
        if reason is None:
            valid.append(replace(u, num_examples=int(u.num_examples)))
        else:
            rejected[u.client] = reason
    return valid, rejected


def bound(rules: RoundRules, server: ServerState, valid: Sequence[ClientUpdate],
          record: dict[str, Any]) -> list[ClientUpdate]:
    """Bounded influence of the screened uploads (``robust.norm_bound``); fills the record's
    ``influence`` (and ``rejected`` in mode "reject"). Returns the uploads to aggregate."""
    rob = rules.robust
    out = bound_updates([u.state for u in valid], server.adapter,
                        factor=rob.norm_factor, mode=rob.norm_bound)
    record["influence"] = {
        "bound": out.bound,
        "norms": {u.client: n for u, n in zip(valid, out.norms, strict=True)},
        "clipped": {valid[k].client: s for k, s in out.scales.items()},
    }
    record["rejected"].update({valid[k].client: why for k, why in out.rejected.items()})
    return [replace(u, state=s) for k, (u, s) in enumerate(zip(valid, out.states, strict=True))
            if k not in out.rejected]


def server_step(
    rules: RoundRules,
    server: ServerState,
    round_: int,
    *,
    chosen: Sequence[tuple[int, str]],
    updates: Sequence[ClientUpdate],
    failed: Mapping[str, str],
    payload: Mapping[str, State],
    ledger: PrivacyLedger | None = None,
    noise_secret: bytes | None = None,
) -> RoundOutcome:
    """Every server decision of round ``round_`` (module docstring). ``chosen``: (index, name)
    of the sampled clients; ``updates``: the received uploads ordered by client index;
    ``failed``: {name: reason} of chosen clients that sent nothing; ``ledger``: the privacy
    ledger before the round (None without DP); ``noise_secret``: mixed into central-DP noise."""
    record = new_record(rules, round_, chosen, updates, failed, payload)
    uploaded = [u.client for u in updates]
    sim = rules.sim
    if len(failed) > sim.max_failure_frac * len(chosen):
        return _fail(rules, server, record, f"{len(failed)}/{len(chosen)} clients failed: "
                     f"{dict(failed)} (> sim.max_failure_frac={sim.max_failure_frac})",
                     account(ledger, uploaded=uploaded, released=False))
    valid, record["rejected"] = screen(rules, server, updates)
    kept = bound(rules, server, valid, record)
    for name, why in record["rejected"].items():
        log.warning("round %d: rejected the upload of %s: %s", round_, name, why)
    if len(kept) < sim.min_clients:
        details = "; ".join(f"{n}: {r}" for n, r in record["rejected"].items())
        return _fail(rules, server, record, f"only {len(kept)} valid client update(s) out of "
                     f"{len(updates)}, need sim.min_clients={sim.min_clients}"
                     + (f" (rejected: {details})" if details else ""),
                     account(ledger, uploaded=uploaded, released=False))
    t0 = time.perf_counter()
    try:
        new, diag = aggregate(rules, server, kept, round_, noise_secret=noise_secret)
    except Exception as exc:  # a failing rule must not take the run down (policy decides)
        return _fail(rules, server, record, f"aggregation failed: {type(exc).__name__}: {exc}",
                     account(ledger, uploaded=uploaded, released=False))
    record.update(server_time=time.perf_counter() - t0, diagnostics=diag)
    ledger = account(ledger, uploaded=uploaded, released=True)
    record["privacy"] = ledger.report() if ledger is not None else None
    return RoundOutcome(new, record, [u.client for u in kept], ledger)


def aggregate(rules: RoundRules, server: ServerState, kept: Sequence[ClientUpdate], round_: int,
              *, noise_secret: bytes | None) -> tuple[ServerState, dict[str, Any]]:
    """``strategy.aggregate`` of the kept uploads, or with ``dp.mode="central"`` the clipped,
    noised mean (:func:`fedpia.rounds.privacy.central_aggregate`)."""
    if rules.dp.mode == "central":
        return central_aggregate(rules, server, list(kept), round_, secret=noise_secret)
    sim = rules.sim
    ctx = RoundContext(round=round_, num_rounds=sim.rounds, seed=seed_for(sim.seed, "server", round_),
                       num_clients=rules.num_clients)
    return rules.strategy.aggregate(server, list(kept), ctx)


def _fail(rules: RoundRules, server: ServerState, record: dict[str, Any], reason: str,
          ledger: PrivacyLedger | None) -> RoundOutcome:
    """Keep ``server``; skip the round (recorded) or raise, per ``sim.on_failure``."""
    record["skipped"] = reason
    record["privacy"] = ledger.report() if ledger is not None else None
    message = f"round {record['round']}: {reason}"
    if rules.sim.on_failure == "raise":
        raise RoundFailed(message, record)
    log.error("%s; round skipped, the global state is kept (sim.on_failure='skip')", message)
    return RoundOutcome(replace(server, round=record["round"]), record, [], ledger)


def run_failure(history: Sequence[Mapping[str, Any]]) -> str | None:
    """Why a finished run failed as a whole (no round completed: every round skipped), or
    None. Both engines report it the same way (results ``status``; the ServerApp raises)."""
    if history and all(h.get("skipped") for h in history):
        return f"every round was skipped (last: {history[-1]['skipped']})"
    return None
