"""Client-level Gaussian mechanism on named state dicts: clipping, noise, local and central DP.

An *update* is ``Δ = θ − θ_ref`` over every uploaded tensor (``θ`` the client's uploaded state,
``θ_ref`` the global state it received), taken as ONE vector: ``‖Δ‖ = sqrt(Σ_key ‖Δ_key‖²)``.

- clip:     ``clip_C(Δ) = Δ · min(1, C / ‖Δ‖)``  (``‖clip_C(Δ)‖ = min(‖Δ‖, C)``)
- local:    ``θ̃ = θ_ref + clip_C(θ − θ_ref) + N(0, (σC)² I)``             (on the client)
- central:  ``θ_G' = θ_G + (1/m) Σ_k clip_C(θ_k − θ_G) + N(0, (σC/m)² I)``   (on the server)

with ``m`` the EXPECTED number of clients per round (a fixed denominator, so one client changes
the sum by at most C whatever the others do; McMahan et al. 2018, arXiv:1710.06963). Central
aggregation weighs clients uniformly (example counts are ignored: weights proportional to data
size would break the sensitivity bound).

Noise comes from an explicit ``torch.Generator`` (:func:`noise_generator`), seeded from
``(seed, round, client)`` and an optional ``secret``: without a secret the noise is reproducible
by anyone who knows the run seed, which is right for tests and simulations but gives NO privacy
against such a party; a deployed client must pass a secret only it knows (docs/security.md).
Keys are visited in sorted order so the draw does not depend on dict order.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from fedpia.privacy.config import DPConfig

State = dict[str, torch.Tensor]


def update_delta(state: Mapping[str, torch.Tensor], ref: Mapping[str, torch.Tensor]) -> State:
    """``Δ = state − ref`` per key. ValueError for different key sets, shapes or dtypes, or a
    non-floating tensor (DP noise is defined on real-valued tensors only)."""
    if set(state) != set(ref):
        extra, missing = sorted(set(state) - set(ref)), sorted(set(ref) - set(state))
        raise ValueError(f"update and reference differ in keys: extra {extra}, missing {missing}")
    out: State = {}
    for key in sorted(state):
        a, b = state[key], ref[key]
        if a.shape != b.shape or a.dtype != b.dtype:
            raise ValueError(f"{key}: update {tuple(a.shape)}/{a.dtype} vs reference "
                             f"{tuple(b.shape)}/{b.dtype}")
        if not a.is_floating_point():
            raise ValueError(f"{key}: DP needs floating-point tensors, got {a.dtype}")
        out[key] = a.detach() - b.detach()
    return out


def global_norm(delta: Mapping[str, torch.Tensor]) -> float:
    """``sqrt(Σ_key ‖Δ_key‖²)`` computed in float64 (one vector over all keys)."""
    sq = sum(float(t.double().pow(2).sum()) for t in delta.values())
    return math.sqrt(sq)


def clip_update(delta: Mapping[str, torch.Tensor], clip: float) -> tuple[State, float]:
    """``(clip_C(Δ), ‖Δ‖)``: every key scaled by the same ``min(1, C/‖Δ‖)``. A non-finite
    norm (NaN/Inf in Δ) raises ValueError: it cannot be bounded."""
    if not clip > 0:
        raise ValueError(f"clip must be > 0, got {clip}")
    norm = global_norm(delta)
    if not math.isfinite(norm):
        raise ValueError("update has NaN/Inf values: its norm cannot be clipped")
    scale = min(1.0, clip / norm) if norm > 0 else 1.0
    return {k: v * scale for k, v in delta.items()}, norm


def noise_generator(seed: int, round_: int, client: str, *, secret: bytes | str | None = None
                    ) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from ``(seed, round, client[, secret])`` through NumPy's
    SeedSequence (different clients / rounds get independent streams; same inputs, same noise)."""
    words = [int(seed), int(round_), *_hash_words(client)]
    if secret is not None:
        words += _hash_words(secret)
    s = int(np.random.SeedSequence(words).generate_state(2, np.uint64)[0] >> 1)
    return torch.Generator().manual_seed(s)


def _hash_words(x: bytes | str) -> list[int]:
    raw = x.encode() if isinstance(x, str) else bytes(x)
    digest = hashlib.sha256(raw).digest()
    return [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]


def add_gaussian_noise(state: Mapping[str, torch.Tensor], std: float,
                       generator: torch.Generator) -> State:
    """``state + N(0, std² I)`` per key (keys in sorted order; noise drawn in at least float32,
    added, then cast back to the key's dtype). ``std = 0`` returns copies."""
    if not (math.isfinite(std) and std >= 0):
        raise ValueError(f"noise std must be finite and >= 0, got {std}")
    out: State = {}
    for key in sorted(state):
        t = state[key]
        if std == 0:
            out[key] = t.clone()
            continue
        dtype = torch.promote_types(t.dtype, torch.float32)
        noise = torch.randn(t.shape, generator=generator, dtype=dtype) * std
        out[key] = (t.to(dtype) + noise).to(t.dtype)
    return out


def privatize_update(state: Mapping[str, torch.Tensor], received: Mapping[str, torch.Tensor], *,
                     dp: DPConfig, generator: torch.Generator) -> tuple[State, dict[str, Any]]:
    """Local DP on the client: ``received + clip_C(state − received) + N(0, (σC)² I)``.

    Returns the state to upload and ``{"norm", "clipped", "noise_std"}`` (client-side
    diagnostics: the pre-clip norm is NOT private; do not upload it)."""
    if dp.mode != "local":
        raise ValueError(f"privatize_update is the local-DP step; dp.mode is {dp.mode!r}")
    clipped, norm = clip_update(update_delta(state, received), dp.clip)
    std = dp.noise_multiplier * dp.clip
    noisy = add_gaussian_noise(clipped, std, generator)
    out = {k: (received[k].detach() + noisy[k]).to(received[k].dtype) for k in sorted(received)}
    return out, {"norm": norm, "clipped": norm > dp.clip, "noise_std": std}


def central_aggregate(global_: Mapping[str, torch.Tensor],
                      states: Sequence[Mapping[str, torch.Tensor]], *, dp: DPConfig,
                      expected_clients: float, generator: torch.Generator
                      ) -> tuple[State, dict[str, Any]]:
    """Central DP on the server: ``θ_G + (1/m) Σ_k clip_C(θ_k − θ_G) + N(0, (σC/m)² I)``.

    ``m = expected_clients`` (> 0, e.g. ``fraction_fit · N``) is a fixed denominator: with fewer
    arrivals the average shrinks towards ``θ_G`` instead of the sensitivity growing. Returns the
    new global state and ``{"norms", "clipped", "noise_std", "denominator"}``; the per-client
    norms are not private (server-side diagnostics)."""
    if dp.mode != "central":
        raise ValueError(f"central_aggregate is the central-DP step; dp.mode is {dp.mode!r}")
    if not states:
        raise ValueError("central_aggregate needs at least one update")
    if not (math.isfinite(expected_clients) and expected_clients > 0):
        raise ValueError(f"expected_clients must be > 0, got {expected_clients}")
    total: State | None = None
    norms = []
    for s in states:
        clipped, norm = clip_update(update_delta(s, global_), dp.clip)
        norms.append(norm)
        total = clipped if total is None else {k: total[k] + clipped[k] for k in total}
    mean = {k: v / expected_clients for k, v in total.items()}
    std = dp.noise_multiplier * dp.clip / expected_clients
    noisy = add_gaussian_noise(mean, std, generator)
    out = {k: (global_[k].detach() + noisy[k]).to(global_[k].dtype) for k in sorted(global_)}
    info = {"norms": norms, "clipped": sum(n > dp.clip for n in norms), "noise_std": std,
            "denominator": float(expected_clients)}
    return out, info
