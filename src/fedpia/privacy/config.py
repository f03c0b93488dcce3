"""The one ``dp`` config section: client-level differential privacy knobs, validated once.

Pure (no flwr, no torch): the same dataclass is read from TOML / ``--set dp.*`` / a Flower run
config through :func:`fedpia.typecheck.build_dataclass` and passed to both engines.

Modes (see docs/security.md for the guarantee each gives):

- ``off``: nothing is clipped or noised; no ε is reported.
- ``local``: each client clips its own update ``Δ = θ_client − θ_received`` to L2 norm ``clip``
  (over all uploaded tensors together) and adds ``N(0, (noise_multiplier·clip)²)`` to every
  coordinate before upload. Works for every strategy that uploads only its adapter state
  (FedPIA included). Protects against everyone downstream of the client, the server included.
- ``central``: the server clips every update to ``clip``, averages with the fixed denominator
  ``m`` (expected clients per round) and adds ``N(0, (noise_multiplier·clip/m)²)`` to the
  average. Only for strategies whose aggregate is a mean of the updates (FedAvg-style);
  FedPIA is refused. The server is trusted; what it releases (the global adapter) is private.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fedpia.typecheck import build_dataclass

DP_MODES = ("off", "local", "central")


@dataclass(frozen=True)
class DPConfig:
    """Client-level DP knobs.

    ``clip`` C > 0: L2 bound of one client's update over all shared tensors.
    ``noise_multiplier`` σ ≥ 0: noise std is σ·C (local, per client) or σ·C/m (central, on the
    average of m expected clients). σ = 0 is allowed only to study clipping alone (ε = ∞).
    ``delta`` δ in (0, 1): the δ of the reported (ε, δ) guarantee (rule of thumb: < 1/#records).
    ``target_epsilon``: optional; when set, σ is calibrated by the accountant for the planned
    rounds and sampling rate (:func:`fedpia.privacy.resolve_noise_multiplier`), and
    ``noise_multiplier`` must be left at 0.
    """

    mode: str = "off"
    clip: float = 1.0
    noise_multiplier: float = 0.0
    delta: float = 1e-5
    target_epsilon: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in DP_MODES:
            raise ValueError(f"dp.mode must be one of {DP_MODES}, got {self.mode!r}")
        if not (math.isfinite(self.clip) and self.clip > 0):
            raise ValueError(f"dp.clip must be a finite number > 0, got {self.clip}")
        if not (math.isfinite(self.noise_multiplier) and self.noise_multiplier >= 0):
            raise ValueError(f"dp.noise_multiplier must be finite and >= 0, got "
                             f"{self.noise_multiplier}")
        if not 0.0 < self.delta < 1.0:
            raise ValueError(f"dp.delta must be in (0, 1), got {self.delta}")
        if self.target_epsilon is not None:
            if not (math.isfinite(self.target_epsilon) and self.target_epsilon > 0):
                raise ValueError(f"dp.target_epsilon must be a finite number > 0, got "
                                 f"{self.target_epsilon}")
            if self.noise_multiplier != 0.0:
                raise ValueError("dp.target_epsilon and dp.noise_multiplier are exclusive: set "
                                 "one (σ is calibrated from target_epsilon)")

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    @classmethod
    def from_mapping(cls, raw: dict[str, Any] | None) -> DPConfig:
        """A DPConfig from a TOML table / run-config mapping (None or {} = DP off); unknown keys
        and wrong types raise ValueError naming ``dp.<field>``."""
        return cls() if not raw else build_dataclass(cls, dict(raw), "dp")
