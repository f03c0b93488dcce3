"""Fixtures for the alignment-core tests (factories live in align_helpers.py)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)
