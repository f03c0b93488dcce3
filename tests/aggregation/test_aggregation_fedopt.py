"""FedOpt server optimizers against hand-computed steps on 2-element tensors."""

from __future__ import annotations

import math

import pytest
import torch

from fedpia.aggregation import FedOptState, fedopt_step

B1, B2, TAU, LR = 0.9, 0.99, 1e-3, 0.1


def _t(*v):
    return torch.tensor(v, dtype=torch.float64)


def _step(x, avg, state, kind, lr=LR):
    return fedopt_step({"w": x}, {"w": avg}, state, kind=kind, lr=lr, beta1=B1, beta2=B2, tau=TAU)


def test_adam_two_steps_by_hand():
    x0 = _t(1.0, 2.0)
    # step 1: delta = (0.5, -1); m = 0.1*delta; v = 0.01*delta^2 = (0.0025, 0.01)
    x1, s1 = _step(x0, _t(1.5, 1.0), FedOptState(), "adam")
    m1, v1 = [0.05, -0.1], [0.0025, 0.01]
    exp1 = [1.0 + 0.1 * 0.05 / (0.05 + TAU), 2.0 + 0.1 * -0.1 / (0.1 + TAU)]
    assert s1.t == 1
    torch.testing.assert_close(s1.m["w"], _t(*m1))
    torch.testing.assert_close(s1.v["w"], _t(*v1))
    torch.testing.assert_close(x1["w"], _t(*exp1))
    # step 2: delta = (-0.5, 0)
    x2, s2 = _step(x1["w"], x1["w"] + _t(-0.5, 0.0), s1, "adam")
    m2 = [0.9 * 0.05 + 0.1 * -0.5, 0.9 * -0.1]  # (-0.005, -0.09)
    v2 = [0.99 * 0.0025 + 0.01 * 0.25, 0.99 * 0.01]  # (0.004975, 0.0099)
    exp2 = [exp1[i] + 0.1 * m2[i] / (math.sqrt(v2[i]) + TAU) for i in range(2)]
    assert s2.t == 2
    torch.testing.assert_close(s2.m["w"], _t(*m2))
    torch.testing.assert_close(s2.v["w"], _t(*v2))
    torch.testing.assert_close(x2["w"], _t(*exp2))


def test_yogi_two_steps_by_hand():
    x0 = _t(1.0, 2.0)
    # step 1 from v=0: sign(v - delta^2) = -1 -> v = 0.01*delta^2, same as Adam's first step
    x1, s1 = _step(x0, _t(1.5, 1.0), FedOptState(), "yogi")
    exp1 = [1.0 + 0.1 * 0.05 / (0.05 + TAU), 2.0 + 0.1 * -0.1 / (0.1 + TAU)]
    torch.testing.assert_close(s1.v["w"], _t(0.0025, 0.01))
    torch.testing.assert_close(x1["w"], _t(*exp1))
    # step 2: delta = (-0.5, 0): delta^2 = (0.25, 0); v - delta^2 = (<0, >0) -> sign (-1, +1)
    x2, s2 = _step(x1["w"], x1["w"] + _t(-0.5, 0.0), s1, "yogi")
    m2 = [-0.005, -0.09]
    v2 = [0.0025 + 0.01 * 0.25, 0.01 - 0.01 * 0.0]  # (0.005, 0.01): differs from Adam
    exp2 = [exp1[i] + 0.1 * m2[i] / (math.sqrt(v2[i]) + TAU) for i in range(2)]
    torch.testing.assert_close(s2.m["w"], _t(*m2))
    torch.testing.assert_close(s2.v["w"], _t(*v2))
    torch.testing.assert_close(x2["w"], _t(*exp2))


def test_adagrad_one_step_by_hand():
    x1, s1 = _step(_t(1.0, 2.0), _t(1.5, 1.0), FedOptState(), "adagrad")
    torch.testing.assert_close(s1.v["w"], _t(0.25, 1.0))
    exp = [1.0 + 0.1 * 0.05 / (0.5 + TAU), 2.0 + 0.1 * -0.1 / (1.0 + TAU)]
    torch.testing.assert_close(x1["w"], _t(*exp))


def test_avgm_is_server_momentum_and_fedavg_at_lr1_first_step():
    x1, s1 = _step(_t(1.0, 2.0), _t(1.5, 1.0), FedOptState(), "avgm", lr=1.0)
    torch.testing.assert_close(x1["w"], _t(1.5, 1.0))  # m = delta, x + m = averaged
    x2, s2 = _step(x1["w"], _t(1.0, 1.0), s1, "avgm", lr=1.0)
    # m = 0.9*(0.5, -1) + (-0.5, 0) = (-0.05, -0.9)
    torch.testing.assert_close(s2.m["w"], _t(-0.05, -0.9))
    torch.testing.assert_close(x2["w"], _t(1.45, 0.1))


def test_bias_correction_first_adam_step_is_sign_like():
    # with bias correction, m_hat = delta, v_hat = delta^2 -> step = lr * delta/(|delta| + tau)
    x1, _ = fedopt_step(
        {"w": _t(0.0, 0.0)}, {"w": _t(2.0, -3.0)}, FedOptState(), lr=0.1, bias_correction=True
    )
    torch.testing.assert_close(x1["w"], _t(0.1 * 2 / (2 + 1e-3), -0.1 * 3 / (3 + 1e-3)))


def test_zero_pseudo_gradient_keeps_global_and_inputs_untouched():
    g = {"w": _t(1.0, 2.0)}
    st = FedOptState.init(g)
    x1, s1 = fedopt_step(g, {"w": _t(1.0, 2.0)}, st, lr=1.0)
    assert torch.equal(x1["w"], g["w"])
    assert st.t == 0 and torch.equal(st.m["w"], torch.zeros(2, dtype=torch.float64))
    assert s1.t == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "sgd"}, "kind"),
        ({"lr": 0.0}, "lr"),
        ({"beta1": 1.0}, "beta1"),
        ({"beta2": -0.1}, "beta2"),
        ({"tau": 0.0}, "tau"),
    ],
)
def test_fedopt_bad_knobs(kwargs, match):
    kw = {"lr": 0.1} | kwargs
    with pytest.raises(ValueError, match=match):
        fedopt_step({"w": _t(1.0)}, {"w": _t(1.0)}, FedOptState(), **kw)


def test_fedopt_structure_errors_name_the_key():
    g = {"w": _t(1.0, 2.0)}
    with pytest.raises(ValueError, match="'w'"):
        fedopt_step(g, {"u": _t(1.0, 2.0)}, FedOptState(), lr=0.1)
    with pytest.raises(ValueError, match="averaged.*'w'.*NaN"):
        fedopt_step(g, {"w": _t(float("nan"), 2.0)}, FedOptState(), lr=0.1)
    bad_state = FedOptState(m={"w": _t(0.0)}, v={"w": _t(0.0, 0.0)}, t=1)
    with pytest.raises(ValueError, match="key 'w': shape"):
        fedopt_step(g, g, bad_state, lr=0.1)
    with pytest.raises(ValueError, match="t must be"):
        FedOptState(t=-1)
