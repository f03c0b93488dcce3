"""Client-level differential privacy, engine-neutral (no flwr): one ``dp`` config section,
clipping + Gaussian noise on named state dicts (local on the client, central on the server),
the strategy policy, and accounting with Opacus's RDP accountant. See docs/security.md."""

from fedpia.privacy.accountant import (
    PrivacyLedger,
    central_epsilon,
    local_epsilon,
    rdp_epsilon,
    resolve_noise_multiplier,
)
from fedpia.privacy.config import DP_MODES, DPConfig
from fedpia.privacy.mechanism import (
    add_gaussian_noise,
    central_aggregate,
    clip_update,
    global_norm,
    noise_generator,
    privatize_update,
    update_delta,
)
from fedpia.privacy.policy import (
    central_dp_aggregate,
    central_dp_supported,
    check_dp_strategy,
    privatize_client_update,
)

__all__ = [
    "DP_MODES",
    "DPConfig",
    "PrivacyLedger",
    "add_gaussian_noise",
    "central_aggregate",
    "central_dp_aggregate",
    "central_dp_supported",
    "central_epsilon",
    "check_dp_strategy",
    "clip_update",
    "global_norm",
    "local_epsilon",
    "noise_generator",
    "privatize_client_update",
    "privatize_update",
    "rdp_epsilon",
    "resolve_noise_multiplier",
    "update_delta",
]
