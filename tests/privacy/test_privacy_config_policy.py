"""The ``dp`` config section (validation) and which strategies each DP mode accepts."""

from __future__ import annotations

import pytest
import torch

from fedpia.privacy import (
    DPConfig,
    central_dp_aggregate,
    check_dp_strategy,
    noise_generator,
    privatize_client_update,
)
from fedpia.strategies import ClientUpdate, build_strategy
from fedpia.strategies.baselines import FedAvg


def test_config_defaults_and_from_mapping():
    assert not DPConfig().enabled and DPConfig.from_mapping(None) == DPConfig()
    dp = DPConfig.from_mapping({"mode": "local", "clip": 2, "noise_multiplier": 1})
    assert dp.enabled and dp.clip == 2.0 and isinstance(dp.clip, float)


@pytest.mark.parametrize("raw, match", [
    ({"mode": "global"}, "dp.mode must be one of"),
    ({"clip": 0.0}, "dp.clip must be a finite number > 0"),
    ({"clip": float("inf")}, "dp.clip must be a finite number > 0"),
    ({"noise_multiplier": -1.0}, "dp.noise_multiplier must be finite and >= 0"),
    ({"delta": 1.0}, r"dp.delta must be in \(0, 1\)"),
    ({"target_epsilon": 0.0}, "dp.target_epsilon must be a finite number > 0"),
    ({"target_epsilon": 3.0, "noise_multiplier": 1.0}, "exclusive"),
    ({"sigma": 1.0}, r"dp: unknown field\(s\) \['sigma'\]"),
    ({"clip": "1"}, "dp.clip must be a number"),
])
def test_config_errors_name_the_field(raw, match):
    with pytest.raises(ValueError, match=match):
        DPConfig.from_mapping(raw)


def test_fedpia_with_central_dp_is_refused():
    with pytest.raises(ValueError, match="'fedpia' aggregates otherwise.*dp.mode='local'"):
        check_dp_strategy(DPConfig(mode="central", noise_multiplier=1.0), build_strategy("fedpia"))
    check_dp_strategy(DPConfig(mode="local", noise_multiplier=1.0), build_strategy("fedpia"))


@pytest.mark.parametrize("name", ["fedavg", "fedprox", "ditto", "feddat", "fedit"])
def test_mean_aggregating_strategies_accept_central(name):
    check_dp_strategy(DPConfig(mode="central"), build_strategy(name))


@pytest.mark.parametrize("name", ["scaffold", "fedadam", "fedsa-lora", "ffa-lora", "flora",
                                  "fedex-lora", "local"])
def test_other_aggregates_refuse_central(name):
    with pytest.raises(ValueError, match="aggregates otherwise"):
        check_dp_strategy(DPConfig(mode="central"), build_strategy(name))


def test_new_strategy_overriding_aggregate_is_refused_until_listed():
    class Trimmed(FedAvg):
        name = "trimmed"

        def aggregate(self, server, updates, ctx):  # not a plain mean
            return super().aggregate(server, updates[:1], ctx)

    with pytest.raises(ValueError, match="'trimmed' aggregates otherwise"):
        check_dp_strategy(DPConfig(mode="central"), Trimmed())


def test_head_sharing_refused_in_both_modes_and_off_accepts_all():
    for mode in ("local", "central"):
        with pytest.raises(ValueError, match="share_heads"):
            check_dp_strategy(DPConfig(mode=mode), build_strategy("fedavg"), share_heads=True)
    check_dp_strategy(DPConfig(), build_strategy("scaffold"), share_heads=True)


def test_local_dp_refuses_unprotected_extra_uploads():
    with pytest.raises(ValueError, match="'scaffold' also uploads its control-variate"):
        check_dp_strategy(DPConfig(mode="local"), build_strategy("scaffold"))
    upd = ClientUpdate("c", {"w": torch.ones(2)}, 3, extra={"delta_c": {"w": torch.ones(2)}})
    with pytest.raises(ValueError, match=r"also uploads \['delta_c'\]"):
        privatize_client_update(upd, {"w": torch.zeros(2)}, dp=DPConfig(mode="local"),
                                generator=noise_generator(0, 1, "c"))


def test_privatize_client_update_keeps_metadata():
    upd = ClientUpdate("c", {"w": torch.tensor([3.0, 4.0])}, 7, metrics={"loss": 1.0})
    new, info = privatize_client_update(upd, {"w": torch.zeros(2)},
                                        dp=DPConfig(mode="local", clip=1.0),
                                        generator=noise_generator(0, 1, "c"))
    assert torch.allclose(new.state["w"], torch.tensor([0.6, 0.8]))
    assert (new.client, new.num_examples, new.metrics) == ("c", 7, {"loss": 1.0})
    assert info["norm"] == pytest.approx(5.0)


def test_central_dp_aggregate_replaces_server_adapter():
    s = build_strategy("fedavg")
    server = s.server_init({"w": torch.zeros(2)})
    ups = [ClientUpdate("a", {"w": torch.tensor([2.0, 0.0])}, 100),
           ClientUpdate("b", {"w": torch.tensor([0.0, 0.5])}, 1)]
    new, diag = central_dp_aggregate(server, ups, dp=DPConfig(mode="central", clip=1.0),
                                     round_=1, expected_clients=2,
                                     generator=noise_generator(0, 1, "server"))
    # uniform weights (example counts ignored), clip(2,0) = (1,0): mean = (0.5, 0.25)
    assert torch.allclose(new.adapter["w"], torch.tensor([0.5, 0.25])) and new.round == 1
    assert diag["dp"]["clipped"] == 1
