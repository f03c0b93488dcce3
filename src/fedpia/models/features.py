"""Image features computed once per image: a frozen tower behind an on-disk cache.

:class:`FeatureExtractor` maps images to tokens [B, T, C] (float16) with an
:class:`~fedpia.models.vision.ImageTower`. Each distinct image is run through the tower at most
once per call; across calls and processes the :class:`FeatureCache` keeps the result on disk, so
hundreds of benchmark runs over the same data compute each image's features once.

Cache key = sha256 of the image's decoded bytes (:func:`image_digest`) under a folder named by
the sha256 of the extractor identity: the tower's ``ident`` (weights sha256 or seed, layer,
image size, grid), the preprocessing version and the autocast precision. Location:
``$FEDPIA_CACHE_DIR/image-features`` (default ``~/.cache/fedpia``; ``FEDPIA_CACHE_DIR=off``
disables the disk cache). Safety: files are written to a temporary name and renamed
(``os.replace``, atomic on POSIX), and every read is checked (safetensors header, extractor and
image digests in the metadata, shape [T, C], float16, finite values, sha256 of the tensor bytes);
a file that fails a check is logged, recomputed and overwritten.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fedpia.device import autocast

from .processors import image_tensor, to_pil_rgb
from .vision import ImageTower

log = logging.getLogger(__name__)

PREPROCESS_VERSION = "pil-rgb-bicubic-v1"
_OFF = ("", "0", "off", "none", "false")


def cache_root() -> Path | None:
    """Root of the on-disk caches (``$FEDPIA_CACHE_DIR`` or ``~/.cache/fedpia``); None = off."""
    env = os.environ.get("FEDPIA_CACHE_DIR")
    if env is not None:
        return None if env.strip().lower() in _OFF else Path(env).expanduser()
    return Path.home() / ".cache" / "fedpia"


def image_digest(image) -> str:
    """sha256 of an image's bytes: a file's bytes for a path, else mode/size/pixels (PIL) or
    dtype/shape/bytes (array)."""
    h = hashlib.sha256()
    if isinstance(image, (str, Path)):
        h.update(b"file:" + Path(image).read_bytes())
    elif isinstance(image, Image.Image):
        h.update(f"pil:{image.mode}:{image.size}:".encode() + image.tobytes())
    else:
        arr = np.ascontiguousarray(image.detach().cpu().numpy() if torch.is_tensor(image) else image)
        h.update(f"array:{arr.dtype.str}:{arr.shape}:".encode() + arr.tobytes())
    return h.hexdigest()


class FeatureCache:
    """One folder of ``<digest>.safetensors`` files for one extractor identity ``key``."""

    def __init__(self, root: Path, key: str) -> None:
        self.key = key
        self.dir = Path(root) / "image-features" / hashlib.sha256(key.encode()).hexdigest()[:24]

    def _path(self, digest: str) -> Path:
        return self.dir / digest[:2] / f"{digest}.safetensors"

    def get(self, digest: str, shape: tuple[int, int]) -> torch.Tensor | None:
        """The cached [T, C] float16 tokens, or None when absent or failing a check."""
        from safetensors import safe_open

        path = self._path(digest)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), "pt") as fh:
                meta = fh.metadata() or {}
                t = fh.get_tensor("features")
            ok = (meta.get("extractor") == self.key and meta.get("image") == digest
                  and tuple(t.shape) == tuple(shape) and t.dtype == torch.float16
                  and bool(torch.isfinite(t).all()) and meta.get("sha256") == _tensor_sha(t))
        except Exception as exc:  # unreadable / truncated file
            log.warning("feature cache: unreadable %s (%s); recomputing", path, exc)
            return None
        if not ok:
            log.warning("feature cache: %s failed its check; recomputing", path)
            return None
        return t

    def put(self, digest: str, tokens: torch.Tensor) -> None:
        """Atomically write [T, C] float16 tokens (temp file + rename)."""
        from safetensors.torch import save_file

        path = self._path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        t = tokens.detach().to("cpu", torch.float16).contiguous()
        meta = {"extractor": self.key, "image": digest, "sha256": _tensor_sha(t)}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        try:
            save_file({"features": t}, str(tmp), metadata=meta)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def _tensor_sha(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()


class FeatureExtractor:
    """``extractor(images) -> Tensor[B, T, C]`` float16 image tokens (see module docstring).

    ``device`` / ``precision`` (set by :func:`fedpia.device.place`) select where and in which
    autocast dtype the tower runs; ``batch`` images go through the tower at a time.
    """

    def __init__(self, tower: ImageTower, *, batch: int = 64) -> None:
        self.tower, self.batch = tower, batch
        self.device, self.precision = torch.device("cpu"), "fp32"
        self.computed = 0  # images run through the tower (tests, benchmarks)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.tower.n_tokens, self.tower.feature_dim)

    @property
    def key(self) -> str:
        return f"{self.tower.ident}|{PREPROCESS_VERSION}|{self.precision}"

    def place(self, device: torch.device, precision: str) -> None:
        self.tower.to(device)
        self.device, self.precision = torch.device(device), precision

    def __call__(self, images: Sequence) -> torch.Tensor:
        digests = [image_digest(im) for im in images]
        root = cache_root()
        cache = FeatureCache(root, self.key) if root is not None else None
        found: dict[str, torch.Tensor] = {}
        todo: dict[str, object] = {}
        for d, im in zip(digests, images, strict=True):
            if d in found or d in todo:
                continue
            hit = cache.get(d, self.shape) if cache is not None else None
            if hit is not None:
                found[d] = hit
            else:
                todo[d] = im
        for d, tokens in zip(todo, self._run(list(todo.values())), strict=True):
            found[d] = tokens
            if cache is not None:
                cache.put(d, tokens)
        return torch.stack([found[d] for d in digests])

    def _run(self, images: list) -> list[torch.Tensor]:
        """Tower outputs for ``images`` (float16, CPU), ``self.batch`` at a time."""
        out: list[torch.Tensor] = []
        size, mean_std = self.tower.image_size, self.tower.mean_std
        for s in range(0, len(images), self.batch):
            pix = torch.stack([image_tensor(to_pil_rgb(im), size=size, mean_std=mean_std)
                               for im in images[s : s + self.batch]])
            with torch.inference_mode(), autocast(self.device, self.precision):
                tokens = self.tower(pix.to(self.device))
            out.extend(tokens.float().to("cpu", torch.float16).unbind(0))
        self.computed += len(images)
        return out
