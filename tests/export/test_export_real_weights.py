"""The real shipped minilm-vl weights: a LoRA export loads with peft onto the MiniLM BertModel
that transformers itself builds from the shipped checkpoint folder (= the hub's
sentence-transformers/all-MiniLM-L6-v2), and computes what fedpia computes."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel
from transformers import BertModel

from fedpia.experiments import ExperimentConfig, run_experiment
from fedpia.export import export_run, load_exported, predict
from fedpia.models.weights import shipped_path


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")
def test_lora_on_shipped_minilm_loads_into_transformers_bert(tmp_path, shared_data):
    cfg = ExperimentConfig.from_dict({
        "name": "real", "setting": "synthetic",
        "setting_options": {"n_train": 4, "n_val": 2, "n_test": 2, "modalities": ["x-ray"]},
        "model": {"peft": "lora", "lora_rank": 4, "lora_alpha": 8},  # pretrained=None: shipped
        "strategy": "fedavg", "sim": {"rounds": 1},
        "train": {"lr": 1e-2, "batch_size": 4, "local_steps": 1, "warmup_frac": 0.0}})
    run_experiment(cfg, out_dir=tmp_path / "run")
    out = export_run(tmp_path / "run", tmp_path / "export")
    manifest = json.loads((out / "fedpia_adapter.json").read_text())
    assert manifest["backbone"]["pretrained"] is None and "MiniLM" in manifest["backbone"]["weights"]
    peft_cfg = json.loads((out / "peft" / "adapter_config.json").read_text())
    assert peft_cfg["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert len(peft_cfg["target_modules"]) == 12  # 6 layers x (query, value)

    base = BertModel.from_pretrained(str(shipped_path("minilm").parent), add_pooling_layer=False)
    peft_model = PeftModel.from_pretrained(base, str(out / "peft")).eval()
    ex = load_exported(out, device="cpu")
    ours = ex.model.backbone.hf.eval()
    ids = ex.model.processor.tokenizer(["is there a fracture?"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        got = peft_model(input_ids=ids).last_hidden_state
        want = ours(input_ids=ids).last_hidden_state
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        with peft_model.disable_adapter():  # the trained LoRA is what makes them equal
            assert not torch.allclose(peft_model(input_ids=ids).last_hidden_state, want, atol=1e-4)
    image = sorted((shared_data / "vqa_rad" / "VQA_RAD Image Folder").glob("*.jpg"))[0]
    answers = predict(ex, image, "is there a fracture?", top_k=2)
    labels = set(ex.head().labels)
    assert len(answers) == 2 and {a for a, _ in answers} <= labels
