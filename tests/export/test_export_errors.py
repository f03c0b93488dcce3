"""Refusals with clear errors (library: ExportError; CLI: exit 2), and the CLI round trip."""

from __future__ import annotations

import json
import shutil

import pytest
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from fedpia.cli import app
from fedpia.export import MANIFEST, ExportError, export_run, load_exported
from fedpia.sim import load_checkpoint


@pytest.fixture(scope="module")
def global_export(mixed_run, tmp_path_factory):
    return export_run(mixed_run[0], tmp_path_factory.mktemp("ge") / "export")


def _copy_run(run_dir, dst, edit_meta=None):
    shutil.copytree(run_dir, dst)
    if edit_meta is not None:
        path = dst / "checkpoints" / "checkpoint" / "meta.json"
        meta = json.loads(path.read_text())
        edit_meta(meta)
        path.write_text(json.dumps(meta))
    return dst


def test_folders_that_are_not_exportable_runs(mixed_run, tmp_path):
    run_dir, cfg = mixed_run
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match="not a fedpia run folder"):
        export_run(tmp_path / "empty", tmp_path / "o")
    with pytest.raises(ExportError, match="does not exist"):
        export_run(tmp_path / "missing", tmp_path / "o")
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shutil.copy(run_dir / "config.json", fresh / "config.json")
    with pytest.raises(ExportError, match="no checkpoint under .*has not completed a round"):
        export_run(fresh, tmp_path / "o")
    raw = json.loads((run_dir / "config.json").read_text())
    (fresh / "config.json").write_text(json.dumps({**raw, "engine": "flower"}))
    with pytest.raises(ExportError, match="Flower engine keeps no fedpia checkpoints"):
        export_run(fresh, tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_unknown_and_untrained_clients(mixed_run, tmp_path):
    run_dir, _ = mixed_run
    _, clients, _ = load_checkpoint(run_dir / "checkpoints")
    untrained = sorted(n for n, c in clients.items() if c.adapter is None)
    assert untrained, "the fixture run should leave a client unsampled"
    with pytest.raises(ExportError, match=r"unknown client 'nope'.*'global' or one of \['client0"):
        export_run(run_dir, tmp_path / "o", adapter="nope")
    with pytest.raises(ExportError, match=f"client '{untrained[0]}' has not trained yet"):
        export_run(run_dir, tmp_path / "o", adapter=untrained[0])
    assert not (tmp_path / "o").exists() and list(tmp_path.iterdir()) == []  # no temp folder left


def test_checkpoint_from_before_export_says_what_is_missing(mixed_run, tmp_path):
    old = _copy_run(mixed_run[0], tmp_path / "old", lambda meta: meta.pop("heads"))
    with pytest.raises(ExportError, match="no head vocabularies.*Re-run the experiment"):
        export_run(old, tmp_path / "o")


def test_dp_run_without_its_privacy_report_is_refused(lora_dp_run, tmp_path):
    def drop(meta):
        meta["history"][-1]["privacy"] = None

    bad = _copy_run(lora_dp_run[0], tmp_path / "dp", drop)
    with pytest.raises(ExportError, match="DP run .*no privacy report.*epsilon, delta"):
        export_run(bad, tmp_path / "o")


def test_occupied_out_folder(mixed_run, tmp_path):
    run_dir, _ = mixed_run
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not empty"):
        export_run(run_dir, other)
    with pytest.raises(ExportError, match="holds no earlier export.*not replacing"):
        export_run(run_dir, other, force=True)
    assert (other / "notes.txt").read_text() == "keep me"
    out = export_run(run_dir, tmp_path / "e")
    with pytest.raises(ExportError, match="not empty"):
        export_run(run_dir, out)
    assert json.loads((out / MANIFEST).read_text())["adapter"]["kind"] == "global"
    export_run(run_dir, out, adapter="client0-x-ray-vqa", force=True)
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["adapter"]["client"] == "client0-x-ray-vqa" and list(manifest["heads"]) == [
        "client0-x-ray-vqa"]
    assert len(list((out / "heads").iterdir())) == 2  # the earlier export's heads are gone
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp / old folder


def test_load_refuses_changed_files_other_weights_and_newer_formats(global_export, tmp_path):
    with pytest.raises(ExportError, match="not a fedpia export folder"):
        load_exported(tmp_path)
    bad = shutil.copytree(global_export, tmp_path / "tampered")
    state = load_file(str(bad / "adapter.safetensors"))
    key = sorted(state)[0]
    state[key] = state[key] + 1.0
    save_file(state, str(bad / "adapter.safetensors"))
    with pytest.raises(ExportError, match="adapter.safetensors has sha256 .* changed or corrupted"):
        load_exported(bad, device="cpu")
    other = shutil.copytree(global_export, tmp_path / "other")
    manifest = json.loads((other / MANIFEST).read_text())
    (other / MANIFEST).write_text(json.dumps({**manifest, "backbone": {
        **manifest["backbone"], "fingerprint": "0" * 64}}))
    with pytest.raises(ExportError, match="fingerprint .* other weights"):
        load_exported(other, device="cpu")
    (other / MANIFEST).write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(ExportError, match="format_version 99.*upgrade fedpia"):
        load_exported(other, device="cpu")


def test_several_heads_need_a_choice(global_export):
    ex = load_exported(global_export, device="cpu")
    with pytest.raises(ExportError, match=r"holds 4 heads .*--head.*client0-x-ray-vqa"):
        ex.head()
    with pytest.raises(ExportError, match="no head 'x'"):
        ex.head("x")


def test_cli_export_and_predict_print_vocabulary_strings(mixed_run, tmp_path, shared_data):
    run_dir, _ = mixed_run
    runner = CliRunner()
    out = tmp_path / "cli"
    res = runner.invoke(app, ["export", str(run_dir), "--out", str(out), "--adapter",
                              "client0-x-ray-vqa"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    image = sorted((shared_data / "vqa_rad" / "VQA_RAD Image Folder").glob("*.jpg"))[0]
    res = runner.invoke(app, ["predict", str(out), "--image", str(image), "--question",
                              "is there a lesion?", "--top-k", "3"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    labels = json.loads((out / "heads" / "client0-x-ray-vqa.json").read_text())["labels"]
    rows = [line for line in res.output.splitlines() if line.startswith("│")]
    assert len(rows) == 3 and all(any(f"│ {lab} " in r for lab in labels) for r in rows)
    scores = [float(r.split("│")[2]) for r in rows]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0001
    for args, message in ((["export", str(run_dir), "--out", str(out)], "not empty"),
                          (["export", str(run_dir), "--out", str(tmp_path / "x"), "--adapter", "nope"],
                           "unknown client"),
                          (["predict", str(out), "--image", str(tmp_path / "no.png"), "--question", "q"],
                           "image file not found")):
        res = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert res.exit_code == 2 and message in res.output, res.output


def test_cli_predict_multilabel_shows_labels_above_the_threshold(global_export, shared_data):
    runner = CliRunner()
    image = sorted((shared_data / "covid_chestxray_subset" / "images").glob("*.jpg"))[0]
    base = ["predict", str(global_export), "--image", str(image), "--question",
            "X-RAY of the chest. Indication: cough.", "--head", "client4-x-ray-multilabel"]
    res = runner.invoke(app, [*base, "--threshold", "0"], env={"COLUMNS": "200"})
    labels = json.loads((global_export / "heads" / "client4-x-ray-multilabel.json").read_text())["labels"]
    rows = [line for line in res.output.splitlines() if line.startswith("│")]
    assert res.exit_code == 0 and len(rows) == len(labels), res.output  # every label scores >= 0
    res = runner.invoke(app, [*base, "--threshold", "1.0"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "no label scores 1.0 or more (highest: " in res.output, res.output
    res = runner.invoke(app, base[:-2], env={"COLUMNS": "200"})
    assert res.exit_code == 2 and "choose one with head= (--head)" in res.output
