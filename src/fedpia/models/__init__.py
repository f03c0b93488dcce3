"""Backbones (transformers), PEFT methods, heads and offline processors.

Contract (docs/architecture.md)::

    model = build_model(ModelConfig(backbone="vilt", pretrained=None, peft="houlsby"))
    batch = model.processor(images, texts)        # dict[str, Tensor]
    feats = model(batch)                          # [B, hidden]
    state = model.trainable_state()               # named clones of the trainable parameters
    model.load_trainable_state(state)             # exact; resizes adapters to incoming widths
    head = build_head(task, model.hidden_size, n_classes, seed=seed)
    acts = adapter_activations(model, batch)      # {group: [n_samples, width]}
    xs = adapter_inputs(model, batch)             # {group: [n_samples, d_in]} pooled inputs
    acts = activations_from_inputs(model, xs, state)  # the same, for any state, no forward
"""

from .activations import (
    InputRecorder,
    activations_from_inputs,
    adapter_activations,
    adapter_inputs,
)
from .backbones import BACKBONES, Backbone, LayerFamily
from .config import BACKBONE_NAMES, PEFT_NAMES, ModelConfig
from .heads import TASKS, build_head, loss_fn
from .model import (
    FedModel,
    build_model,
    load_state_file,
    save_trainable_state,
    set_base_delta,
    set_frozen_companion,
)
from .peft_methods import ALIGNABLE, BOTTLENECK, PEFT_METHODS
from .processors import VLProcessor, bert_tokenizer, to_pil_rgb

__all__ = [
    "ALIGNABLE",
    "BACKBONES",
    "BACKBONE_NAMES",
    "BOTTLENECK",
    "Backbone",
    "FedModel",
    "InputRecorder",
    "LayerFamily",
    "ModelConfig",
    "PEFT_METHODS",
    "PEFT_NAMES",
    "TASKS",
    "VLProcessor",
    "activations_from_inputs",
    "adapter_activations",
    "adapter_inputs",
    "bert_tokenizer",
    "build_head",
    "build_model",
    "load_state_file",
    "loss_fn",
    "save_trainable_state",
    "set_base_delta",
    "set_frozen_companion",
    "to_pil_rgb",
]
