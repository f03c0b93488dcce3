"""LoRA exports: peft's own format loads with ``PeftModel.from_pretrained`` and computes what
fedpia's LoRA computes; a DP run carries its ledger; FLoRA's base-weight deltas round-trip."""

from __future__ import annotations

import json

import pytest
import torch
from export_helpers import exported_logits, reference_logits
from peft import PeftModel
from safetensors import safe_open

from fedpia.export import MANIFEST, export_run, hf_base_model, load_exported
from fedpia.models import ModelConfig
from fedpia.sim import load_checkpoint


@pytest.fixture(scope="module")
def lora_export(lora_dp_run, tmp_path_factory):
    run_dir, _ = lora_dp_run
    return export_run(run_dir, tmp_path_factory.mktemp("lora") / "export")


def test_peft_folder_is_peft_format(lora_export):
    cfg = json.loads((lora_export / "peft" / "adapter_config.json").read_text())
    assert (cfg["peft_type"], cfg["r"], cfg["lora_alpha"]) == ("LORA", 4, 8)
    assert cfg["base_model_name_or_path"] is None  # tiny: in-code weights, no hub id
    assert sorted(cfg["target_modules"]) == [f"encoder.layer.{i}.attention.self.{t}"
                                             for i in (0, 1) for t in ("query", "value")]
    with safe_open(str(lora_export / "peft" / "adapter_model.safetensors"), "pt") as f:
        assert f.metadata() == {"format": "pt"}
        keys = set(f.keys())
    assert keys == {f"base_model.model.{m}.{p}.weight" for m in cfg["target_modules"]
                    for p in ("lora_A", "lora_B")}
    m = json.loads((lora_export / MANIFEST).read_text())
    assert m["peft"]["dir"] == "peft" and m["peft"]["base_model_class"] == "BertModel"
    assert m["peft"]["not_included"] == [] and m["adapter"]["lora"]["scaling"] == 2.0


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")
def test_peft_model_loads_our_lora_and_computes_the_same(lora_export):
    ex = load_exported(lora_export, device="cpu")
    cfg = ModelConfig(**ex.manifest["model_config"])
    peft_model = PeftModel.from_pretrained(hf_base_model(cfg), str(lora_export / "peft")).eval()
    ours = ex.model.backbone.hf.eval()
    theirs = dict(peft_model.named_parameters())
    lora = {k: v for k, v in ex.model.trainable_state().items() if ".lora_" in k}
    assert lora and all(float(v.abs().sum()) > 0 for k, v in lora.items() if "lora_B" in k)
    for key, value in lora.items():  # backbone.hf.<m>.lora_A.default.weight
        assert torch.equal(theirs["base_model.model." + key.removeprefix("backbone.hf.")], value)
    g = torch.Generator().manual_seed(0)
    for module in json.loads((lora_export / "peft" / "adapter_config.json").read_text())["target_modules"]:
        layer_ours = ours.get_submodule(module)
        layer_theirs = peft_model.base_model.model.get_submodule(module)
        x = torch.randn(3, 5, layer_ours.in_features, generator=g)
        with torch.no_grad():
            y = layer_ours(x)
            torch.testing.assert_close(layer_theirs(x), y)
            assert not torch.allclose(layer_ours.base_layer(x), y)  # LoRA changes the layer
    emb = torch.randn(2, 7, ours.config.hidden_size, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(peft_model(inputs_embeds=emb).last_hidden_state,
                                   ours(inputs_embeds=emb).last_hidden_state)


def test_dp_export_carries_the_privacy_ledger(lora_dp_run, lora_export):
    run_dir, _ = lora_dp_run
    results = json.loads((run_dir / "results.json").read_text())
    privacy = json.loads((lora_export / MANIFEST).read_text())["privacy"]
    assert privacy["mode"] == "central" and privacy["delta"] == 1e-5
    assert privacy["epsilon"] == pytest.approx(results["privacy"]["epsilon"]) and privacy["epsilon"] > 0
    assert "heads" in privacy["not_covered"] and "global adapter" in privacy["covers"]


def test_flora_base_deltas_round_trip_and_get_no_peft_folder(flora_run, tmp_path):
    run_dir, cfg = flora_run
    server, clients, _ = load_checkpoint(run_dir / "checkpoints")
    assert server.extra["base_delta"]
    out = export_run(run_dir, tmp_path / "flora")
    m = json.loads((out / MANIFEST).read_text())
    assert m["adapter"]["base_delta"] == "base_delta.safetensors" and not (out / "peft").exists()
    assert m["peft"]["dir"] is None and "base-weight" in m["peft"]["reason"]
    ex = load_exported(out, device="cpu")
    params = dict(ex.model.named_parameters())
    for prefix, delta in server.extra["base_delta"].items():
        base = hf_base_model(ModelConfig(**m["model_config"])).get_submodule(
            prefix.removeprefix("backbone.hf.")).weight
        torch.testing.assert_close(params[f"{prefix}.base_layer.weight"], base + delta)
    client = sorted(ex.heads)[0]
    ref, _ = reference_logits(cfg, run_dir, client, "global")
    torch.testing.assert_close(exported_logits(ex, cfg, client)[0], ref, atol=1e-5, rtol=1e-5)
