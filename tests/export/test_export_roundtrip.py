"""Export -> load -> predict equals the in-process model of the run, for the global adapter and
a personalised one, on every task type; the manifest describes what was exported."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from export_helpers import exported_logits, reference_logits, trained_client

from fedpia.client.metrics import classification_metrics
from fedpia.export import MANIFEST, export_run, load_exported, predict
from fedpia.sim import load_checkpoint


def test_global_export_predicts_like_the_run_for_every_head(mixed_run, tmp_path):
    run_dir, cfg = mixed_run
    out = export_run(run_dir, tmp_path / "global")
    ex = load_exported(out, device="cpu")
    manifest = json.loads((out / MANIFEST).read_text())
    _, clients, _ = load_checkpoint(run_dir / "checkpoints")
    trained = {n for n, c in clients.items() if c.adapter is not None}
    assert set(ex.heads) == trained and set(manifest["heads_left_out"]) == set(clients) - trained
    assert manifest["heads_left_out"] and len(trained) == 4  # sampled 2 of 5 per round, 2 rounds
    assert manifest["tasks"] == ["multiclass", "multilabel", "vqa"]
    for name, head in ex.heads.items():
        ref, rt = reference_logits(cfg, run_dir, name, "global")
        got, _ = exported_logits(ex, cfg, name)
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
        assert head.labels == rt.space.labels  # index -> string as the run encoded targets
        # the run's own last-round global metrics, recomputed from the exported predictions
        metrics = classification_metrics(got, rt.test.targets, rt.test.answer_types, task=rt.task)
        assert metrics == pytest.approx(manifest["heads"][name]["metrics"])


def test_personalised_export_predicts_like_the_clients_own_model(mixed_run, tmp_path):
    run_dir, cfg = mixed_run
    client = trained_client(run_dir)
    out = export_run(run_dir, tmp_path / "client", adapter=client)
    ex = load_exported(out, device="cpu")
    assert list(ex.heads) == [client]
    ref, rt = reference_logits(cfg, run_dir, client, client)
    got, test = exported_logits(ex, cfg, client)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    glob, _ = reference_logits(cfg, run_dir, client, "global")
    assert not torch.allclose(glob, ref, atol=1e-4)  # the personalised adapter is another model
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["adapter"]["kind"] == "client" and manifest["adapter"]["client"] == client
    metrics = classification_metrics(got, rt.test.targets, rt.test.answer_types, task=rt.task)
    assert metrics == pytest.approx(manifest["heads"][client]["metrics"])
    # predict(): vocabulary strings, sorted scores = softmax of the logits (single-head default)
    answers = predict(ex, test[0].image, test[0].text, top_k=3)
    p = torch.softmax(ref[0], dim=0)
    order = torch.argsort(p, descending=True)[:3]
    assert [a for a, _ in answers] == [rt.space.labels[int(i)] for i in order]
    assert [s for _, s in answers] == pytest.approx([float(p[i]) for i in order], abs=1e-5)


def test_multilabel_predict_returns_labels_above_the_threshold(mixed_run, tmp_path):
    run_dir, cfg = mixed_run
    ex = load_exported(export_run(run_dir, tmp_path / "g"), device="cpu")
    name = next(n for n, h in ex.heads.items() if h.task == "multilabel")
    got, test = exported_logits(ex, cfg, name)
    p = torch.sigmoid(got[0])
    everything = predict(ex, test[0].image, test[0].text, head=name, threshold=0.0)
    assert [s for _, s in everything] == pytest.approx(sorted((float(x) for x in p), reverse=True),
                                                       abs=1e-5)  # one sample vs a padded batch
    cut = (everything[1][1] + everything[2][1]) / 2  # between the 2nd and 3rd score
    above = predict(ex, test[0].image, test[0].text, head=name, threshold=cut)
    labels = ex.heads[name].labels
    top2 = {labels[int(j)] for j in torch.argsort(p, descending=True)[:2]}
    assert {a for a, _ in above} == top2 and [a for a, _ in above] == [a for a, _ in everything[:2]]


def test_manifest_describes_backbone_adapter_heads_and_provenance(mixed_run, tmp_path):
    run_dir, cfg = mixed_run
    out = export_run(run_dir, tmp_path / "m")
    m = json.loads((out / MANIFEST).read_text())
    assert (m["format"], m["format_version"]) == ("fedpia-adapter", 1)
    assert m["backbone"]["name"] == "minilm-vl" and m["backbone"]["pretrained"] == "tiny"
    assert m["model_config"]["peft"] == "houlsby" and m["model_config"]["adapter_width"] == 8
    assert m["adapter"]["round"] == 2 and set(m["adapter"]["widths"].values()) == {8}
    assert m["privacy"] is None and m["peft"] is None
    prov = m["provenance"]
    assert (prov["strategy"], prov["setting"], prov["seed"], prov["run_status"]) == (
        "fedpia", "t5-synthetic", 1, "completed")
    results = json.loads((run_dir / "results.json").read_text())
    assert prov["trained_with"]["git_hash"] == results["provenance"]["git_hash"]
    assert prov["exported_with"]["versions"]["fedpia"]
    files = {p.relative_to(out).as_posix() for p in out.rglob("*.safetensors")}
    assert set(m["files"]) == files and "adapter.safetensors" in files
    for name, entry in m["heads"].items():
        vocab = json.loads((out / entry["vocabulary"]).read_text())
        assert vocab["name"] == name and len(vocab["labels"]) == entry["num_labels"]
    assert not any(p.name.startswith(".") for p in out.parent.iterdir())  # no temp folder left


def test_head_file_names_are_safe_and_unique():
    from fedpia.export.manifest import head_stems

    assert head_stems(["a/b", "a b", "ok-1.x", "../x"]) == {
        "a/b": "a_b", "a b": "a_b-2", "ok-1.x": "ok-1.x", "../x": "x"}
    assert np.all([s for s in head_stems(["", "."]).values()])


@pytest.mark.parametrize("peft", ["parallel", "compacter", "layernorm", "bias", "classifier",
                                  "full", "prompt"])
def test_every_peft_method_round_trips(peft, tmp_path):
    from fedpia.experiments import ExperimentConfig, run_experiment

    width = {"adapter_width": 8} if peft in ("parallel", "compacter") else {}
    cfg = ExperimentConfig.from_dict({
        "name": peft, "setting": "synthetic",
        "setting_options": {"n_train": 8, "n_val": 2, "n_test": 4, "modalities": ["x-ray"]},
        "model": {"pretrained": "tiny", "peft": peft, **width}, "strategy": "fedavg",
        "sim": {"rounds": 1}, "train": {"lr": 5e-3, "batch_size": 8, "local_steps": 1}})
    run_experiment(cfg, out_dir=tmp_path / "run")
    ex = load_exported(export_run(tmp_path / "run", tmp_path / "x"), device="cpu")
    client = next(iter(ex.heads))
    ref, _ = reference_logits(cfg, tmp_path / "run", client, "global")
    torch.testing.assert_close(exported_logits(ex, cfg, client)[0], ref, atol=1e-5, rtol=1e-5)
    assert ex.manifest["adapter"]["peft"] == peft and ex.manifest["peft"] is None
