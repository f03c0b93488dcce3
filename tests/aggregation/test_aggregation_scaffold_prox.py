"""SCAFFOLD control variates and the FedProx/Ditto proximal term, hand-computed."""

from __future__ import annotations

import pytest
import torch

from fedpia.aggregation import (
    prox_term,
    scaffold_client_control,
    scaffold_corrected_grad,
    scaffold_server,
)


def _t(*v):
    return torch.tensor(v, dtype=torch.float64)


def test_scaffold_client_control_option_ii_by_hand():
    # K*lr = 4*0.05 = 0.2; (x - y)/0.2 = (0.2, -0.3)/0.2 = (1, -1.5)
    out = scaffold_client_control(
        {"w": _t(0.1, -0.2)},
        {"w": _t(0.05, 0.05)},
        {"w": _t(1.0, 1.0)},
        {"w": _t(0.8, 1.3)},
        steps=4,
        lr=0.05,
    )
    torch.testing.assert_close(out["w"], _t(0.1 - 0.05 + 1.0, -0.2 - 0.05 - 1.5))


def test_scaffold_client_control_recovers_constant_gradient():
    # K plain SGD steps with constant gradient g from x: y = x - K*lr*g -> c_i+ - c_i + c = g
    g, x = _t(0.3, -0.7), _t(1.0, 2.0)
    y = x - 5 * 0.1 * g
    zero = {"w": _t(0.0, 0.0)}
    out = scaffold_client_control(zero, zero, {"w": x}, {"w": y}, steps=5, lr=0.1)
    torch.testing.assert_close(out["w"], g)


def test_scaffold_corrected_grad_tensor_and_dict():
    g, c, ci = _t(1.0, 2.0), _t(0.5, 0.5), _t(0.25, -1.0)
    torch.testing.assert_close(scaffold_corrected_grad(g, c, ci), _t(1.25, 3.5))
    out = scaffold_corrected_grad({"w": g}, {"w": c}, {"w": ci})
    torch.testing.assert_close(out["w"], _t(1.25, 3.5))
    with pytest.raises(ValueError, match="shape mismatch"):
        scaffold_corrected_grad(g, _t(1.0), ci)
    with pytest.raises(ValueError, match="'w'"):
        scaffold_corrected_grad({"w": g}, {"u": c}, {"w": ci})


def test_scaffold_server_by_hand():
    x, c = {"w": _t(1.0, 2.0)}, {"w": _t(0.0, 1.0)}
    dy = [{"w": _t(0.2, 0.4)}, {"w": _t(-0.4, 0.1)}]
    dc = [{"w": _t(1.0, 0.0)}, {"w": _t(-1.0, 2.0)}]
    x_new, c_new = scaffold_server(x, c, dy, dc, [1, 3], lr_global=2.0, total_clients=4)
    # avg dy = (-0.25, 0.175); x + 2*avg = (0.5, 2.35)
    torch.testing.assert_close(x_new["w"], _t(0.5, 2.35))
    # avg dc = (-0.5, 1.5); |S|/N = 1/2 -> c + (-0.25, 0.75)
    torch.testing.assert_close(c_new["w"], _t(-0.25, 1.75))
    assert x["w"].tolist() == [1.0, 2.0]  # inputs untouched


def test_scaffold_server_uniform_matches_paper_rule():
    x, c = {"w": _t(0.0)}, {"w": _t(0.0)}
    dy = [{"w": _t(1.0)}, {"w": _t(2.0)}, {"w": _t(6.0)}]
    dc = [{"w": _t(3.0)}, {"w": _t(3.0)}, {"w": _t(6.0)}]
    x_new, c_new = scaffold_server(x, c, dy, dc, None, total_clients=10)
    torch.testing.assert_close(x_new["w"], _t(3.0))  # mean of dy
    torch.testing.assert_close(c_new["w"], _t(12.0 / 10))  # (1/N) * sum dc


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"total_clients": 0}, "total_clients"),
        ({"lr_global": 0.0}, "lr_global"),
        ({"delta_c": []}, "delta_c"),
        ({"delta_y": [], "delta_c": []}, "at least one"),
        ({"delta_y": [{"u": _t(1.0)}]}, "'w'"),
    ],
)
def test_scaffold_server_failures(kwargs, match):
    args = {
        "x": {"w": _t(0.0)},
        "c": {"w": _t(0.0)},
        "delta_y": [{"w": _t(1.0)}],
        "delta_c": [{"w": _t(1.0)}],
        "weights": None,
        "total_clients": 2,
    } | kwargs
    with pytest.raises(ValueError, match=match):
        scaffold_server(**args)


def test_scaffold_client_control_failures():
    z = {"w": _t(0.0)}
    with pytest.raises(ValueError, match="steps"):
        scaffold_client_control(z, z, z, z, steps=0, lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        scaffold_client_control(z, z, z, z, steps=1, lr=0.0)
    with pytest.raises(ValueError, match="y_local.*'w'.*NaN"):
        scaffold_client_control(z, z, z, {"w": _t(float("nan"))}, steps=1, lr=0.1)


def test_prox_term_value_and_gradient_by_hand():
    a = _t(1.0, 2.0).requires_grad_(True)
    b = torch.tensor([[3.0]], dtype=torch.float64, requires_grad=True)
    ref = {"a": _t(0.0, 0.0).requires_grad_(True), "b": torch.tensor([[1.0]], dtype=torch.float64)}
    loss = prox_term({"a": a, "b": b}, ref, 0.5)
    assert loss.item() == pytest.approx(0.25 * (1 + 4 + 4))
    loss.backward()
    torch.testing.assert_close(a.grad, _t(0.5, 1.0))  # mu * (w - ref)
    torch.testing.assert_close(b.grad, torch.tensor([[1.0]], dtype=torch.float64))
    assert ref["a"].grad is None  # the reference is a constant


def test_prox_term_mu_zero_is_exactly_zero_with_zero_gradient():
    w = torch.tensor([5.0, -3.0], requires_grad=True)
    loss = prox_term({"w": w}, {"w": torch.zeros(2)}, 0.0)
    assert loss.item() == 0.0
    loss.backward()
    assert w.grad is not None and torch.equal(w.grad, torch.zeros(2))


def test_prox_term_failures():
    w = {"w": torch.zeros(2)}
    with pytest.raises(ValueError, match="mu"):
        prox_term(w, w, -1.0)
    with pytest.raises(ValueError, match="missing key 'w'"):
        prox_term(w, {"u": torch.zeros(2)}, 1.0)
    with pytest.raises(ValueError, match="extra key 'u'"):
        prox_term(w, {"w": torch.zeros(2), "u": torch.zeros(1)}, 1.0)
    with pytest.raises(ValueError, match="key 'w': shape"):
        prox_term(w, {"w": torch.zeros(3)}, 1.0)
    with pytest.raises(ValueError, match="empty"):
        prox_term({}, {}, 1.0)
