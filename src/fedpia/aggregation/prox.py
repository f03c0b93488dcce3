r"""FedProx proximal term (Li et al. 2020, "Federated Optimization in Heterogeneous Networks",
https://arxiv.org/abs/1812.06127), reused by Ditto (Li et al. 2021, "Ditto: Fair and Robust
Federated Learning Through Personalization", https://arxiv.org/abs/2012.04221).

FedProx: each client minimises :math:`F_k(w) + \frac{\mu}{2}\lVert w - w^t\rVert^2` where
:math:`w^t` is the global model received this round; the server is plain FedAvg.

Ditto: each client trains two models. (1) The global model with the usual local objective
(FedAvg-style, uploaded). (2) A personalised model :math:`v_k` kept on the client, trained on
:math:`F_k(v_k) + \frac{\lambda}{2}\lVert v_k - w^t\rVert^2` — i.e. ``prox_term(v_k, w_t, lam)``.
Only (1) is aggregated; :math:`v_k` never leaves the client and is used for evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch


def prox_term(
    params: Mapping[str, torch.Tensor], ref: Mapping[str, torch.Tensor], mu: float
) -> torch.Tensor:
    r"""Differentiable :math:`\frac{\mu}{2}\sum_{key}\lVert w[key] - w_{ref}[key]\rVert_F^2`.

    Args:
        params: live parameters (may require grad); keys must equal ``ref``'s keys.
        ref: reference (global) weights, treated as constants (detached).
        mu: :math:`\mu \ge 0`. ``mu=0`` gives exactly 0 and an all-zero gradient.

    Returns:
        A 0-dim tensor (dtype of the first parameter) connected to ``params``' graph.
    """
    if not (math.isfinite(mu) and mu >= 0):
        raise ValueError(f"mu must be finite and >= 0, got {mu}")
    if len(params) == 0:
        raise ValueError("prox_term needs at least one parameter (got an empty dict)")
    missing = sorted(set(params) - set(ref))
    extra = sorted(set(ref) - set(params))
    if missing:
        raise ValueError(f"ref is missing key {missing[0]!r} present in params")
    if extra:
        raise ValueError(f"ref has extra key {extra[0]!r} absent from params")
    total = None
    for key, w in params.items():
        r = ref[key]
        if tuple(w.shape) != tuple(r.shape):
            raise ValueError(f"key {key!r}: shape {tuple(w.shape)} != ref {tuple(r.shape)}")
        diff = w - r.detach().to(dtype=w.dtype, device=w.device)
        sq = (diff * diff).sum()
        total = sq if total is None else total + sq
    return 0.5 * mu * total
