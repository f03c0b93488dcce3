"""Strategy hooks against hand-computed values on tiny tensors."""

from __future__ import annotations

import pytest
import torch

from fedpia.strategies import (
    STRATEGIES,
    ClientState,
    ClientUpdate,
    RoundContext,
    build_strategy,
)

CTX = RoundContext(round=1, num_rounds=2, seed=0, num_clients=2)


def _upd(name, x, n):
    return ClientUpdate(client=name, state={"w": torch.tensor(x)}, num_examples=n)


def test_registry_and_unknown_knobs():
    for name in ("fedpia", "fedavg", "fedprox", "scaffold", "fedadam", "fedyogi", "ditto",
                 "fedit", "ffa-lora", "fedsa-lora", "feddat", "local"):
        assert name in STRATEGIES
    with pytest.raises(ValueError, match="unknown strategy 'nope'"):
        build_strategy("nope")
    with pytest.raises(ValueError, match=r"has no option\(s\) \['gama'\]"):
        build_strategy("fedpia", gama=1.0)
    with pytest.raises(ValueError, match="client_cost"):
        build_strategy("fedpia", client_cost="cosine")


def test_fedavg_weighted_closed_form():
    s = build_strategy("fedavg")
    server = s.server_init({"w": torch.tensor([0.0, 0.0])})
    new, _ = s.aggregate(server, [_upd("a", [1.0, 2.0], 1), _upd("b", [4.0, 8.0], 3)], CTX)
    assert torch.allclose(new.adapter["w"], torch.tensor([3.25, 6.5]))


def test_fedadam_two_steps_by_hand():
    s = build_strategy("fedadam", server_lr=0.1, beta1=0.9, beta2=0.99, tau=1e-3)
    server = s.server_init({"w": torch.tensor([0.0, 1.0])})
    # step 1: Δ = avg - x = [1, -1]; m = 0.1Δ; v = 0.01Δ²; x += 0.1 m/(√v + τ)
    server, _ = s.aggregate(server, [_upd("a", [1.0, 0.0], 1)], CTX)
    m1 = torch.tensor([0.1, -0.1])
    v1 = torch.tensor([0.01, 0.01])
    x1 = torch.tensor([0.0, 1.0]) + 0.1 * m1 / (v1.sqrt() + 1e-3)
    assert torch.allclose(server.adapter["w"], x1, atol=1e-6)
    # step 2 with the same client model: Δ2 = [1, 0] - x1
    server, _ = s.aggregate(server, [_upd("a", [1.0, 0.0], 1)], CTX)
    d2 = torch.tensor([1.0, 0.0]) - x1
    m2 = 0.9 * m1 + 0.1 * d2
    v2 = 0.99 * v1 + 0.01 * d2**2
    x2 = x1 + 0.1 * m2 / (v2.sqrt() + 1e-3)
    assert torch.allclose(server.adapter["w"], x2, atol=1e-6)
    assert int(server.extra["t"]["t"]) == 2


def test_scaffold_control_variates_by_hand():
    s = build_strategy("scaffold", lr_global=1.0)
    x = {"w": torch.tensor([1.0, 1.0])}
    server = s.server_init(x)
    payload = s.client_payload(server)
    ctx = RoundContext(1, 2, 0, client="a", num_examples=1, local_steps=2, lr=0.5, num_clients=4)
    upd_a, st_a = s.client_finish({"w": torch.tensor([0.0, 2.0])}, payload, ClientState(), ctx)
    # c_i+ = c_i - c + (x - y)/(K η) = (1 - 0, 1 - 2)/(2·0.5) = [1, -1]
    assert torch.allclose(st_a.extra["c_i"]["w"], torch.tensor([1.0, -1.0]))
    ctx_b = RoundContext(1, 2, 0, client="b", num_examples=1, local_steps=2, lr=0.5, num_clients=4)
    upd_b, _ = s.client_finish({"w": torch.tensor([2.0, 2.0])}, payload, ClientState(), ctx_b)
    ctx_srv = RoundContext(1, 2, 0, num_clients=4)
    new, _ = s.aggregate(server, [upd_a, upd_b], ctx_srv)
    # x+ = x + mean(Δy) = 1 + ([-1, 1] + [1, 1])/2 = [1, 2]; c+ = 0 + (2/4)·mean(Δc)
    assert torch.allclose(new.adapter["w"], torch.tensor([1.0, 2.0]))
    dc_b = torch.tensor([-1.0, -1.0])
    assert torch.allclose(new.extra["c"]["w"], 0.5 * (torch.tensor([1.0, -1.0]) + dc_b) / 2)
    # gradient correction g - c_i + c on the next round
    _, hooks = s.client_start(s.client_payload(new), st_a, ctx)
    g = hooks.grad_correction("w", torch.tensor([0.5, 0.5]))
    assert torch.allclose(g, torch.tensor([0.5, 0.5]) - torch.tensor([1.0, -1.0]) + new.extra["c"]["w"])


def test_local_only_keeps_own_adapter():
    s = build_strategy("local")
    own = {"w": torch.tensor([5.0])}
    start, _ = s.client_start({"adapter": {"w": torch.tensor([0.0])}}, ClientState(adapter=own), CTX)
    assert torch.equal(start["w"], own["w"])


def test_ffa_lora_freezes_a_and_fedsa_keeps_b_local():
    a, b = "m.lora_A.default.weight", "m.lora_B.default.weight"
    glob = {a: torch.ones(2, 3), b: torch.zeros(3, 2)}
    ffa = build_strategy("ffa-lora")
    _, hooks = ffa.client_start({"adapter": glob}, ClientState(), CTX)
    assert hooks.trainable(b) and not hooks.trainable(a)
    sa = build_strategy("fedsa-lora")
    own = {a: torch.full((2, 3), 7.0), b: torch.full((3, 2), 9.0)}
    start, _ = sa.client_start({"adapter": glob}, ClientState(adapter=own), CTX)
    assert torch.equal(start[a], glob[a]) and torch.equal(start[b], own[b])
    with pytest.raises(ValueError, match="needs LoRA adapters"):
        build_strategy("fedit").server_init({"x.down.weight": torch.zeros(2, 2)})
