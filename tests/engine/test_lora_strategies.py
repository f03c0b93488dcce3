"""FedEx-LoRA and FLoRA: the merged base-weight deltas reproduce the exact average update."""

from __future__ import annotations

import torch

from fedpia.client import TrainConfig
from fedpia.models import ModelConfig, build_model
from fedpia.sim import SimConfig, Simulator
from fedpia.strategies import ClientUpdate, RoundContext, build_strategy

A, B = "m.q.lora_A.default.weight", "m.q.lora_B.default.weight"
CTX = RoundContext(round=1, num_rounds=2, seed=0, num_clients=2)


def _clients():
    g = torch.Generator().manual_seed(0)
    s1 = {A: torch.randn(2, 3, generator=g), B: torch.randn(4, 2, generator=g)}
    s2 = {A: torch.randn(2, 3, generator=g), B: torch.randn(4, 2, generator=g)}
    return s1, s2, [ClientUpdate("a", s1, 1), ClientUpdate("b", s2, 3)]


def test_fedex_lora_effective_update_is_exact_average():
    s1, s2, ups = _clients()
    strat = build_strategy("fedex-lora", lora_scaling=0.5)
    server = strat.server_init({A: torch.zeros(2, 3), B: torch.zeros(4, 2)})
    new, _ = strat.aggregate(server, ups, CTX)
    effective = 0.5 * new.adapter[B] @ new.adapter[A] + new.extra["base_delta"]["m.q"]
    target = 0.5 * (0.25 * s1[B] @ s1[A] + 0.75 * s2[B] @ s2[A])
    assert torch.allclose(effective, target, atol=1e-6)
    # the residual is what plain FedIT (average of A and B) would have lost
    assert not torch.allclose(0.5 * new.adapter[B] @ new.adapter[A], target, atol=1e-3)
    payload = strat.client_payload(new)
    _, hooks = strat.client_start(payload, None, CTX)
    assert torch.equal(hooks.base_delta["m.q"], new.extra["base_delta"]["m.q"])


def test_flora_merges_stacked_product_and_restarts_lora():
    s1, s2, ups = _clients()
    init = {A: torch.ones(2, 3), B: torch.zeros(4, 2)}
    strat = build_strategy("flora", lora_scaling=2.0)
    server = strat.server_init(init)
    new, _ = strat.aggregate(server, ups, CTX)
    target = 2.0 * (0.25 * s1[B] @ s1[A] + 0.75 * s2[B] @ s2[A])
    assert torch.allclose(new.extra["base_delta"]["m.q"], target, atol=1e-6)
    assert torch.equal(new.adapter[A], init[A]) and torch.equal(new.adapter[B], init[B])
    again, _ = strat.aggregate(new, ups, CTX)  # deltas accumulate over rounds
    assert torch.allclose(again.extra["base_delta"]["m.q"], 2 * target, atol=1e-5)


def test_base_delta_strategies_run_and_leave_backbone_untouched(tiny_data):
    model = build_model(ModelConfig(pretrained="tiny", backbone="vilt", peft="lora", lora_rank=4, lora_alpha=8))
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    init = model.trainable_state()
    train = TrainConfig(lr=5e-3, batch_size=8, local_steps=2, warmup_frac=0.0)
    for name in ("fedex-lora", "flora"):
        sim = Simulator(model, tiny_data, build_strategy(name, lora_scaling=2.0),
                        sim=SimConfig(rounds=2), train=train, initial_adapter=init)
        state = sim.run()
        assert state.server.extra["base_delta"], name
        assert all(float(d.abs().sum()) > 0 for d in state.server.extra["base_delta"].values())
        assert all("global" in r and "personalized" in r for r in state.history[-1]["eval"].values())
        for n, p in model.named_parameters():
            if not p.requires_grad:
                assert torch.equal(p, frozen[n]), f"{name} leaked a base-weight delta into {n}"
