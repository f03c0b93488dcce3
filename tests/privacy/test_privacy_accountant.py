"""ε from Opacus's RDP accountant: equal to Opacus' own analysis, the q = 1 closed form,
monotone in rounds / σ, calibration to a target ε, and the ledger of both modes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from opacus.accountants import RDPAccountant
from opacus.accountants.analysis import rdp as opacus_rdp

from fedpia.privacy import (
    DPConfig,
    PrivacyLedger,
    central_epsilon,
    local_epsilon,
    rdp_epsilon,
    resolve_noise_multiplier,
)

ORDERS = RDPAccountant.DEFAULT_ALPHAS


def test_central_epsilon_equals_opacus_analysis():
    dp = DPConfig(mode="central", noise_multiplier=1.1, delta=1e-5)
    rdp = opacus_rdp.compute_rdp(q=0.1, noise_multiplier=1.1, steps=30, orders=ORDERS)
    eps, _ = opacus_rdp.get_privacy_spent(orders=ORDERS, rdp=rdp, delta=1e-5)
    assert central_epsilon(dp, rounds=30, sample_rate=0.1) == pytest.approx(float(eps), rel=1e-9)


def test_local_epsilon_is_gaussian_closed_form_with_sensitivity_2c():
    # q = 1: RDP of the Gaussian mechanism at order α is α Δ²/(2 s²) per release; local DP has
    # Δ = 2C and s = σC, so n releases give n α / (2 (σ/2)²); ε = min_α of Balle et al.'s
    # conversion rdp − (log δ + log α)/(α − 1) + log((α − 1)/α).
    sigma, n, delta = 4.0, 5, 1e-5
    a = np.asarray(ORDERS, dtype=float)
    rdp = n * a / (2 * (sigma / 2) ** 2)
    expected = float(np.min(rdp - (np.log(delta) + np.log(a)) / (a - 1) + np.log((a - 1) / a)))
    got = local_epsilon(DPConfig(mode="local", noise_multiplier=sigma, delta=delta),
                        participations=n)
    assert got == pytest.approx(expected, rel=1e-9)


def test_epsilon_grows_with_rounds_and_falls_with_noise():
    eps_r = [central_epsilon(DPConfig(mode="central", noise_multiplier=1.0), rounds=r,
                             sample_rate=0.5) for r in (1, 5, 30)]
    assert eps_r[0] < eps_r[1] < eps_r[2]
    eps_s = [central_epsilon(DPConfig(mode="central", noise_multiplier=s), rounds=10,
                             sample_rate=0.5) for s in (0.8, 1.5, 3.0)]
    assert eps_s[0] > eps_s[1] > eps_s[2]
    # subsampling amplifies privacy: fewer clients per round, smaller ε
    assert central_epsilon(DPConfig(mode="central", noise_multiplier=1.0), rounds=10,
                           sample_rate=0.2) < eps_s[0]


def test_edge_cases_zero_steps_zero_noise_and_bad_rate():
    assert rdp_epsilon(noise_multiplier=1.0, sample_rate=1.0, steps=0, delta=1e-5) == 0.0
    assert math.isinf(rdp_epsilon(noise_multiplier=0.0, sample_rate=1.0, steps=1, delta=1e-5))
    with pytest.raises(ValueError, match="sample_rate"):
        rdp_epsilon(noise_multiplier=1.0, sample_rate=0.0, steps=1, delta=1e-5)


@pytest.mark.parametrize("mode, q", [("central", 0.5), ("local", 1.0)])
def test_resolve_noise_multiplier_meets_target(mode, q):
    dp = resolve_noise_multiplier(DPConfig(mode=mode, target_epsilon=8.0), rounds=10,
                                  sample_rate=q)
    assert dp.target_epsilon is None and dp.noise_multiplier > 0
    eps = (central_epsilon(dp, rounds=10, sample_rate=q) if mode == "central"
           else local_epsilon(dp, participations=10))
    assert 8.0 - 0.05 <= eps <= 8.0  # Opacus' binary search stops within 0.01 below target


def test_ledger_reports_per_mode():
    local = PrivacyLedger(DPConfig(mode="local", noise_multiplier=8.0))
    local.record_round(["a", "b"])
    local.record_round(["a"])
    rep = local.report()
    assert rep["epsilon_per_client"]["a"] > rep["epsilon_per_client"]["b"]
    assert rep["epsilon"] == rep["epsilon_per_client"]["a"]
    assert rep["accountant"] == "opacus-rdp" and rep["delta"] == 1e-5
    central = PrivacyLedger(DPConfig(mode="central", noise_multiplier=1.0), sample_rate=0.5)
    for _ in range(3):
        central.record_round(["a"])
    assert central.report()["epsilon"] == pytest.approx(
        central_epsilon(central.dp, rounds=3, sample_rate=0.5))
    assert "epsilon" not in PrivacyLedger(DPConfig()).report()
