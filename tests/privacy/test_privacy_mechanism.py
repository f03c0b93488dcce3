"""Clipping, Gaussian noise and the local / central DP steps on named state dicts: closed
forms, measured noise std, determinism per (seed, round, client), failure paths."""

from __future__ import annotations

import math

import pytest
import torch

from fedpia.privacy import (
    DPConfig,
    add_gaussian_noise,
    central_aggregate,
    clip_update,
    global_norm,
    noise_generator,
    privatize_update,
    update_delta,
)


def _state(seed: int, scale: float = 1.0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"a.down.weight": torch.randn(8, 16, generator=g) * scale,
            "a.down.bias": torch.randn(8, generator=g) * scale,
            "a.up.weight": torch.randn(16, 8, generator=g) * scale}


def test_global_norm_is_one_vector_over_all_keys():
    delta = {"x": torch.tensor([3.0, 0.0]), "y": torch.tensor([[0.0, 4.0]])}
    assert global_norm(delta) == pytest.approx(5.0, abs=1e-12)


def test_clip_above_bound_has_norm_c_and_keeps_direction():
    delta = {"x": torch.tensor([3.0, 0.0]), "y": torch.tensor([[0.0, 4.0]])}
    clipped, norm = clip_update(delta, 2.5)
    assert norm == pytest.approx(5.0)
    assert global_norm(clipped) == pytest.approx(2.5, rel=1e-6)
    assert torch.allclose(clipped["x"], torch.tensor([1.5, 0.0]))  # every key scaled by C/‖Δ‖
    assert torch.allclose(clipped["y"], torch.tensor([[0.0, 2.0]]))


def test_clip_below_bound_is_unchanged():
    delta = _state(0, scale=0.01)
    assert global_norm(delta) < 1.0
    clipped, _ = clip_update(delta, 1.0)
    assert all(torch.equal(clipped[k], delta[k]) for k in delta)


def test_clip_rejects_nan_and_nonpositive_bound():
    with pytest.raises(ValueError, match="NaN/Inf"):
        clip_update({"x": torch.tensor([float("nan"), 1.0])}, 1.0)
    with pytest.raises(ValueError, match="clip must be > 0"):
        clip_update({"x": torch.ones(2)}, 0.0)


def test_update_delta_checks_keys_shapes_dtypes():
    ref = {"w": torch.zeros(2), "b": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"extra \['z'\], missing \['b'\]"):
        update_delta({"w": torch.ones(2), "z": torch.ones(1)}, ref)
    with pytest.raises(ValueError, match="w: update"):
        update_delta({"w": torch.ones(3), "b": torch.ones(1)}, ref)
    with pytest.raises(ValueError, match="floating-point"):
        update_delta({"i": torch.ones(2, dtype=torch.int64)}, {"i": torch.zeros(2, dtype=torch.int64)})


def test_noise_std_measured_is_sigma_c():
    sigma, clip = 1.3, 0.7
    zeros = {"w": torch.zeros(400, 500)}
    noisy = add_gaussian_noise(zeros, sigma * clip, noise_generator(0, 1, "client-0"))["w"]
    n = noisy.numel()
    # std of a sample std of n normals ≈ σ/sqrt(2n) = 0.0011σ: 1% is > 9 standard errors
    assert float(noisy.std()) == pytest.approx(sigma * clip, rel=0.01)
    assert abs(float(noisy.mean())) < 5 * sigma * clip / math.sqrt(n)


def test_noise_is_deterministic_per_seed_round_client_and_secret():
    z = {"w": torch.zeros(64), "b": torch.zeros(3)}

    def draw(*args, **kw):
        return add_gaussian_noise(z, 1.0, noise_generator(*args, **kw))

    ref = draw(7, 2, "hospital-a")
    again = draw(7, 2, "hospital-a")
    assert all(torch.equal(ref[k], again[k]) for k in z)
    for other in (draw(8, 2, "hospital-a"), draw(7, 3, "hospital-a"), draw(7, 2, "hospital-b"),
                  draw(7, 2, "hospital-a", secret=b"only-the-client-knows")):
        assert not torch.equal(ref["w"], other["w"])
    # the draw does not depend on dict order (keys visited sorted)
    rev = add_gaussian_noise({"w": z["w"], "b": z["b"]}, 1.0, noise_generator(7, 2, "hospital-a"))
    assert all(torch.equal(ref[k], rev[k]) for k in z)


def test_privatize_update_closed_form_without_noise():
    received, state = _state(0), _state(1, scale=3.0)
    dp = DPConfig(mode="local", clip=0.5, noise_multiplier=0.0)
    out, info = privatize_update(state, received, dp=dp, generator=noise_generator(0, 1, "c"))
    delta = {k: out[k] - received[k] for k in out}
    assert global_norm(delta) == pytest.approx(0.5, rel=1e-5)
    assert info["clipped"] and info["norm"] == pytest.approx(global_norm(update_delta(state, received)))
    direction = update_delta(state, received)
    for k in out:  # Δ̃ = Δ · C/‖Δ‖
        assert torch.allclose(delta[k], direction[k] * (0.5 / info["norm"]), atol=1e-6)


def test_privatize_update_noise_has_std_sigma_c():
    received = {"w": torch.zeros(300, 300)}
    state = {"w": torch.full((300, 300), 1e-4)}  # ‖Δ‖ = 0.03 < C: not clipped
    dp = DPConfig(mode="local", clip=2.0, noise_multiplier=0.8)
    out, info = privatize_update(state, received, dp=dp, generator=noise_generator(3, 1, "c"))
    assert not info["clipped"] and info["noise_std"] == pytest.approx(1.6)
    assert float((out["w"] - state["w"]).std()) == pytest.approx(1.6, rel=0.01)


def test_central_aggregate_closed_form_fixed_denominator():
    g = {"w": torch.tensor([1.0, 1.0])}
    ups = [{"w": torch.tensor([4.0, 5.0])},    # Δ = (3, 4), ‖Δ‖ = 5 -> clipped to (0.6, 0.8)
           {"w": torch.tensor([1.5, 1.0])}]    # Δ = (0.5, 0), below C = 1: unchanged
    dp = DPConfig(mode="central", clip=1.0, noise_multiplier=0.0)
    out, info = central_aggregate(g, ups, dp=dp, expected_clients=4,
                                  generator=noise_generator(0, 1, "server"))
    # θ_G + (1/m) Σ clip(Δ_k), m = 4 (not the 2 that arrived)
    assert torch.allclose(out["w"], torch.tensor([1.0 + 1.1 / 4, 1.0 + 0.8 / 4]))
    assert info["clipped"] == 1 and info["norms"] == pytest.approx([5.0, 0.5])


def test_central_aggregate_noise_std_is_sigma_c_over_m():
    g = {"w": torch.zeros(250, 400)}
    ups = [{"w": torch.zeros(250, 400)} for _ in range(3)]
    dp = DPConfig(mode="central", clip=1.5, noise_multiplier=2.0)
    out, info = central_aggregate(g, ups, dp=dp, expected_clients=5,
                                  generator=noise_generator(1, 1, "server"))
    assert info["noise_std"] == pytest.approx(0.6)
    assert float(out["w"].std()) == pytest.approx(0.6, rel=0.01)


def test_steps_refuse_the_wrong_mode_and_bad_denominator():
    s = {"w": torch.zeros(2)}
    gen = noise_generator(0, 1, "c")
    with pytest.raises(ValueError, match="local-DP step"):
        privatize_update(s, s, dp=DPConfig(mode="central"), generator=gen)
    with pytest.raises(ValueError, match="central-DP step"):
        central_aggregate(s, [s], dp=DPConfig(mode="local"), expected_clients=1, generator=gen)
    with pytest.raises(ValueError, match="expected_clients"):
        central_aggregate(s, [s], dp=DPConfig(mode="central"), expected_clients=0, generator=gen)
    with pytest.raises(ValueError, match="at least one update"):
        central_aggregate(s, [], dp=DPConfig(mode="central"), expected_clients=1, generator=gen)


def test_low_precision_state_keeps_its_dtype():
    received = {"w": torch.zeros(16, dtype=torch.float16)}
    state = {"w": torch.ones(16, dtype=torch.float16)}
    out, _ = privatize_update(state, received, dp=DPConfig(mode="local", noise_multiplier=0.5),
                              generator=noise_generator(0, 1, "c"))
    assert out["w"].dtype == torch.float16
