"""Privacy accounting with Opacus's RDP accountant (``opacus==1.6.0``; we write none ourselves).

Which mechanism each mode runs, and so what is accounted:

- ``central`` — user-level DP (add/remove one client's whole data) of the sequence of released
  global states. Each round is a Sampled Gaussian Mechanism on the sum of clipped updates:
  sensitivity C, noise σC, client sampling rate ``q = clients per round / clients``. ε after
  ``R`` rounds = Opacus ``RDPAccountant`` with ``R`` steps of ``(σ, q)``. Opacus assumes Poisson
  sampling; fedpia samples a fixed number without replacement, for which this is the customary
  approximation (exact when q = 1: every client every round).
- ``local`` — each client's uploads are Gaussian mechanisms on its own clipped update, released
  to the server. The adjacency that covers ANY change of the client's data (one record or all of
  them) is replacement, under which two clipped updates differ by up to 2C: the effective noise
  multiplier is σ/2, with no sampling amplification (q = 1: the server knows who uploaded). ε of
  client k after ``n_k`` uploads = Opacus ``RDPAccountant`` with ``n_k`` steps of ``(σ/2, 1)``.

The ledger (:class:`PrivacyLedger`) is plain data (JSON-able, checkpointable); ε is computed on
demand. Opacus is imported lazily (its import costs seconds) so importing fedpia stays cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from fedpia.privacy.config import DPConfig

ACCOUNTANT = "opacus-rdp"


def rdp_epsilon(*, noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """ε of ``steps`` compositions of the Sampled Gaussian Mechanism ``(noise_multiplier,
    sample_rate)`` at ``delta``, from Opacus's ``RDPAccountant`` (default orders). 0 steps → 0;
    σ = 0 → ∞."""
    if steps < 0 or not 0.0 < sample_rate <= 1.0:
        raise ValueError(f"need steps >= 0 and sample_rate in (0, 1], got {steps}, {sample_rate}")
    if steps == 0:
        return 0.0
    if noise_multiplier <= 0:
        return math.inf
    from opacus.accountants import RDPAccountant

    acc = RDPAccountant()
    for _ in range(steps):
        acc.step(noise_multiplier=noise_multiplier, sample_rate=sample_rate)
    return float(acc.get_epsilon(delta=delta))


def central_epsilon(dp: DPConfig, *, rounds: int, sample_rate: float) -> float:
    """User-level ε after ``rounds`` central-DP rounds at client sampling rate ``sample_rate``."""
    return rdp_epsilon(noise_multiplier=dp.noise_multiplier, sample_rate=sample_rate,
                       steps=rounds, delta=dp.delta)


def local_epsilon(dp: DPConfig, *, participations: int) -> float:
    """ε of one client's data after ``participations`` local-DP uploads (σ/2, q = 1)."""
    return rdp_epsilon(noise_multiplier=dp.noise_multiplier / 2.0, sample_rate=1.0,
                       steps=participations, delta=dp.delta)


def resolve_noise_multiplier(dp: DPConfig, *, rounds: int, sample_rate: float) -> DPConfig:
    """``dp`` with σ calibrated (Opacus ``get_noise_multiplier``, RDP, tolerance 0.01) so that
    ``target_epsilon`` is met after ``rounds`` rounds; unchanged when no target is set. Local
    mode calibrates for a client that uploads in every round (q = 1, σ/2 accounted)."""
    if dp.target_epsilon is None or not dp.enabled:
        return dp
    from opacus.accountants.utils import get_noise_multiplier

    q = sample_rate if dp.mode == "central" else 1.0
    sigma = get_noise_multiplier(target_epsilon=dp.target_epsilon, target_delta=dp.delta,
                                 sample_rate=q, steps=rounds, accountant="rdp")
    if dp.mode == "local":
        sigma *= 2.0
    return replace(dp, noise_multiplier=float(sigma), target_epsilon=None)


@dataclass
class PrivacyLedger:
    """What the accountant needs, as plain data: rounds with a release, uploads per client.

    ``sample_rate``: clients per round / clients (central mode). ``noise``: where the noise
    randomness came from (reported as is: seeded noise gives no real privacy). Call
    :meth:`record_round` once per round whose aggregate (central) or uploads (local) were
    released. :meth:`state` / :meth:`from_state` round-trip it through JSON (checkpoints).
    """

    dp: DPConfig
    sample_rate: float = 1.0
    rounds: int = 0
    participations: dict[str, int] = field(default_factory=dict)
    noise: str = ""

    def record_round(self, uploaded: list[str]) -> None:
        """One round: ``uploaded`` = clients whose (noised) update left the client."""
        self.rounds += 1
        for name in uploaded:
            self.participations[name] = self.participations.get(name, 0) + 1

    def copy(self) -> PrivacyLedger:
        return replace(self, participations=dict(self.participations))

    def state(self) -> dict[str, Any]:
        """The counts as JSON-able data (the DP config is the run's, not stored here)."""
        return {"sample_rate": self.sample_rate, "rounds": self.rounds,
                "participations": dict(self.participations), "noise": self.noise}

    @classmethod
    def from_state(cls, dp: DPConfig, raw: dict[str, Any]) -> PrivacyLedger:
        """The ledger of :meth:`state` under ``dp`` (ValueError for a malformed ``raw``)."""
        try:
            return cls(dp, sample_rate=float(raw["sample_rate"]), rounds=int(raw["rounds"]),
                       participations={str(k): int(v) for k, v in raw["participations"].items()},
                       noise=str(raw.get("noise", "")))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"malformed privacy ledger state {raw!r}: {exc}") from exc

    def report(self) -> dict[str, Any]:
        """``{"mode", "delta", "noise_multiplier", "clip", "accountant", "epsilon", ...}`` for
        results.json: central → one user-level ε; local → ε per client and their maximum."""
        dp = self.dp
        out: dict[str, Any] = {"mode": dp.mode, "clip": dp.clip, "delta": dp.delta,
                               "noise_multiplier": dp.noise_multiplier, "accountant": ACCOUNTANT,
                               "rounds": self.rounds, "noise": self.noise}
        if dp.mode == "central":
            out["sample_rate"] = self.sample_rate
            out["epsilon"] = central_epsilon(dp, rounds=self.rounds, sample_rate=self.sample_rate)
        elif dp.mode == "local":
            per = {k: local_epsilon(dp, participations=n)
                   for k, n in sorted(self.participations.items())}
            out["epsilon_per_client"] = per
            out["epsilon"] = max(per.values(), default=0.0)
        return out
