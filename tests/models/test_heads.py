"""Heads and losses: shapes, closed-form losses, seeded init, failure paths."""

from __future__ import annotations

import math

import pytest
import torch

from fedpia.models import build_head, loss_fn


def test_head_shapes_and_seeded_init():
    h1, h2 = build_head("vqa", 32, 7, seed=3), build_head("vqa", 32, 7, seed=3)
    x = torch.randn(5, 32)
    assert h1(x).shape == (5, 7)
    assert all(torch.equal(a, b) for a, b in zip(h1.state_dict().values(), h2.state_dict().values(), strict=True))
    state = torch.random.get_rng_state()
    build_head("multilabel", 32, 4, seed=1)
    assert torch.equal(state, torch.random.get_rng_state())  # global RNG untouched


def test_losses_closed_form():
    zeros = torch.zeros(2, 4)
    ce = loss_fn("multiclass")(zeros, torch.tensor([0, 3]))
    assert math.isclose(ce.item(), math.log(4), rel_tol=1e-6)  # uniform softmax
    bce = loss_fn("multilabel")(zeros, torch.tensor([[1.0, 0, 0, 1], [0, 0, 0, 0]]))
    assert math.isclose(bce.item(), math.log(2), rel_tol=1e-6)  # sigmoid(0) = 1/2
    assert isinstance(loss_fn("vqa"), torch.nn.CrossEntropyLoss)


def test_bad_task_and_sizes_raise():
    with pytest.raises(ValueError, match="task="):
        build_head("detection", 32, 2, seed=0)
    with pytest.raises(ValueError, match="n_classes=0"):
        build_head("vqa", 32, 0, seed=0)
    with pytest.raises(ValueError, match="task="):
        loss_fn("regression")
