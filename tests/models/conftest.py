"""Fixtures for fedpia.models tests: real images (VQA-RAD JPEGs, MedMNIST arrays) + questions."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture(scope="session")
def real_inputs(shared_data):
    """(images, texts): 2 VQA-RAD JPEG paths with their questions, 1 grey BreastMNIST array
    (28x28 uint8) and 1 RGB RetinaMNIST array (28x28x3 uint8)."""
    root = shared_data / "vqa_rad"
    records = json.loads((root / "VQA_RAD Dataset Public.json").read_text())
    picked = [r for r in records if r["image_organ"].strip() in ("CHEST", "HEAD")][:2]
    images = [root / "VQA_RAD Image Folder" / r["image_name"] for r in picked]
    texts = [r["question"] for r in picked]
    breast = np.load(shared_data / "medmnist" / "breastmnist.npz")["train_images"][0]
    retina = np.load(shared_data / "medmnist" / "retinamnist.npz")["train_images"][0]
    assert breast.shape == (28, 28) and retina.shape == (28, 28, 3)
    return images + [breast, retina], texts + ["is this breast lesion malignant?",
                                               "what grade of diabetic retinopathy is shown?"]
