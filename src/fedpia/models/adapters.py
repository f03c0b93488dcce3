"""In-house bottleneck adapters (Houlsby, Parallel) and Compacter (PHM bottleneck).

Naming contract (docs/architecture.md): an adapter module has ``down`` and ``up`` children, so
its state keys are ``<prefix>.down.weight|bias`` and ``<prefix>.up.weight|bias`` (Linear) or
``<prefix>.down.phm_w|bias`` and ``<prefix>.up.phm_w|bias`` (PHM).

Bottleneck (Houlsby et al. 2019, arXiv:1902.00751; He et al. 2022 parallel, arXiv:2110.04366):
    a(x) = W_u σ(W_d x + b_d) + b_u,   W_d: m x d, W_u: d x m, σ = GELU.
Houlsby placement: y -> y + a(y) after every attention-output and FFN-output Linear.
Parallel placement: FFN(x) -> FFN(x) + a(x), x the FFN input.

Compacter (Karimi Mahabadi et al. 2021, arXiv:2106.04647): each projection is a PHM layer
    W = Σ_{i<n} A_i ⊗ B_i,   A = phm_rule (n, n, n) shared by all layers, B = phm_w (n, out/n, in/n)
so W has shape (out, in) and row a*(out/n)+b of W is built from rows b of the B_i. A hidden unit
of the down projection is the index b in [0, m/n): alignment permutes b inside every Kronecker
block identically (width m/n, repeat n), which leaves the Kronecker structure intact.

Up projections start near zero (N(0, 1e-3)), so the adapted model starts ≈ the backbone.
A *frozen companion* (FedPIA's parallel client integration) is a second, frozen dense adapter
kept in non-persistent buffers whose output is added: a(x) + a_c(x).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

UP_INIT_STD = 1e-3
DOWN_INIT_STD = 0.02


def _normal_(t: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    with torch.no_grad():
        return t.copy_(torch.randn(t.shape, generator=generator) * std)


class _CompanionMixin(nn.Module):
    """Optional frozen dense adapter a_c(x) = W_u' σ(W_d' x + b_d') + b_u' in buffers."""

    def set_companion(self, dense: dict[str, torch.Tensor] | None) -> None:
        """``dense`` keys: down_weight (m', d), down_bias (m'), up_weight (d, m'), up_bias (d)."""
        for k in ("down_weight", "down_bias", "up_weight", "up_bias"):
            val = None if dense is None else dense[k].detach().clone()
            self.register_buffer(f"companion_{k}", val, persistent=False)

    def companion(self, x: torch.Tensor) -> torch.Tensor | None:
        if getattr(self, "companion_down_weight", None) is None:
            return None
        h = F.gelu(F.linear(x, self.companion_down_weight, self.companion_down_bias))
        return F.linear(h, self.companion_up_weight, self.companion_up_bias)

    def _add_companion(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        c = self.companion(x)
        return y if c is None else y + c


class BottleneckAdapter(_CompanionMixin):
    """a(x) = up(GELU(down(x))); down: Linear(d, m), up: Linear(m, d). Shapes [..., d] -> [..., d]."""

    def __init__(self, d: int, m: int, *, generator: torch.Generator) -> None:
        super().__init__()
        self.down = nn.Linear(d, m)
        self.up = nn.Linear(m, d)
        _normal_(self.down.weight, DOWN_INIT_STD, generator)
        _normal_(self.up.weight, UP_INIT_STD, generator)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.bias)
        self.set_companion(None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._add_companion(x, self.up(F.gelu(self.down(x))))

    def dense(self) -> dict[str, torch.Tensor]:
        """The adapter as plain matrices (for companions)."""
        return {
            "down_weight": self.down.weight, "down_bias": self.down.bias,
            "up_weight": self.up.weight, "up_bias": self.up.bias,
        }


class PHMRules(nn.Module):
    """Shared Kronecker rules A (n, n, n) for all down (``down.phm_rule``) / up projections."""

    def __init__(self, n: int, *, generator: torch.Generator) -> None:
        super().__init__()
        self.down = nn.Module()
        self.up = nn.Module()
        for mod in (self.down, self.up):
            mod.phm_rule = nn.Parameter(torch.randn(n, n, n, generator=generator) / math.sqrt(n))


class PHMLinear(nn.Module):
    """y = x W^T + b with W = Σ_i rule[i] ⊗ phm_w[i]; phm_w: (n, out/n, in/n), bias: (out,)."""

    def __init__(self, d_in: int, d_out: int, n: int, *, rule_owner: nn.Module) -> None:
        super().__init__()
        if d_in % n or d_out % n:
            raise ValueError(f"PHM dimension n={n} must divide in={d_in} and out={d_out}")
        self.n = n
        self.phm_w = nn.Parameter(torch.zeros(n, d_out // n, d_in // n))
        self.bias = nn.Parameter(torch.zeros(d_out))
        self._rule_owner = [rule_owner]  # a list: shared rule is NOT registered here

    @property
    def in_features(self) -> int:
        return self.n * self.phm_w.shape[2]

    @property
    def out_features(self) -> int:
        return self.n * self.phm_w.shape[1]

    def weight(self) -> torch.Tensor:
        """W (out, in) = Σ_i kron(A_i, B_i)."""
        rule = self._rule_owner[0].phm_rule
        return torch.einsum("iac,ibe->abce", rule, self.phm_w).reshape(
            self.out_features, self.in_features
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight(), self.bias)


class CompacterAdapter(_CompanionMixin):
    """Bottleneck with PHM projections: a(x) = up(GELU(down(x))), hidden width m = n * w."""

    def __init__(
        self, d: int, m: int, n: int, *, rules: PHMRules, generator: torch.Generator
    ) -> None:
        super().__init__()
        self.down = PHMLinear(d, m, n, rule_owner=rules.down)
        self.up = PHMLinear(m, d, n, rule_owner=rules.up)
        _normal_(self.down.phm_w, DOWN_INIT_STD, generator)
        _normal_(self.up.phm_w, UP_INIT_STD, generator)
        self.set_companion(None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._add_companion(x, self.up(F.gelu(self.down(x))))

    def dense(self) -> dict[str, torch.Tensor]:
        return {
            "down_weight": self.down.weight(), "down_bias": self.down.bias,
            "up_weight": self.up.weight(), "up_bias": self.up.bias,
        }


def _houlsby_hook(module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
    return output + module.adapter(output)


def _stash_hook(target: nn.Module, module: nn.Module, inputs) -> None:
    target.adapter._ffn_input = inputs[0]


def _parallel_hook(module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
    x = module.adapter.__dict__.pop("_ffn_input", None)
    if x is None:
        raise RuntimeError("parallel adapter: FFN input was not captured before the FFN output")
    return output + module.adapter(x)


def insert_adapters(backbone, *, placement: str, make) -> list[str]:
    """Attach adapters (child ``adapter`` of the site Linear + forward hooks) in place.

    Args:
        backbone: a :class:`fedpia.models.backbones.Backbone`.
        placement: "houlsby" (after attention-output and FFN-output Linears, y + a(y)) or
            "parallel" (a(x) of the FFN input x added to the FFN output).
        make: ``make(d) -> adapter module`` for residual width d.
    Returns: module names (relative to ``backbone.hf``) of the adapters created.
    """
    import functools

    names = []
    for lname, layer, fam in backbone.layers():
        if placement == "houlsby":
            for site in (*fam.attn_out, fam.ffn_out):
                lin = layer.get_submodule(site)
                lin.add_module("adapter", make(lin.out_features))
                lin.register_forward_hook(_houlsby_hook)
                names.append(f"{lname}.{site}.adapter")
        elif placement == "parallel":
            lin = layer.get_submodule(fam.ffn_out)
            lin.add_module("adapter", make(lin.out_features))
            layer.get_submodule(fam.ffn_in).register_forward_pre_hook(
                functools.partial(_stash_hook, lin)
            )
            lin.register_forward_hook(_parallel_hook)
            names.append(f"{lname}.{fam.ffn_out}.adapter")
        else:
            raise ValueError(f"placement={placement!r} not in ('houlsby', 'parallel')")
    return names
