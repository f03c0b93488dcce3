"""Flower backend pieces without Ray: lossless records, client-state storage, run_config
conversion, sampling, and the strategy wrapper's reply screening / failure handling."""

from __future__ import annotations

import logging

import pytest
import torch
from flwr.app import ConfigRecord, Error, Message, MessageType, RecordDict

from fedpia.flower import FlowerRunConfig, FlowerStrategy, NodeInfo, parse_update, sample_clients
from fedpia.flower.records import (
    UPDATE_STATE,
    load_client_state,
    metrics_record,
    record_to_state,
    save_client_state,
    state_to_record,
)
from fedpia.sim import RoundFailed, SimConfig
from fedpia.strategies import ClientState, build_strategy


def _state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "layer.0.adapter.down.weight": torch.randn(4, 6, generator=g),
        "layer.0.adapter.down.bias": torch.randn(4, generator=g),
        "layer.0.adapter.up.weight": torch.randn(6, 4, generator=g),
        "layer.0.adapter.up.bias": torch.randn(6, generator=g),
    }


# ------------------------------------------------------------------ records
def test_state_record_roundtrip_is_bit_exact_and_keeps_dtypes():
    state = {
        "a.f32": torch.randn(3, 5),
        "b.f64": torch.randn(2, dtype=torch.float64),
        "c.f16": torch.randn(4).half(),
        "d.i64": torch.arange(6).reshape(2, 3),
        "e.bool": torch.tensor([True, False]),
        "f.scalar": torch.tensor(3.5),
        "g.strided": torch.randn(4, 6)[:, ::2],
    }
    back = record_to_state(state_to_record(state))
    assert list(back) == list(state)
    for k, v in state.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape
        assert torch.equal(back[k], v)
    back["a.f32"].add_(1.0)  # an owning, writable copy
    assert not torch.equal(back["a.f32"], state["a.f32"])


def test_bfloat16_and_non_tensors_are_refused():
    with pytest.raises(ValueError, match="bfloat16"):
        state_to_record({"w": torch.zeros(2, dtype=torch.bfloat16)})
    with pytest.raises(ValueError, match="'w' is a list"):
        state_to_record({"w": [1.0]})


def test_client_state_roundtrip_in_context_state():
    store = RecordDict()
    assert load_client_state(store) is None
    cs = ClientState(
        adapter=_state(1),
        head={"w": torch.ones(2, 3)},
        extra={"scaffold_c": _state(2)},
        rounds_trained=3,
    )
    save_client_state(store, cs)
    back = load_client_state(store)
    assert back.rounds_trained == 3 and set(back.extra) == {"scaffold_c"}
    assert all(torch.equal(back.adapter[k], cs.adapter[k]) for k in cs.adapter)
    assert torch.equal(back.head["w"], cs.head["w"])
    save_client_state(store, ClientState(head={"w": torch.zeros(2, 3)}))  # replaces, no leftovers
    again = load_client_state(store)
    assert again.adapter is None and again.extra == {} and again.rounds_trained == 0


def test_metrics_record_keeps_numbers_only():
    rec = metrics_record({"loss": 0.5, "steps": 2, "ok": True, "name": "x", "none": None})
    assert dict(rec) == {"loss": 0.5, "steps": 2, "ok": 1}


# ------------------------------------------------------------------ config
def test_run_config_roundtrip_and_errors():
    cfg = FlowerRunConfig(
        setting_options={"modalities": ("x-ray", "ct"), "n_train": 8, "label_skew": None},
        model={"backbone": "vilt", "pretrained": "tiny", "adapter_width": 8},
        strategy_options={"gamma": 2.0},
        sim={"rounds": 3, "seed": 7},
    )
    flat = cfg.to_run_config()
    assert flat["sim.rounds"] == 3 and flat["strategy_options.gamma"] == 2.0
    assert flat["setting_options.modalities"] == '["x-ray", "ct"]'
    assert "data_root" not in flat and "train.head_lr" not in flat  # None omitted
    # ... except in the free mappings, where the builder's default (label_skew=1.0) is not None
    assert flat["setting_options.label_skew"] == "null"
    assert all(isinstance(v, bool | int | float | str) for v in flat.values())
    back = FlowerRunConfig.from_run_config(flat)
    assert back == cfg
    assert back.model_config().seed == 7 and back.build_strategy().gamma == 2.0
    with pytest.raises(ValueError, match="'bogus'"):
        FlowerRunConfig.from_run_config({**flat, "bogus": 1})
    with pytest.raises(ValueError, match=r"unknown field\(s\) \[.roundz.\]"):
        FlowerRunConfig.from_run_config({**flat, "sim.roundz": 1})
    with pytest.raises(ValueError, match="share_heads"):
        FlowerRunConfig(sim=SimConfig(share_heads=True))
    with pytest.raises(ValueError, match="on_round_failure"):
        FlowerRunConfig(on_round_failure="ignore")


def test_from_experiment_is_duck_typed():
    class Exp:
        name, engine, setting, data_root = "x", "flower", "synthetic", None
        setting_options, model, strategy, strategy_options = {}, {"peft": "lora"}, "fedavg", {}
        sim, train = SimConfig(rounds=1), FlowerRunConfig().train

    cfg = FlowerRunConfig.from_experiment(Exp())
    assert cfg.strategy == "fedavg" and cfg.model == {"peft": "lora"} and cfg.sim.rounds == 1


# ------------------------------------------------------------------ sampling
def test_sample_clients_is_seeded_and_bounded():
    full = SimConfig(rounds=3)
    assert sample_clients(5, 1, full) == [0, 1, 2, 3, 4]
    half = SimConfig(rounds=3, fraction_fit=0.4, seed=3)
    a, b = sample_clients(5, 1, half), sample_clients(5, 1, half)
    assert a == b and len(a) == 2 and a == sorted(a)
    assert len({tuple(sample_clients(5, r, half)) for r in range(1, 30)}) > 1
    assert len(sample_clients(5, 1, SimConfig(fraction_fit=0.1, min_clients=3))) == 3


# ------------------------------------------------------------------ strategy wrapper
@pytest.fixture(autouse=True)
def _task_identity(monkeypatch):
    """Flower only builds Messages inside a task (a run on a node): fake one for the test."""
    from flwr.supercore.task_identity import TaskIdentity

    for attr, value in (("_task_id", 1), ("_run_id", 1), ("_node_id", 1)):
        monkeypatch.setattr(TaskIdentity, attr, value)


def _wrapper(policy: str = "raise", min_clients: int = 1) -> FlowerStrategy:
    s = FlowerStrategy(
        build_strategy("fedavg"),
        initial_adapter=_state(0),
        sim=SimConfig(rounds=2, min_clients=min_clients),
        num_clients=3,
        on_round_failure=policy,
    )
    s.nodes = [NodeInfo(10 + i, f"c{i}", i, "vqa", 10) for i in range(3)]
    return s


def _reply(node: int, state: dict | None, n: int = 10, name: str | None = None) -> Message:
    ask = Message(RecordDict(), dst_node_id=node, message_type=MessageType.TRAIN)
    if state is None:
        return Message(Error(code=0, reason="boom"), reply_to=ask)
    content = RecordDict(
        {
            UPDATE_STATE: state_to_record(state),
            "metrics": metrics_record({"num-examples": n, "loss": 1.0}),
            "meta": ConfigRecord({"client": name or f"c{node - 10}"}),
        }
    )
    return Message(content, reply_to=ask)


def _configure(s: FlowerStrategy) -> list[Message]:
    return list(s.configure_train(1, state_to_record(s.server.adapter), ConfigRecord(), grid=None))


def test_nan_reply_is_rejected_and_the_others_are_averaged(caplog):
    s = _wrapper()
    msgs = _configure(s)
    assert sorted(m.metadata.dst_node_id for m in msgs) == [10, 11, 12]
    assert "payload/adapter" in msgs[0].content and msgs[0].content["config"]["round"] == 1
    bad = _state(2)
    bad["layer.0.adapter.up.bias"][0] = float("nan")
    with caplog.at_level(logging.WARNING):
        arrays, metrics = s.aggregate_train(
            1, [_reply(12, _state(3), n=30), _reply(11, bad), _reply(10, _state(1), n=10)]
        )
    want = {k: 0.25 * _state(1)[k] + 0.75 * _state(3)[k] for k in _state(0)}
    assert all(torch.allclose(s.server.adapter[k], want[k], atol=1e-6) for k in want)
    assert all(torch.equal(record_to_state(arrays)[k], s.server.adapter[k]) for k in want)
    rec = s._round["record"]
    assert list(rec["rejected"]) == ["c1"] and "NaN/Inf" in rec["rejected"]["c1"]
    assert "c1" in caplog.text and metrics["loss"] == 1.0
    assert list(rec["clients"]) == ["c0", "c1", "c2"]  # ordered by client index


def test_too_few_valid_updates_fail_the_round_and_keep_the_state():
    s = _wrapper(min_clients=2)
    before = {k: v.clone() for k, v in s.server.adapter.items()}
    _configure(s)
    bad = {k: torch.full_like(v, float("inf")) for k, v in _state(2).items()}
    with pytest.raises(RoundFailed, match="min_clients=2"):
        s.aggregate_train(1, [_reply(10, _state(1)), _reply(11, bad), _reply(12, None)])
    assert all(torch.equal(s.server.adapter[k], before[k]) for k in before)
    assert s.server.round == 0 and "error" in s.history[-1]


def test_failures_beyond_max_frac_and_skip_policy():
    s = _wrapper(policy="skip")
    before = {k: v.clone() for k, v in s.server.adapter.items()}
    _configure(s)
    # two error replies (one by Error, one malformed), one missing: 3/3 failed > 0.5
    malformed = Message(
        RecordDict({"meta": ConfigRecord({"client": "c1"})}),
        reply_to=Message(RecordDict(), dst_node_id=11, message_type="train"),
    )
    assert s.aggregate_train(1, [_reply(10, None), malformed]) == (None, None)
    rec = s._round["record"]
    assert set(rec["failed"]) == {"c0", "c1", "c2"}
    assert "boom" in rec["failed"]["c0"] and "lacks" in rec["failed"]["c1"]
    assert rec["failed"]["c2"] == "no reply before the timeout"
    assert all(torch.equal(s.server.adapter[k], before[k]) for k in before)


def test_parse_update_requires_example_count():
    content = RecordDict(
        {
            UPDATE_STATE: state_to_record(_state()),
            "metrics": metrics_record({"loss": 1.0}),
            "meta": ConfigRecord({"client": "c0"}),
        }
    )
    with pytest.raises(ValueError, match="num-examples"):
        parse_update(content)
