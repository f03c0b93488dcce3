r"""SCAFFOLD control variates (Karimireddy et al. 2020, "SCAFFOLD: Stochastic Controlled Averaging
for Federated Learning", https://arxiv.org/abs/1910.06378), as pure functions on named states.

Client ``i`` with control variate :math:`c_i`, server control :math:`c`, global model :math:`x`:

* local step:            :math:`y \leftarrow y - \eta_l\,(g_i(y) - c_i + c)`
  (:func:`scaffold_corrected_grad` returns the corrected gradient ``g - c_i + c``);
* after K local steps (option II): :math:`c_i^+ = c_i - c + (x - y)/(K \eta_l)`
  (:func:`scaffold_client_control`); the client uploads
  :math:`\Delta y_i = y_i - x` and :math:`\Delta c_i = c_i^+ - c_i`;
* server (:func:`scaffold_server`): :math:`x \leftarrow x + \eta_g \sum_{i\in S} p_i \Delta y_i`,
  :math:`c \leftarrow c + \frac{|S|}{N} \sum_{i\in S} p_i \Delta c_i`.

With uniform weights ``p_i = 1/|S|`` this is exactly the paper's rule
(:math:`c \leftarrow c + \frac1N\sum_{i\in S}\Delta c_i`); example-count weights are our option.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from ._common import State, check_finite, check_same_structure, weighted_average


def scaffold_client_control(
    c_i: Mapping[str, torch.Tensor],
    c: Mapping[str, torch.Tensor],
    x_global: Mapping[str, torch.Tensor],
    y_local: Mapping[str, torch.Tensor],
    *,
    steps: int,
    lr: float,
) -> State:
    r"""Option II client control update :math:`c_i^+ = c_i - c + (x - y)/(K\eta_l)`.

    Args:
        c_i, c, x_global, y_local: dicts with identical keys/shapes/dtypes.
        steps: number of local SGD steps K >= 1; lr: local learning rate :math:`\eta_l > 0`.

    Returns:
        The new client control variate (fresh tensors).
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    states = [c_i, c, x_global, y_local]
    names = ["c_i", "c", "x_global", "y_local"]
    check_same_structure(states, names=names)
    for s, n in zip(states, names, strict=True):
        check_finite(s, name=n)
    scale = 1.0 / (steps * lr)
    return {k: c_i[k] - c[k] + (x_global[k] - y_local[k]) * scale for k in c_i}


def scaffold_corrected_grad(grad, c, c_i):
    r"""Drift-corrected gradient :math:`g - c_i + c`.

    Accepts either three tensors of the same shape or three dicts with identical keys/shapes
    (returns the same kind).
    """
    if isinstance(grad, torch.Tensor):
        if not (isinstance(c, torch.Tensor) and isinstance(c_i, torch.Tensor)):
            raise ValueError("grad is a Tensor: c and c_i must be Tensors too")
        if not grad.shape == c.shape == c_i.shape:
            raise ValueError(
                f"shape mismatch: grad {tuple(grad.shape)}, c {tuple(c.shape)}, "
                f"c_i {tuple(c_i.shape)}"
            )
        return grad - c_i.to(grad.device, grad.dtype) + c.to(grad.device, grad.dtype)
    check_same_structure([grad, c, c_i], names=["grad", "c", "c_i"])
    return {k: grad[k] - c_i[k] + c[k] for k in grad}


def scaffold_server(
    x: Mapping[str, torch.Tensor],
    c: Mapping[str, torch.Tensor],
    delta_y: Sequence[Mapping[str, torch.Tensor]],
    delta_c: Sequence[Mapping[str, torch.Tensor]],
    weights: Sequence[float] | torch.Tensor | None,
    *,
    lr_global: float = 1.0,
    total_clients: int,
) -> tuple[State, State]:
    r"""SCAFFOLD server step: returns ``(x_new, c_new)``.

    :math:`x^+ = x + \eta_g \sum_{i\in S} p_i \Delta y_i`, and
    :math:`c^+ = c + \frac{|S|}{N}\sum_{i\in S} p_i \Delta c_i` with ``|S| = len(delta_y)``
    participating clients out of ``N = total_clients``; ``weights=None`` means uniform.
    """
    n = len(delta_y)
    if n == 0:
        raise ValueError("scaffold_server needs at least one client update (got 0)")
    if len(delta_c) != n:
        raise ValueError(f"delta_y has {n} entries but delta_c has {len(delta_c)}")
    if not isinstance(total_clients, int) or total_clients < n:
        raise ValueError(
            f"total_clients must be an int >= number of participants ({n}), got {total_clients!r}"
        )
    if not lr_global > 0:
        raise ValueError(f"lr_global must be > 0, got {lr_global}")
    check_same_structure([x, c], names=["x", "c"])
    check_same_structure([x, *delta_y], names=["x"] + [f"delta_y[{i}]" for i in range(n)])
    check_same_structure([x, *delta_c], names=["x"] + [f"delta_c[{i}]" for i in range(n)])
    avg_dy = weighted_average(delta_y, weights)
    avg_dc = weighted_average(delta_c, weights)
    frac = n / total_clients
    x_new = {k: x[k] + lr_global * avg_dy[k] for k in x}
    c_new = {k: c[k] + frac * avg_dc[k] for k in c}
    return x_new, c_new
