"""Task heads (client-local, outside the model's trainable state) and their losses.

- "vqa" / "multiclass": logits z in R^C over the client's answer pool / label set,
  loss = softmax cross-entropy  -log softmax(z)_y  (target: class index, int64 [B]).
- "multilabel": logits z in R^C, loss = mean BCE-with-logits over labels (target: multi-hot
  float [B, C]).
Head architecture (ViLT's VQA classifier): Linear(h, 2h) -> LayerNorm -> GELU -> Linear(2h, C).
"""

from __future__ import annotations

import torch
from torch import nn

TASKS = ("vqa", "multiclass", "multilabel")


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"task={task!r} not in allowed values {TASKS}")


def build_head(task: str, hidden: int, n_classes: int, *, seed: int) -> nn.Module:
    """Classifier head [B, hidden] -> logits [B, n_classes], initialised from ``seed`` (required:
    a default would silently give every client the same head; the global RNG is untouched)."""
    _check_task(task)
    if hidden < 1 or n_classes < 1:
        raise ValueError(f"build_head: hidden={hidden} and n_classes={n_classes} must be >= 1")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Linear(hidden, 2 * hidden),
            nn.LayerNorm(2 * hidden),
            nn.GELU(),
            nn.Linear(2 * hidden, n_classes),
        )


def loss_fn(task: str) -> nn.Module:
    """CrossEntropyLoss for "vqa"/"multiclass", BCEWithLogitsLoss for "multilabel"."""
    _check_task(task)
    return nn.BCEWithLogitsLoss() if task == "multilabel" else nn.CrossEntropyLoss()
