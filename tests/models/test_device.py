"""Device and precision knobs (CPU only here): resolution and its errors, bf16 autocast in
training / evaluation / probes / feature extraction, CPU states, placement once."""

from __future__ import annotations

import pytest
import torch

from fedpia.client import TrainConfig, encode_split, predict, train_local
from fedpia.data import LabelSpace, get_setting
from fedpia.device import autocast, place, resolve_device
from fedpia.models import ModelConfig, adapter_activations, build_head, build_model


@pytest.fixture()
def no_accelerators(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_resolve_device_on_a_cpu_machine(no_accelerators):
    assert resolve_device("cpu") == resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="train.device='cuda' but this machine has no usable CUDA"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="cuda:1"):
        resolve_device("cuda:1")
    with pytest.raises(ValueError, match="MPS is not available"):
        resolve_device("mps")
    with pytest.raises(ValueError, match="allowed: 'auto', 'cpu'"):
        resolve_device("gpu")


@pytest.mark.parametrize("kw, needle", [({"device": "gpu"}, "train.device='gpu'"),
                                        ({"device": "cuda:x"}, "train.device"),
                                        ({"precision": "fp8"}, "train.precision='fp8'")])
def test_train_config_checks_the_knobs(kw, needle):
    with pytest.raises(ValueError, match=needle):
        TrainConfig(**kw)
    assert TrainConfig(device="cuda:1", precision="bf16").device == "cuda:1"  # syntax only


def test_cuda_asked_without_cuda_fails_at_placement(no_accelerators):
    model = build_model(ModelConfig(pretrained="tiny", peft="houlsby", adapter_width=4))
    with pytest.raises(ValueError, match="no usable CUDA device"):
        place(model, device="cuda")


@pytest.fixture(scope="module")
def tiny_setup():
    data = get_setting("synthetic", seed=0, modalities=("x-ray",), n_train=16, n_val=2, n_test=8,
                       image_size=32)
    client = data.clients[0]
    model = build_model(ModelConfig(pretrained="tiny", peft="houlsby", adapter_width=4))
    space = LabelSpace.from_samples(client.train)
    train = encode_split(model.processor, client.train, space)
    head = build_head("vqa", model.hidden_size, len(space), seed=0)
    return model, head, train


def _record_linear_dtypes(model):
    seen = set()
    handles = [m.register_forward_hook(lambda mod, i, o: seen.add(o.dtype))
               for m in model.modules() if isinstance(m, torch.nn.Linear)]
    return seen, handles


def test_bf16_autocast_is_active_in_training_and_eval_states_stay_fp32_cpu(tiny_setup):
    model, head, train = tiny_setup
    cfg = TrainConfig(lr=1e-3, batch_size=8, local_steps=2, device="cpu", precision="bf16")
    seen, handles = _record_linear_dtypes(model)
    try:
        state, hstate, stats = train_local(model, head, train, start=model.trainable_state(),
                                           head_state=head.state_dict(), cfg=cfg, lr=1e-3, seed=0)
    finally:
        for h in handles:
            h.remove()
    assert torch.bfloat16 in seen and model.precision == "bf16"
    assert stats["loss"] > 0 and all(v.dtype == torch.float32 and v.device.type == "cpu"
                                     for v in (*state.values(), *hstate.values()))
    seen, handles = _record_linear_dtypes(model)
    try:
        logits = predict(model, head, train)
        acts = adapter_activations(model.eval(), train.batch(range(4)))
    finally:
        for h in handles:
            h.remove()
    assert seen == {torch.bfloat16}  # evaluation and the probe ran under bf16 autocast too
    assert logits.dtype == torch.float32 and logits.device.type == "cpu"
    assert all(a.dtype == torch.float32 for a in acts.values())
    place(model, device="cpu", precision="fp32")
    assert model.processor.extractor.precision == "fp32"


def test_place_is_idempotent_and_moves_split_in_place(tiny_setup):
    model, _, train = tiny_setup
    dev = place(model, device="auto", precision="fp32")
    w = model.backbone.image_proj.weight
    assert place(model, device="cpu") == dev and model.backbone.image_proj.weight is w
    feats = train.inputs["image_feats"]
    assert train.to("cpu") is train and train.inputs["image_feats"] is feats  # no copy
    assert torch.equal(train.batch([1, 0])["image_feats"], feats[[1, 0]])


def test_autocast_fp32_is_a_no_op():
    with autocast("cpu", "fp32"):
        assert torch.nn.Linear(2, 2)(torch.ones(1, 2)).dtype == torch.float32
    with autocast("cpu", "bf16"):
        assert torch.nn.Linear(2, 2)(torch.ones(1, 2)).dtype == torch.bfloat16


def test_gpu_check_script_runs_on_cpu_as_a_smoke_test(tmp_path):
    """benchmarks/gpu_check.py (meant for a GPU machine) runs end to end on the CPU with the tiny
    backbone: placement and autocast checks pass, throughput is reported per precision."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    proc = subprocess.run([sys.executable, str(root / "benchmarks" / "gpu_check.py"), "--device", "cpu",
                           "--pretrained", "tiny", "--steps", "1", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["all_ok"] and res["device"] == "cpu"
    assert res["checks"]["recorded_probe_matches_forward"] is True
    assert set(res["precisions"]) == {"fp32", "bf16"}
    assert res["precisions"]["bf16"]["linear_dtypes"] == ["torch.bfloat16"]
    assert all(r["samples_per_s"] > 0 for r in res["precisions"].values())
