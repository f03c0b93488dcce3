"""Sample schema: :class:`Sample`, :class:`LabelSpace`, :class:`ClientSplit`, :class:`FederatedData`.

A sample is one (image, text) pair with a target:

* ``task="vqa"``: text = question, target = answer string (normalised, see :func:`normalize_answer`);
* ``task="multiclass"``: text = a prompt or report, target = one class name;
* ``task="multilabel"``: text = a report / clinical notes, target = tuple of label names.

Per-client answer pools / label sets are built from the client's *training* data only
(:meth:`LabelSpace.from_samples`); test answers unseen at training encode to ``-1`` (scored wrong).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from fedpia.data.errors import DataError

TASKS = ("vqa", "multiclass", "multilabel")
METRICS = ("vqa_accuracy", "f1", "accuracy")
METRIC_FOR_TASK = {"vqa": "vqa_accuracy", "multiclass": "accuracy", "multilabel": "f1"}
META_KEYS = ("dataset", "modality", "organ", "site", "answer_type", "split", "uid")
_WS = re.compile(r"\s+")


def normalize_answer(text: Any) -> str:
    """Lower-case, strip, collapse internal whitespace, strip trailing periods: ``" Yes. "`` → ``"yes"``."""
    s = _WS.sub(" ", str(text).strip().lower())
    return s.rstrip(".").strip()


@dataclass(frozen=True, eq=False)
class Sample:
    """One example. ``image`` is a PIL image, a uint8 array ``[H, W]`` / ``[H, W, 3]`` or a path
    (loaded lazily by :func:`load_image`). ``meta`` keys: dataset, modality, organ, site,
    answer_type ("open"/"closed"/None), split, uid (missing keys read as None)."""

    image: Any
    text: str
    task: str
    target: str | tuple[str, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"Sample.task must be one of {TASKS}, got {self.task!r}")
        if self.task == "multilabel":
            if isinstance(self.target, str) or not isinstance(self.target, Sequence):
                raise ValueError(f"multilabel Sample.target must be a tuple of str, got {self.target!r}")
            object.__setattr__(self, "target", tuple(str(t) for t in self.target))
        elif not isinstance(self.target, str):
            raise ValueError(f"{self.task} Sample.target must be a str, got {self.target!r}")
        meta = {k: None for k in META_KEYS} | dict(self.meta)
        object.__setattr__(self, "meta", MappingProxyType(meta))


def load_image(sample_or_image: Any) -> Image.Image:
    """Return a loaded PIL image from a :class:`Sample`, PIL image, array or path.

    Arrays: uint8 ``[H, W]`` (grey), ``[H, W, 3]`` (RGB); float arrays in [0, 1] are scaled by 255.
    A missing or corrupt file raises :class:`DataError` naming it.
    """
    img = sample_or_image.image if isinstance(sample_or_image, Sample) else sample_or_image
    if isinstance(img, Image.Image):
        return img
    if isinstance(img, np.ndarray):
        arr = img
        if arr.dtype != np.uint8:
            arr = np.clip(np.asarray(arr, dtype=np.float64) * 255.0, 0, 255).round().astype(np.uint8)
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if arr.ndim not in (2, 3):
            raise ValueError(f"image array must be [H, W] or [H, W, C], got shape {arr.shape}")
        return Image.fromarray(arr)
    if isinstance(img, str | Path):
        path = Path(img)
        if not path.is_file():
            raise DataError("image file not found", file=path)
        try:
            with Image.open(path) as im:
                im.load()
                return im.copy()
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise DataError(f"corrupt or unreadable image ({exc})", file=path) from exc
    raise TypeError(f"cannot load an image from {type(img).__name__}")


@dataclass(frozen=True)
class LabelSpace:
    """Sorted answer pool / label set of one client. ``encode`` maps a target to an index (``-1`` when
    unseen) or, for multilabel, to a float32 multi-hot vector of shape ``[len(labels)]`` (unseen
    labels ignored). ``decode`` inverts it (multilabel: labels whose score > ``threshold``)."""

    task: str
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"LabelSpace.task must be one of {TASKS}, got {self.task!r}")
        if list(self.labels) != sorted(set(self.labels)):
            raise ValueError("LabelSpace.labels must be sorted and unique")
        object.__setattr__(self, "_index", {lab: i for i, lab in enumerate(self.labels)})

    @classmethod
    def from_samples(cls, samples: Sequence[Sample], *, task: str | None = None) -> LabelSpace:
        samples = list(samples)
        if task is None:
            tasks = {s.task for s in samples}
            if len(tasks) != 1:
                raise ValueError(f"samples must share one task to build a LabelSpace, got {sorted(tasks)}")
            task = tasks.pop()
        pool: set[str] = set()
        for s in samples:
            pool.update(s.target if task == "multilabel" else (s.target,))
        if task == "vqa":
            pool = {normalize_answer(a) for a in pool}
        return cls(task=task, labels=tuple(sorted(pool)))

    def __len__(self) -> int:
        return len(self.labels)

    def encode(self, target: str | Sequence[str]) -> int | np.ndarray:
        index: dict[str, int] = self._index  # type: ignore[attr-defined]
        if self.task == "multilabel":
            vec = np.zeros(len(self.labels), dtype=np.float32)
            for lab in ((target,) if isinstance(target, str) else target):
                if lab in index:
                    vec[index[lab]] = 1.0
            return vec
        key = normalize_answer(target) if self.task == "vqa" else str(target)
        return index.get(key, -1)

    def decode(self, code: int | np.ndarray, *, threshold: float = 0.5) -> str | tuple[str, ...] | None:
        if self.task == "multilabel":
            scores = np.asarray(code).reshape(-1)
            return tuple(self.labels[i] for i in np.flatnonzero(scores > threshold))
        i = int(code)
        return self.labels[i] if 0 <= i < len(self.labels) else None


@dataclass(frozen=True)
class ClientSplit:
    """One client's data. All samples share ``task``. ``meta`` carries free-form provenance."""

    name: str
    task: str
    train: tuple[Sample, ...]
    val: tuple[Sample, ...]
    test: tuple[Sample, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"ClientSplit {self.name!r}: task must be one of {TASKS}, got {self.task!r}")
        for part in ("train", "val", "test"):
            samples = tuple(getattr(self, part))
            object.__setattr__(self, part, samples)
            bad = {s.task for s in samples} - {self.task}
            if bad:
                raise ValueError(f"ClientSplit {self.name!r}: {part} has samples of task {sorted(bad)}, "
                                 f"expected {self.task!r}")
        if not self.train:
            raise ValueError(f"ClientSplit {self.name!r}: empty train split")

    @property
    def metric(self) -> str:
        return METRIC_FOR_TASK[self.task]

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}

    def label_space(self) -> LabelSpace:
        return LabelSpace.from_samples(self.train, task=self.task)


@dataclass(frozen=True)
class FederatedData:
    """A task setting: ``clients`` and the headline ``metric`` (per-client metric: ``client.metric``)."""

    setting: str
    clients: tuple[ClientSplit, ...]
    metric: str
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "clients", tuple(self.clients))
        if self.metric not in METRICS:
            raise ValueError(f"FederatedData.metric must be one of {METRICS}, got {self.metric!r}")
        if not self.clients:
            raise ValueError(f"FederatedData {self.setting!r}: no clients")
        names = [c.name for c in self.clients]
        if len(set(names)) != len(names):
            raise ValueError(f"FederatedData {self.setting!r}: duplicate client names {names}")

    def client(self, name: str) -> ClientSplit:
        for c in self.clients:
            if c.name == name:
                return c
        raise KeyError(f"no client {name!r} in setting {self.setting!r}")


class SampleSet(Sequence):
    """What a loader returns: an immutable sequence of samples plus the :class:`LoadReport`."""

    def __init__(self, samples: Sequence[Sample], report: Any) -> None:
        self.samples = tuple(samples)
        self.report = report

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i):  # noqa: ANN001 - Sequence protocol
        return self.samples[i]

    def split(self, name: str) -> tuple[Sample, ...]:
        """Samples whose ``meta["split"] == name`` ("train", "val" or "test")."""
        return tuple(s for s in self.samples if s.meta["split"] == name)

    def __repr__(self) -> str:
        return f"SampleSet(n={len(self)}, report={self.report.summary()!r})"
