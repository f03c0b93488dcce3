"""FedPIA's client probe sources: ``probe="forward"`` (DEFAULT, the paper) runs the probe batch
through the model with each adapter; ``probe="recorded"`` keeps the pooled adapter inputs of the
last m training samples in the client state and aligns with no forward pass in the next round."""

from __future__ import annotations

import pytest
import torch

from fedpia.align import fedpia_client_step, unit_groups
from fedpia.client.runtime import PROBE_INPUTS, _probe_batch
from fedpia.experiments import ExperimentConfig
from fedpia.models import activations_from_inputs, adapter_inputs
from fedpia.rounds import build_run, client_step, initial_client_state, seed_for
from fedpia.strategies import FedPIA


def _config(probe="recorded", peft="houlsby", **strategy):
    return ExperimentConfig.from_dict({
        "name": "probe", "setting": "synthetic", "strategy": "fedpia",
        "strategy_options": {"probe": probe, **strategy},
        "setting_options": {"modalities": ["x-ray", "ct"], "n_train": 16, "n_val": 4, "n_test": 8,
                            "image_size": 32},
        "model": {"backbone": "vilt", "pretrained": "tiny", "peft": peft, "adapter_width": 8},
        "sim": {"rounds": 3}, "train": {"lr": 2e-3, "batch_size": 4, "local_steps": 3,
                                        "warmup_frac": 0.0},
    })


class _Forwards:
    """Counts forward passes of the shared model."""

    def __init__(self, model):
        self.n = 0
        self._h = model.register_forward_pre_hook(self._count)

    def _count(self, module, args):
        self.n += 1

    def close(self):
        self._h.remove()


def _two_rounds(cfg, *, drop_recording=False):
    run = build_run(cfg)
    rules, rt = run.rules(), run.runtime(0)
    payload = run.strategy.client_payload(run.strategy.server_init(run.initial_adapter))
    _, cstate = client_step(rules, rt, payload, initial_client_state(rt), 1)
    if drop_recording:
        cstate.extra.pop(PROBE_INPUTS, None)
    gen = torch.Generator().manual_seed(5)  # a global adapter that differs from the client's
    glob = {k: v + 0.3 * torch.randn(v.shape, generator=gen) for k, v in payload["adapter"].items()}
    counter = _Forwards(rt.model)
    try:
        update, new = client_step(rules, rt, {**payload, "adapter": glob}, cstate, 2)
    finally:
        counter.close()
    return run, rt, cstate, glob, update, new, counter.n


def test_recorded_probe_keeps_the_last_m_training_samples_and_aligns_without_a_forward():
    cfg = _config(probe_samples=6)
    run, rt, cstate, glob, update, new, forwards = _two_rounds(cfg)
    groups = {g.name for g in unit_groups(cstate.adapter)}
    rec = cstate.extra[PROBE_INPUTS]
    # 3 steps of batch 4 = 12 samples seen, the last 6 kept; d_in = the hidden size
    assert set(rec) == groups and all(x.shape == (6, rt.model.hidden_size) for x in rec.values())
    assert forwards == 3  # round 2: the 3 training steps only, no probe forward
    assert update.metrics["pia"]["moved"]  # the client step ran (and reported its alignment)
    # the start it trained from is the client step on activations of the recorded inputs
    acts = {"local_acts": activations_from_inputs(rt.model, rec, cstate.adapter),
            "global_acts": activations_from_inputs(rt.model, rec, glob)}
    want = fedpia_client_step(cstate.adapter, glob, mix=0.5, cost="activation", **acts)
    assert update.metrics["pia"]["moved"] == [want.alignment.plans[n].changed
                                              for n in update.metrics["pia"]["groups"]]
    assert update.metrics["start_shift"] == pytest.approx(
        sum(float((want.state[k] - glob[k]).double().norm() ** 2) for k in glob) ** 0.5, rel=1e-5)
    # the new state holds round 2's recording, not round 1's
    assert any(not torch.equal(new.extra[PROBE_INPUTS][n], rec[n]) for n in rec)
    assert update.extra == {} and PROBE_INPUTS not in update.state  # never uploaded


def test_forward_probe_runs_the_model_twice_and_records_nothing():
    run, rt, cstate, glob, update, new, forwards = _two_rounds(_config(probe="forward"))
    assert PROBE_INPUTS not in cstate.extra and PROBE_INPUTS not in new.extra
    assert forwards == 3 + 2  # training + the probe with L and with G
    assert update.metrics["pia"]["moved"]


def test_recorded_probe_without_a_recording_records_once_from_its_own_adapter():
    run, rt, cstate, glob, update, new, forwards = _two_rounds(_config(), drop_recording=True)
    assert forwards == 3 + 1  # one forward with the client's own adapter, shared by L and G
    assert PROBE_INPUTS in new.extra
    # that forward ran the client's own adapter L (not G) on the round's probe batch
    rt.model.load_trainable_state(cstate.adapter)
    m = run.rules().probe_size
    xs = adapter_inputs(rt.model, _probe_batch(rt, m, seed_for(run.config.sim.seed, "probe", 2, rt.index)))
    want = fedpia_client_step(cstate.adapter, glob, mix=0.5, cost="activation",
                              local_acts=activations_from_inputs(rt.model, xs, cstate.adapter),
                              global_acts=activations_from_inputs(rt.model, xs, glob))
    assert update.metrics["start_shift"] == pytest.approx(
        sum(float((want.state[k] - glob[k]).double().norm() ** 2) for k in glob) ** 0.5, rel=1e-5)
    rt.model.load_trainable_state(glob)
    xs_g = adapter_inputs(rt.model, _probe_batch(rt, m, seed_for(run.config.sim.seed, "probe", 2, rt.index)))
    assert any(not torch.allclose(xs_g[n], xs[n]) for n in xs)  # G's stream would differ


def test_recorded_probe_hooks_the_start_adapters_modules_whatever_was_loaded_before():
    """The shared model may hold another width when a client starts (the hooks must sit on the
    modules of the adapter it trains, or nothing is recorded)."""
    cfg = _config()
    run = build_run(cfg)
    rules, rt = run.rules(), run.runtime(0)
    wide = build_run(cfg.with_overrides(["model.adapter_width=12"])).model.trainable_state()
    rt.model.load_trainable_state(wide)  # e.g. the previous client's wider adapter
    payload = run.strategy.client_payload(run.strategy.server_init(run.initial_adapter))
    _, cstate = client_step(rules, rt, payload, initial_client_state(rt), 1)
    groups = {g.name for g in unit_groups(payload["adapter"])}
    assert set(cstate.extra[PROBE_INPUTS]) == groups


def test_recorded_probe_without_unit_groups_runs_no_forward():
    run, rt, cstate, glob, update, new, forwards = _two_rounds(_config(peft="prompt"))
    assert not unit_groups(cstate.adapter)
    assert forwards == 3  # nothing to align: no probe forward, no fallback either


def test_probe_knob_is_checked():
    assert FedPIA().probe == "forward" and FedPIA(probe="recorded").needs_probe
    with pytest.raises(ValueError, match="probe"):
        FedPIA(probe="cached")
