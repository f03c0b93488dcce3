"""Local training, evaluation and input caching for one client (pure of any FL engine)."""

from fedpia.client.encode import EncodedSplit, encode_split
from fedpia.client.metrics import (
    classification_metrics,
    multilabel_metrics,
    predict,
    primary_metric,
)
from fedpia.client.train import TrainConfig, round_lr, task_loss, train_local

__all__ = [
    "EncodedSplit",
    "TrainConfig",
    "classification_metrics",
    "encode_split",
    "multilabel_metrics",
    "predict",
    "primary_metric",
    "round_lr",
    "task_loss",
    "train_local",
]
