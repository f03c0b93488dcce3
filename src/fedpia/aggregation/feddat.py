r"""FedDAT mutual distillation (Chen et al. 2024, "FedDAT: An Approach for Foundation Model
Finetuning in Multi-Modal Heterogeneous Federated Learning", https://arxiv.org/abs/2308.12305).

FedDAT round (as implemented in fedpia; the paper's "Dual-Adapter Teacher" builds its teacher
from the client-specific adapter together with a frozen copy of the received global adapter —
see the paper for the exact composition):

1. The client receives the aggregated *shared* adapter and keeps its own *local* adapter (the
   teacher side) from the previous round.
2. The shared adapter is trained with ``CE(student) + mutual_distillation_loss(student,
   teacher)``; the local adapter with ``CE(teacher) + mutual_distillation_loss(teacher,
   student)`` (mutual: each side distils towards the other, the target side detached).
3. Only the shared adapter is uploaded and FedAvg'd; the local adapter never leaves the client.

Loss: multiclass :math:`T^2\,\mathrm{KL}(\mathrm{softmax}(t/T)\,\|\,\mathrm{softmax}(s/T))`
averaged over the batch; multilabel: the same with per-label Bernoulli distributions
:math:`\sigma(t/T)`, :math:`\sigma(s/T)` (= BCE with soft targets minus the target entropy, so it
is 0 for identical logits), summed over labels and averaged over the batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

DISTILL_KINDS = ("multiclass", "multilabel")


def mutual_distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    kind: str = "multiclass",
) -> torch.Tensor:
    """Distillation loss of ``student_logits`` [B, C] towards ``teacher_logits`` [B, C]
    (teacher detached). Returns a 0-dim tensor >= 0, exactly 0 for identical logits up to
    rounding. See the module docstring for the formulas."""
    if kind not in DISTILL_KINDS:
        raise ValueError(f"kind must be one of {DISTILL_KINDS}, got {kind!r}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be finite and > 0, got {temperature}")
    if student_logits.shape != teacher_logits.shape or student_logits.ndim != 2:
        raise ValueError(
            f"logits must both be [B, C] with equal shapes, got student "
            f"{tuple(student_logits.shape)} and teacher {tuple(teacher_logits.shape)}"
        )
    if student_logits.shape[0] == 0:
        raise ValueError("empty batch")
    s = student_logits / temperature
    t = teacher_logits.detach() / temperature
    if kind == "multiclass":
        log_q = F.log_softmax(s, dim=-1)
        log_p = F.log_softmax(t, dim=-1)
        per_sample = (log_p.exp() * (log_p - log_q)).sum(dim=-1)
    else:
        p = torch.sigmoid(t)
        per_label = p * (F.logsigmoid(t) - F.logsigmoid(s)) + (1 - p) * (
            F.logsigmoid(-t) - F.logsigmoid(-s)
        )
        per_sample = per_label.sum(dim=-1)
    return per_sample.mean() * temperature**2
