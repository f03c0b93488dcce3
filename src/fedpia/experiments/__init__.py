"""Typed config, presets, method variants, runner, comparisons and reports."""

from fedpia.experiments.compare import run_compare
from fedpia.experiments.config import ExperimentConfig
from fedpia.experiments.loggers import RunLogger
from fedpia.experiments.presets import PRESETS, Preset, get_preset, register_preset
from fedpia.experiments.runner import provenance, run_experiment, summarize
from fedpia.experiments.variants import VARIANTS, Variant, apply_variant

__all__ = [
    "PRESETS",
    "VARIANTS",
    "ExperimentConfig",
    "Preset",
    "RunLogger",
    "Variant",
    "apply_variant",
    "get_preset",
    "provenance",
    "register_preset",
    "run_compare",
    "run_experiment",
    "summarize",
]
