"""Take a trained adapter out of a run, and use it: export, load, predict.

``export_run(run_dir, out, adapter="global")`` writes a self-describing folder from a run's last
checkpoint: ``fedpia_adapter.json`` (backbone + model config, PEFT method and widths, tasks,
which adapter, the run's metrics, DP ledger, provenance, sha256 of every tensor file),
``adapter.safetensors`` (the trainable state; the backbone's own weights are rebuilt from their
config and verified by fingerprint), ``heads/<client>.safetensors|json`` (each head with its
label / answer vocabulary) and, for LoRA, a ``peft/`` folder that
``peft.PeftModel.from_pretrained`` loads onto the matching transformers model
(:func:`hf_base_model`). ``load_exported(dir) -> ExportedModel`` and ``predict(exported, image,
question) -> [(label, score), ...]`` run it on new images. See docs/export.md.
"""

from fedpia.export.loader import ExportedHead, ExportedModel, load_exported, predict
from fedpia.export.manifest import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    MULTILABEL_THRESHOLD,
    backbone_fingerprint,
    read_manifest,
)
from fedpia.export.peft_format import hf_base_model, peft_lora_state
from fedpia.export.source import ExportError, read_run, select_adapter
from fedpia.export.writer import export_run

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "MULTILABEL_THRESHOLD",
    "ExportError",
    "ExportedHead",
    "ExportedModel",
    "backbone_fingerprint",
    "export_run",
    "hf_base_model",
    "load_exported",
    "peft_lora_state",
    "predict",
    "read_manifest",
    "read_run",
    "select_adapter",
]
