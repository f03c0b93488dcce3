"""The one run config and build_run: sections, Flower's flat run_config as a conversion of it,
derived knobs computed once (lora scaling), and per-client / per-seed head initialisation."""

from __future__ import annotations

import pytest
import torch

from fedpia.experiments import ExperimentConfig
from fedpia.rounds import (
    RobustConfig,
    SimConfig,
    build_run,
    from_run_config,
    strategy_knobs,
    to_run_config,
)

TINY = {
    "setting": "synthetic",
    "setting_options": {"modalities": ["x-ray", "ct", "fundus"], "n_train": 24, "n_val": 4,
                        "n_test": 12, "image_size": 32},
    "model": {"backbone": "vilt", "pretrained": "tiny", "peft": "houlsby", "adapter_width": 8},
}


def test_run_config_roundtrip_and_errors():
    cfg = ExperimentConfig.from_dict({
        "setting_options": {"modalities": ("x-ray", "ct"), "n_train": 8, "label_skew": None},
        "model": {"backbone": "vilt", "pretrained": "tiny", "adapter_width": 8},
        "strategy_options": {"gamma": 2.0},
        "sim": {"rounds": 3, "seed": 7, "faults": [{"client": "ct", "round": 2, "kind": "nan"}]},
        "robust": {"max_abs": float("inf"), "norm_bound": "reject"},
        "dp": {"mode": "local", "clip": 0.5, "target_epsilon": 4.0},
        "flower": {"num_clients": 2},
    })
    flat = to_run_config(cfg)
    assert flat["dp.mode"] == "local" and flat["dp.target_epsilon"] == 4.0
    assert flat["sim.rounds"] == 3 and flat["strategy_options.gamma"] == 2.0
    assert flat["flower.num_clients"] == 2 and flat["robust.norm_bound"] == "reject"
    assert flat["setting_options.modalities"] == '["x-ray", "ct"]'
    assert flat["sim.faults"] == '[{"client": "ct", "round": 2, "kind": "nan"}]'
    assert "data_root" not in flat and "train.head_lr" not in flat  # None omitted
    # ... except in the free mappings, where the builder's default (label_skew=1.0) is not None
    assert flat["setting_options.label_skew"] == "null"
    assert all(isinstance(v, bool | int | float | str) for v in flat.values())
    back = from_run_config(flat)
    assert back == cfg
    assert back.model_config().seed == 7 and back.sim.fault_specs()[0].client == "ct"
    assert from_run_config({"data_root": ""}).data_root is None  # Flower-app ""
    # where the ServerApp writes is the server operator's decision, never the run config's
    with pytest.raises(ValueError, match="flower.output_dir.*operator"):
        from_run_config({**flat, "flower.output_dir": "/tmp/x"})
    with pytest.raises(ValueError, match="'bogus'"):
        from_run_config({**flat, "bogus": 1})
    with pytest.raises(ValueError, match=r"unknown field\(s\) \[.roundz.\]"):
        from_run_config({**flat, "sim.roundz": 1})
    with pytest.raises(ValueError, match="'num_clients'"):  # Flower-only knobs live in flower.*
        from_run_config({"num_clients": 3})


def test_sections_validate_and_override():
    cfg = ExperimentConfig().with_overrides([
        "robust.norm_factor=3", "robust.max_abs=inf", "sim.on_failure=raise",
        'sim.faults=[{"client": 0, "round": 1, "kind": "scale:1000"}]', "flower.timeout=60"])
    assert cfg.robust.norm_factor == 3.0 and cfg.robust.max_abs == float("inf")
    assert cfg.sim.on_failure == "raise" and cfg.flower.timeout == 60.0
    assert cfg.sim.faults == ({"client": 0, "round": 1, "kind": "scale:1000"},)
    for bad, needle in ((["robust.norm_bound=soft"], "robust.norm_bound='soft'"),
                        (["robust.norm_factor=0.5"], "norm_factor must be"),
                        (["robust.max_examples=0"], "max_examples must be >= 1"),
                        (["sim.on_failure=ignore"], "sim.on_failure='ignore'"),
                        (["flower.num_clients=-1"], "flower.num_clients must be >= 0")):
        with pytest.raises(ValueError, match=needle):
            ExperimentConfig().with_overrides(bad)
    with pytest.raises(ValueError, match="share_heads"):
        ExperimentConfig(engine="flower", sim=SimConfig(share_heads=True)).validate()
    assert ExperimentConfig().robust == RobustConfig()  # bounded influence on by default
    assert RobustConfig().norm_bound == "clip" and SimConfig().on_failure == "skip"


def test_toml_faults_and_robust_section(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('strategy = "fedavg"\n[sim]\nrounds = 2\n'
                    'faults = [{client = "ct", round = 1, kind = "count:1e15"}]\n'
                    '[robust]\nnorm_bound = "off"\n')
    cfg = ExperimentConfig.from_file(path)
    assert cfg.sim.faults[0]["kind"] == "count:1e15" and cfg.robust.norm_bound == "off"


@pytest.mark.parametrize("strategy", ["flora", "fedex-lora"])
def test_lora_scaling_is_derived_once_for_every_engine(strategy):
    """lora_alpha / lora_rank = 16 / 4 = 4.0 wherever the run is assembled (the in-process
    runner and the Flower ServerApp / ClientApp all call build_run); Flower used 2.0 before."""
    cfg = ExperimentConfig(strategy=strategy, model={"peft": "lora", "lora_rank": 4})
    assert strategy_knobs(cfg)["lora_scaling"] == 4.0
    assert build_run(cfg).strategy.lora_scaling == 4.0
    explicit = ExperimentConfig(strategy=strategy, model={"peft": "lora", "lora_rank": 4},
                                strategy_options={"lora_scaling": 1.0})
    assert build_run(explicit).strategy.lora_scaling == 1.0
    assert "lora_scaling" not in strategy_knobs(ExperimentConfig(strategy="fedavg"))


def test_faults_must_name_clients_of_the_setting():
    for client in ("nobody", 3):
        cfg = ExperimentConfig.from_dict({**TINY, "sim": {"faults": [{"client": client, "kind": "nan"}]}})
        with pytest.raises(ValueError, match=r"sim\.faults\[0\]\.client=.* is not a client"):
            build_run(cfg).data  # noqa: B018


def _head(run, index):
    return run.runtime(index).initial_head()


def test_heads_differ_across_clients_and_seeds():
    """Each client's head is initialised from stream "head" of (sim.seed, client): before, the
    model layer re-seeded with 0 and every client under every seed got the same head."""
    runs = {seed: build_run(ExperimentConfig.from_dict({**TINY, "sim": {"seed": seed}}))
            for seed in (0, 1)}
    h00, h01, h10 = _head(runs[0], 0), _head(runs[0], 1), _head(runs[1], 0)
    key = sorted(h00)[0]
    assert not torch.equal(h00[key], h01[key])  # clients differ
    assert not torch.equal(h00[key], h10[key])  # seeds differ
    again = build_run(ExperimentConfig.from_dict({**TINY, "sim": {"seed": 0}}))
    assert all(torch.equal(h00[k], _head(again, 0)[k]) for k in h00)  # and are reproducible


def test_switching_strategy_drops_the_options_it_does_not_take(caplog):
    """``strategy=NAME`` resets the preset's options NAME has no use for (with a note naming
    them), keeps the ones it accepts, and never touches options set in the same call."""
    from fedpia.experiments import get_preset

    base = get_preset("demo")  # fedpia with {"gamma": 1.0, "mix": 0.5}
    assert base.strategy_options == {"gamma": 1.0, "mix": 0.5}
    with caplog.at_level("INFO", logger="fedpia.rounds.overrides"):
        fedavg = base.with_overrides(["strategy=fedavg"])
    assert fedavg.strategy_options == {}
    assert "['gamma', 'mix']" in caplog.text and "'fedavg'" in caplog.text
    fedavg.validate()
    assert base.with_overrides(["strategy=fedavg-mix"]).strategy_options == {"mix": 0.5}  # accepted: kept
    assert base.with_overrides(["strategy=centralized"]).strategy_options == {}
    assert base.with_overrides(["strategy=fedpia"]).strategy_options == base.strategy_options
    # an option set in the same call applies whatever the order of the assignments
    for sets in (["strategy=fedavg-mix", "strategy_options.mix=0.9"],
                 ["strategy_options.mix=0.9", "strategy=fedavg-mix"]):
        assert base.with_overrides(sets).strategy_options == {"mix": 0.9}
    for sets in (["strategy=fedprox", "strategy_options.gamma=2"],
                 ["strategy_options.gamma=2", "strategy=fedprox"]):
        cfg = base.with_overrides(sets)
        assert cfg.strategy_options == {"gamma": 2}  # asked for: kept, so validate names it
        with pytest.raises(ValueError, match=r"'fedprox' has no option\(s\) \['gamma'\]"):
            cfg.validate()
    whole = base.with_overrides(['strategy_options={"mu": 0.1}', "strategy=fedprox"])
    assert whole.strategy_options == {"mu": 0.1}
    # a name no registry knows: options untouched, validate names the strategy
    bogus = base.with_overrides(["strategy=bogus"])
    assert bogus.strategy_options == base.strategy_options
    with pytest.raises(ValueError, match="unknown strategy 'bogus'"):
        bogus.validate()
