"""Tiny adapter states and their forward functions, written out in the tests (no torch.nn)."""

from __future__ import annotations

import torch


def bottleneck_state(gen, *, layers=2, d=12, m=6, dtype=torch.float64):
    """Houlsby-style adapters ``<p>.down/up`` plus a head that belongs to no group."""
    s = {}
    for i in range(layers):
        p = f"enc.layer.{i}.adapter"
        s[f"{p}.down.weight"] = torch.randn(m, d, generator=gen, dtype=dtype)
        s[f"{p}.down.bias"] = torch.randn(m, generator=gen, dtype=dtype)
        s[f"{p}.up.weight"] = torch.randn(d, m, generator=gen, dtype=dtype)
        s[f"{p}.up.bias"] = torch.randn(d, generator=gen, dtype=dtype)
    s["head.weight"] = torch.randn(3, d, generator=gen, dtype=dtype)
    return s


def lora_state(gen, *, layers=2, d_in=10, d_out=9, r=5, adapter="default", dtype=torch.float64):
    """peft LoRA pairs ``<p>.lora_A[.<adapter>].weight`` / ``lora_B``."""
    seg = f".{adapter}" if adapter else ""
    s = {}
    for i in range(layers):
        p = f"enc.layer.{i}.attn.query"
        s[f"{p}.lora_A{seg}.weight"] = torch.randn(r, d_in, generator=gen, dtype=dtype)
        s[f"{p}.lora_B{seg}.weight"] = torch.randn(d_out, r, generator=gen, dtype=dtype)
    return s


def compacter_state(gen, *, layers=2, n=2, d=8, m=6, dtype=torch.float64):
    """Compacter (PHM) adapters: ``phm_w`` factors, a repeat-n down bias, shared ``phm_rule``."""
    s = {}
    for i in range(layers):
        p = f"enc.layer.{i}.adapter"
        s[f"{p}.down.phm_w"] = torch.randn(n, m // n, d // n, generator=gen, dtype=dtype)
        s[f"{p}.down.bias"] = torch.randn(m, generator=gen, dtype=dtype)
        s[f"{p}.up.phm_w"] = torch.randn(n, d // n, m // n, generator=gen, dtype=dtype)
        s[f"{p}.up.bias"] = torch.randn(d, generator=gen, dtype=dtype)
        s[f"{p}.down.phm_rule"] = torch.randn(n, n, n, generator=gen, dtype=dtype)
        s[f"{p}.up.phm_rule"] = torch.randn(n, n, n, generator=gen, dtype=dtype)
    return s


def bottleneck_forward(s, h, prefix):
    """``h + up(relu(down(h)))`` with ``h: [B, d]``."""
    z = torch.relu(h @ s[f"{prefix}.down.weight"].T + s[f"{prefix}.down.bias"])
    return h + z @ s[f"{prefix}.up.weight"].T + s[f"{prefix}.up.bias"]


def bottleneck_acts(s, h, prefix):
    """Unit activations ``[B, m]`` of one bottleneck adapter."""
    return torch.relu(h @ s[f"{prefix}.down.weight"].T + s[f"{prefix}.down.bias"])


def lora_forward(s, x, w0, prefix, adapter="default"):
    """``x @ (W0 + B A)ᵀ``."""
    seg = f".{adapter}" if adapter else ""
    return x @ (w0 + s[f"{prefix}.lora_B{seg}.weight"] @ s[f"{prefix}.lora_A{seg}.weight"]).T


def phm_matrix(rule, phm_w):
    """``W = Σ_i A_i ⊗ B_i``."""
    return sum(torch.kron(rule[i], phm_w[i]) for i in range(rule.shape[0]))


def compacter_forward(s, h, prefix):
    w_down = phm_matrix(s[f"{prefix}.down.phm_rule"], s[f"{prefix}.down.phm_w"])
    w_up = phm_matrix(s[f"{prefix}.up.phm_rule"], s[f"{prefix}.up.phm_w"])
    z = torch.relu(h @ w_down.T + s[f"{prefix}.down.bias"])
    return h + z @ w_up.T + s[f"{prefix}.up.bias"]


def random_perms(state, gen):
    """A random permutation (not the identity) for every unit group of ``state``."""
    from fedpia.align import unit_groups

    perms = {}
    for g in unit_groups(state):
        p = torch.randperm(g.width, generator=gen)
        while torch.equal(p, torch.arange(g.width)):
            p = torch.randperm(g.width, generator=gen)
        perms[g.name] = p
    return perms


def noisy(state, gen, scale):
    return {k: v + scale * torch.randn(v.shape, generator=gen, dtype=v.dtype)
            for k, v in state.items()}


FACTORIES = {
    "bottleneck": bottleneck_state,
    "lora": lora_state,
    "lora_noname": lambda gen, **kw: lora_state(gen, adapter=None, **kw),
    "compacter": compacter_state,
}
