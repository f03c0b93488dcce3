"""FedDAT mutual distillation loss and task-head averaging."""

from __future__ import annotations

import math

import pytest
import torch

from fedpia.aggregation import average_heads_by_task, mutual_distillation_loss

KL_HAND = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)


@pytest.mark.parametrize("kind", ["multiclass", "multilabel"])
def test_distillation_zero_for_identical_logits(kind):
    logits = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
    loss = mutual_distillation_loss(logits.clone(), logits, kind=kind, temperature=2.0)
    assert abs(loss.item()) < 1e-6


def test_multiclass_two_class_hand_value_and_gradient():
    # teacher p = softmax(ln 3, 0) = (0.75, 0.25); student q = (0.5, 0.5)
    student = torch.zeros(1, 2, dtype=torch.float64, requires_grad=True)
    teacher = torch.tensor([[math.log(3.0), 0.0]], dtype=torch.float64, requires_grad=True)
    loss = mutual_distillation_loss(student, teacher)
    assert loss.item() == pytest.approx(KL_HAND, abs=1e-12)
    loss.backward()
    # d KL / d student_logits = q - p
    torch.testing.assert_close(student.grad, torch.tensor([[-0.25, 0.25]], dtype=torch.float64))
    assert teacher.grad is None  # teacher is a detached target


def test_multiclass_temperature_scales_by_t_squared():
    student = torch.zeros(1, 2, dtype=torch.float64)
    teacher = torch.tensor([[2 * math.log(3.0), 0.0]], dtype=torch.float64)
    loss = mutual_distillation_loss(student, teacher, temperature=2.0)
    assert loss.item() == pytest.approx(4 * KL_HAND, abs=1e-12)


def test_multilabel_bernoulli_kl_hand_value():
    # per label: p = sigmoid(ln 3) = 0.75, q = sigmoid(0) = 0.5; two labels summed, batch mean
    student = torch.zeros(2, 2, dtype=torch.float64)
    teacher = torch.full((2, 2), math.log(3.0), dtype=torch.float64)
    loss = mutual_distillation_loss(student, teacher, kind="multilabel")
    assert loss.item() == pytest.approx(2 * KL_HAND, abs=1e-12)
    # = BCE with soft targets minus the targets' entropy
    p = torch.full((2, 2), 0.75, dtype=torch.float64)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(student, p, reduction="none")
    ent = -(p * p.log() + (1 - p) * (1 - p).log())
    assert loss.item() == pytest.approx((bce - ent).sum(-1).mean().item(), abs=1e-12)


@pytest.mark.parametrize(
    ("s", "t", "kw", "match"),
    [
        ((2, 3), (2, 4), {}, "equal shapes"),
        ((3,), (3,), {}, r"\[B, C\]"),
        ((2, 3), (2, 3), {"kind": "ranking"}, "kind"),
        ((2, 3), (2, 3), {"temperature": 0.0}, "temperature"),
        ((0, 3), (0, 3), {}, "empty batch"),
    ],
)
def test_distillation_failures(s, t, kw, match):
    with pytest.raises(ValueError, match=match):
        mutual_distillation_loss(torch.zeros(s), torch.zeros(t), **kw)


def test_average_heads_by_task_groups():
    heads = [
        {"w": torch.tensor([0.0, 4.0])},
        {"w": torch.tensor([7.0, 7.0, 7.0])},  # different task: different shape is fine
        {"w": torch.tensor([4.0, 0.0])},
        {"w": torch.tensor([1.0, 1.0])},
    ]
    tasks = [("vqa", ("yes", "no")), "cls3", ("vqa", ("yes", "no")), "cls2"]
    out = average_heads_by_task(heads, tasks, [1, 1, 3, 1])
    torch.testing.assert_close(out[0]["w"], torch.tensor([3.0, 1.0]))  # 0.25*h0 + 0.75*h2
    torch.testing.assert_close(out[2]["w"], torch.tensor([3.0, 1.0]))
    assert torch.equal(out[1]["w"], heads[1]["w"]) and out[1]["w"] is not heads[1]["w"]
    assert torch.equal(out[3]["w"], heads[3]["w"])
    assert out[0]["w"] is not out[2]["w"]  # independent copies per client
    assert heads[0]["w"].tolist() == [0.0, 4.0]


def test_average_heads_by_task_failures():
    h = {"w": torch.zeros(2)}
    with pytest.raises(ValueError, match="task signatures"):
        average_heads_by_task([h, h], ["a"], None)
    with pytest.raises(ValueError, match=r"clients \[0, 1\].*'w'"):
        average_heads_by_task([h, {"w": torch.zeros(3)}], ["a", "a"], None)
    with pytest.raises(ValueError, match="weight 0"):
        average_heads_by_task([h, h, h], ["a", "a", "b"], [0, 0, 1])
