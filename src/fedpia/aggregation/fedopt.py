r"""FedOpt server optimizers (Reddi et al. 2021, "Adaptive Federated Optimization",
https://arxiv.org/abs/2003.00295) and FedAvgM (Hsu et al. 2019, https://arxiv.org/abs/1909.06335).

The server treats the pseudo-gradient :math:`\Delta_t = \bar x_t - x_t` (weighted average of the
client models minus the current global model) as a gradient *ascent* direction:

* ``adam``:    :math:`m = \beta_1 m + (1-\beta_1)\Delta,\; v = \beta_2 v + (1-\beta_2)\Delta^2`
* ``yogi``:    :math:`m` as Adam, :math:`v = v - (1-\beta_2)\Delta^2\,\mathrm{sign}(v-\Delta^2)`
* ``adagrad``: :math:`m` as Adam, :math:`v = v + \Delta^2`

  followed by :math:`x \leftarrow x + \eta\, m / (\sqrt v + \tau)` (Reddi et al., Algorithm 2,
  no bias correction unless ``bias_correction=True``).
* ``avgm`` (server momentum): :math:`m = \beta_1 m + \Delta,\; x \leftarrow x + \eta m`
  (``v`` unused; ``lr=1, beta1=0`` is plain FedAvg).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from ._common import State, check_finite, check_same_structure

FEDOPT_KINDS = ("adam", "yogi", "adagrad", "avgm")


@dataclass(frozen=True)
class FedOptState:
    """Server optimizer state: first moment ``m``, second moment ``v`` (same keys as the model)
    and step counter ``t`` (number of completed server steps).

    Empty ``m``/``v`` (the default) mean zeros and are filled on the first step.
    """

    m: dict[str, torch.Tensor] = field(default_factory=dict)
    v: dict[str, torch.Tensor] = field(default_factory=dict)
    t: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.t, int) or self.t < 0:
            raise ValueError(f"FedOptState.t must be a non-negative int, got {self.t!r}")

    @classmethod
    def init(cls, global_: Mapping[str, torch.Tensor], *, v0: float = 0.0) -> FedOptState:
        """Zero first moment and ``v = v0`` everywhere (Reddi et al. allow ``v_{-1} >= tau^2``)."""
        if v0 < 0 or not math.isfinite(v0):
            raise ValueError(f"v0 must be finite and >= 0, got {v0}")
        m = {k: torch.zeros_like(x) for k, x in global_.items()}
        v = {k: torch.full_like(x, v0) for k, x in global_.items()}
        return cls(m=m, v=v, t=0)


def _check_knobs(kind: str, lr: float, beta1: float, beta2: float, tau: float) -> None:
    if kind not in FEDOPT_KINDS:
        raise ValueError(f"kind must be one of {FEDOPT_KINDS}, got {kind!r}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be finite and > 0, got {lr}")
    for name, b in (("beta1", beta1), ("beta2", beta2)):
        if not 0.0 <= b < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {b}")
    if not (tau > 0 and math.isfinite(tau)):
        raise ValueError(f"tau must be finite and > 0, got {tau}")


def _moment(state_dict: dict[str, torch.Tensor], ref: Mapping[str, torch.Tensor], name: str):
    if not state_dict:
        return {k: torch.zeros_like(x) for k, x in ref.items()}
    check_same_structure([ref, state_dict], names=["global_", f"state.{name}"])
    return state_dict


def fedopt_step(
    global_: Mapping[str, torch.Tensor],
    averaged: Mapping[str, torch.Tensor],
    state: FedOptState,
    *,
    kind: str = "adam",
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.99,
    tau: float = 1e-3,
    bias_correction: bool = False,
) -> tuple[State, FedOptState]:
    r"""One FedOpt server step (see module docstring for the update rules).

    Args:
        global_: current global model :math:`x_t` (dict of float tensors).
        averaged: weighted average of the client models :math:`\bar x_t`, same keys/shapes/dtypes.
        state: :class:`FedOptState` from the previous step (or ``FedOptState()``).
        kind: ``"adam" | "yogi" | "adagrad" | "avgm"``.
        lr: server learning rate :math:`\eta`; beta1, beta2 in [0, 1); tau > 0 (adaptivity).
        bias_correction: Adam-style :math:`m/(1-\beta_1^t)`, :math:`v/(1-\beta_2^t)` (adam/yogi
            only; off by default, as in Reddi et al.).

    Returns:
        ``(new_global, new_state)``; inputs are not modified.
    """
    _check_knobs(kind, lr, beta1, beta2, tau)
    check_same_structure([global_, averaged], names=["global_", "averaged"])
    check_finite(global_, name="global_")
    check_finite(averaged, name="averaged")
    m_old, v_old = _moment(state.m, global_, "m"), _moment(state.v, global_, "v")
    t = state.t + 1
    new_x, new_m, new_v = {}, {}, {}
    for key, x in global_.items():
        delta = averaged[key] - x
        if kind == "avgm":
            m = beta1 * m_old[key] + delta
            v = v_old[key].clone()
            new_x[key] = x + lr * m
        else:
            m = beta1 * m_old[key] + (1.0 - beta1) * delta
            d2 = delta * delta
            if kind == "adam":
                v = beta2 * v_old[key] + (1.0 - beta2) * d2
            elif kind == "yogi":
                v = v_old[key] - (1.0 - beta2) * d2 * torch.sign(v_old[key] - d2)
            else:  # adagrad
                v = v_old[key] + d2
            m_hat, v_hat = m, v
            if bias_correction and kind in ("adam", "yogi"):
                m_hat = m / (1.0 - beta1**t)
                v_hat = v / (1.0 - beta2**t)
            new_x[key] = x + lr * m_hat / (torch.sqrt(v_hat) + tau)
        new_m[key], new_v[key] = m, v
    return new_x, FedOptState(m=new_m, v=new_v, t=t)
