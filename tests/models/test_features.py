"""Image features computed once: in-call de-duplication, the on-disk cache (hits, checked reads,
atomic writes, keys) and the image digest."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from fedpia.models.features import FeatureCache, FeatureExtractor, cache_root, image_digest
from fedpia.models.vision import TinyTower


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDPIA_CACHE_DIR", str(tmp_path))
    return tmp_path


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (28, 28), dtype=np.uint8) for _ in range(n)]


def _files(root):
    return sorted(p for p in root.rglob("*.safetensors"))


def test_each_image_runs_once_and_the_disk_cache_is_reused(cache_dir):
    imgs = _images(3)
    ext = FeatureExtractor(TinyTower(seed=0))
    first = ext([imgs[0], imgs[1], imgs[0].copy(), imgs[2]])  # a duplicate (equal pixels)
    assert first.shape == (4, 16, 16) and first.dtype == torch.float16
    assert ext.computed == 3 and torch.equal(first[0], first[2])
    assert len(_files(cache_dir)) == 3 and not list(cache_dir.rglob("*.tmp"))
    fresh = FeatureExtractor(TinyTower(seed=0))  # another process / run: all hits
    again = fresh(imgs)
    assert fresh.computed == 0 and torch.equal(again, first[[0, 1, 3]])
    # the tower really is what the cache stores (float16 of the fp32 output)
    with torch.no_grad():
        direct = fresh._run(imgs[:1])[0]
    assert torch.equal(direct, first[0])


def test_another_tower_or_precision_never_reads_these_features(cache_dir):
    imgs = _images(2)
    a = FeatureExtractor(TinyTower(seed=0))
    fa = a(imgs)
    b = FeatureExtractor(TinyTower(seed=1))  # other weights -> other ident -> other folder
    fb = b(imgs)
    assert b.computed == 2 and not torch.equal(fa, fb)
    c = FeatureExtractor(TinyTower(seed=0))
    c.place(torch.device("cpu"), "bf16")
    c(imgs)
    assert c.computed == 2  # bf16 features are cached separately from fp32 ones
    assert len({p.parent.parent for p in _files(cache_dir)}) == 3


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "foreign"])
def test_a_damaged_cache_file_is_detected_recomputed_and_rewritten(damage, cache_dir, caplog):
    imgs = _images(1)
    ext = FeatureExtractor(TinyTower(seed=0))
    good = ext(imgs)
    (path,) = _files(cache_dir)
    raw = path.read_bytes()
    if damage == "flip":  # same length, one tensor byte changed: only the checksum sees it
        path.write_bytes(raw[:-3] + bytes([raw[-3] ^ 0xFF]) + raw[-2:])
    elif damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a safetensors file")
    else:  # a valid file of another image under this image's name
        other = FeatureExtractor(TinyTower(seed=0))
        other(_images(1, seed=9))
        donor = next(p for p in _files(cache_dir) if p != path)
        path.write_bytes(donor.read_bytes())
    fresh = FeatureExtractor(TinyTower(seed=0))
    with caplog.at_level(logging.WARNING, logger="fedpia.models.features"):
        again = fresh(imgs)
    assert fresh.computed == 1 and torch.equal(again, good)
    assert "recomputing" in caplog.text
    cache = FeatureCache(cache_root(), fresh.key)
    assert torch.equal(cache.get(image_digest(imgs[0]), fresh.shape), good[0])  # rewritten, valid


def test_cache_off_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDPIA_CACHE_DIR", "off")
    assert cache_root() is None
    ext = FeatureExtractor(TinyTower(seed=0))
    ext(_images(2))
    ext(_images(2))
    assert ext.computed == 4 and not _files(tmp_path)


def test_image_digest_is_about_the_bytes(tmp_path):
    a, b = _images(2)
    assert image_digest(a) == image_digest(a.copy()) != image_digest(b)
    assert image_digest(a) != image_digest(a.astype(np.int16))  # dtype is part of the bytes
    assert image_digest(Image.fromarray(a)) == image_digest(Image.fromarray(a.copy()))
    png = tmp_path / "a.png"
    Image.fromarray(a).save(png)
    assert image_digest(png) == image_digest(str(png)) != image_digest(Image.fromarray(a))
