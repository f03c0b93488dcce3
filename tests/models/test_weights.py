"""The shipped weights: pinned sha256 checked at load (corrupted copies refused), exact key sets,
and the built default backbone holds exactly the shipped tensors (loads the real weights)."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file

from fedpia.models import ModelConfig, build_model
from fedpia.models.minilm_vl import build_minilm
from fedpia.models.vision import EfficientNetLiteTower
from fedpia.models.weights import PINNED, exact_keys, file_sha256, shipped_path, verified_path


def test_default_backbone_holds_exactly_the_shipped_tensors():
    model = build_model(ModelConfig())  # minilm-vl, shipped weights, houlsby
    shipped = load_file(str(shipped_path("minilm")))
    bert = model.backbone.hf.state_dict()
    # exact key set: everything but a non-persistent buffer and the unused pooler (mean pooling)
    assert set(shipped) - set(bert) == {"embeddings.position_ids", "pooler.dense.weight",
                                        "pooler.dense.bias"}
    assert set(bert) <= set(shipped) | {k for k in bert if ".adapter." in k}
    assert all(torch.equal(bert[k], shipped[k]) for k in bert if ".adapter." not in k)
    eff = torch.load(shipped_path("efficientnet-lite0"), map_location="cpu", weights_only=True)
    tower = model.backbone.tower.net.state_dict()
    assert set(eff) - set(tower) == {"_fc.weight", "_fc.bias"} and set(tower) <= set(eff)
    assert all(torch.equal(tower[k], eff[k]) for k in tower)
    assert sum(v.numel() for v in eff.values()) == 4_694_073  # EfficientNet-Lite0 incl. classifier
    assert model.backbone.tower.ident.startswith("efficientnet-lite0:579344248a93e230:head:128px")


@pytest.mark.parametrize("name", ["efficientnet-lite0", "minilm"])
def test_a_corrupted_weights_file_is_refused(name, tmp_path):
    bad = tmp_path / "weights.bin"
    shutil.copyfile(shipped_path(name), bad)
    with bad.open("r+b") as fh:  # one byte changed in the middle of the file
        fh.seek(bad.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0x01]))
    with pytest.raises(ValueError, match=f"has sha256 {file_sha256(bad)}, expected {PINNED[name][1]}"):
        verified_path(name, bad)
    with pytest.raises(ValueError, match="corrupted or not the pinned release"):
        if name == "minilm":
            build_minilm(None, seed=0, pooler=False, path=bad)
        else:
            EfficientNetLiteTower(path=bad)
    with pytest.raises(ValueError, match="not found"):
        verified_path(name, tmp_path / "missing.bin")


def test_exact_keys_names_the_difference():
    exact_keys("w", {"a", "b"}, {"b", "a"})
    with pytest.raises(ValueError, match=r"missing \['c'\] \(1\), unexpected \['x'\] \(1\)"):
        exact_keys("w", {"a", "x"}, {"a", "c"})
