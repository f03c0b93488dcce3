"""Evaluation metrics: VQA accuracy (open / closed / overall), accuracy, multi-label F1 and AUC."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from fedpia.client.encode import EncodedSplit
from fedpia.device import autocast, model_device, model_precision


@torch.no_grad()
def predict(
    model: nn.Module, head: nn.Module, data: EncodedSplit, *, batch: int = 64
) -> torch.Tensor:
    """Logits [N, C] (float32, CPU) of ``head(model(x))`` over the whole split (eval mode, no
    grad), on the model's device and autocast precision (the split and head move there once)."""
    model.eval()
    head.eval()
    dev = model_device(model)
    head.to(dev)
    data = data.to(dev)
    out = []
    with autocast(dev, model_precision(model)):
        for s in range(0, len(data), batch):
            out.append(head(model(data.batch(range(s, min(s + batch, len(data)))))).float().cpu())
    return torch.cat(out, dim=0)


def classification_metrics(
    logits: torch.Tensor, targets: torch.Tensor, answer_types: Sequence[str | None], *, task: str
) -> dict[str, float]:
    """VQA/multiclass: accuracy (target -1 = unseen answer counts as wrong); for VQA also
    accuracy restricted to open and closed questions. Multilabel: see :func:`multilabel_metrics`."""
    if task == "multilabel":
        return multilabel_metrics(torch.sigmoid(logits).cpu().numpy(), targets.cpu().numpy())
    correct = (logits.argmax(dim=1).cpu() == targets.cpu()).numpy()
    out = {"accuracy": float(correct.mean())}
    if task == "vqa":
        types = np.array([t or "" for t in answer_types])
        for kind in ("open", "closed"):
            mask = types == kind
            if mask.any():
                out[f"accuracy_{kind}"] = float(correct[mask].mean())
    return out


def multilabel_metrics(
    probs: np.ndarray, targets: np.ndarray, *, threshold: float = 0.5
) -> dict[str, float]:
    """Micro/macro F1 at ``threshold`` and macro ROC-AUC over labels with both classes present."""
    from sklearn.metrics import f1_score, roc_auc_score

    pred = (probs >= threshold).astype(int)
    y = targets.astype(int)
    out = {
        "f1_micro": float(f1_score(y, pred, average="micro", zero_division=0)),
        "f1_macro": float(f1_score(y, pred, average="macro", zero_division=0)),
    }
    both = [j for j in range(y.shape[1]) if 0 < y[:, j].sum() < y.shape[0]]
    if both:
        out["auc_macro"] = float(np.mean([roc_auc_score(y[:, j], probs[:, j]) for j in both]))
    return out


def primary_metric(task: str) -> str:
    """The headline number of a task: overall accuracy (VQA, multiclass) or micro F1."""
    return "f1_micro" if task == "multilabel" else "accuracy"
