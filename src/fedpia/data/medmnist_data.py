"""MedMNIST loader (Yang et al., Sci. Data 2023; https://medmnist.com/) reading the official npz.

We read ``<root>/<flag>.npz`` (``<flag>_<size>.npz`` for size != 28) with numpy ourselves:
``medmnist``'s Dataset asserts the official sample counts, which tiny test fixtures break.
Class names come from ``medmnist.INFO[flag]["label"]`` (imported lazily; a small built-in copy is
used when medmnist is absent). Arrays: ``<split>_images`` uint8 ``[N, H, W]`` or ``[N, H, W, 3]``,
``<split>_labels`` ``[N, 1]`` (multi-class) or ``[N, L]`` (multi-label).

Two views of the same images: ``as_task="multiclass"`` (target = class name) or ``as_task="vqa"``
(templated question, answer derived from the label, see ``TEMPLATES``).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from fedpia.data.errors import DataError, LoadReport, check_mode, require_file
from fedpia.data.schema import Sample, SampleSet

SPLITS = ("train", "val", "test")
# flag -> (modality, organ, question, answer per class index or None = class name, answer_type)
TEMPLATES: dict[str, tuple[str, str, str, dict[int, str] | None, str]] = {
    "breastmnist": ("ultrasound", "breast", "Is this breast ultrasound malignant?",
                    {0: "yes", 1: "no"}, "closed"),
    "pneumoniamnist": ("x-ray", "chest", "Does this chest x-ray show pneumonia?",
                       {0: "no", 1: "yes"}, "closed"),
    "retinamnist": ("fundus", "eye", "What is the diabetic retinopathy grade?",
                    {g: f"grade {g}" for g in range(5)}, "open"),
}
_FALLBACK_LABELS = {
    "breastmnist": {"0": "malignant", "1": "normal, benign"},
    "pneumoniamnist": {"0": "normal", "1": "pneumonia"},
    "retinamnist": {str(g): str(g) for g in range(5)},
}


def class_names(flag: str) -> tuple[dict[str, str], bool]:
    """``({index: name}, multilabel)`` from ``medmnist.INFO`` (fallback: built-in copy)."""
    try:
        import medmnist  # lazy: heavy import, optional

        info = medmnist.INFO[flag]
        return dict(info["label"]), info["task"].startswith("multi-label")
    except (ImportError, KeyError):
        if flag not in _FALLBACK_LABELS:
            raise ValueError(f"unknown MedMNIST flag {flag!r} (not in medmnist.INFO)") from None
        return dict(_FALLBACK_LABELS[flag]), False


def read_npz(path: str | Path, *, splits=SPLITS) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{split: (images uint8 [N, ...], labels int [N, L])}``; DataError naming the file on bad input."""
    path = require_file(path, what="MedMNIST npz")
    try:
        with np.load(path) as z:
            keys = set(z.files)
            missing = [f"{s}_{k}" for s in splits for k in ("images", "labels") if f"{s}_{k}" not in keys]
            if missing:
                raise DataError(f"missing array(s) {missing}", file=path)
            out = {s: (np.asarray(z[f"{s}_images"]), np.asarray(z[f"{s}_labels"])) for s in splits}
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"not a readable npz file ({exc})", file=path) from exc
    for s, (x, y) in out.items():
        if x.ndim not in (3, 4) or x.dtype != np.uint8:
            raise DataError(f"{s}_images must be uint8 [N,H,W(,3)], got {x.dtype} {x.shape}", file=path)
        y = y.reshape(len(y), -1) if y.ndim == 1 else y
        if len(y) != len(x):
            raise DataError(f"{s}_labels has {len(y)} rows but {s}_images has {len(x)}", file=path)
        out[s] = (x, y.astype(np.int64))
    return out


def load_medmnist(root: str | Path, flag: str, *, as_task: str = "vqa", size: int = 28,
                  splits=SPLITS, on_error: str = "raise") -> SampleSet:
    """Load MedMNIST ``flag`` from ``root`` as VQA or multiclass/multilabel classification samples.

    Images stay uint8 arrays (views into the npz arrays). Records whose label index is not a known
    class are bad records (``on_error``).
    """
    check_mode(on_error)
    if as_task not in ("vqa", "multiclass"):
        raise ValueError(f"as_task must be 'vqa' or 'multiclass', got {as_task!r}")
    name = f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"
    path = Path(root) / name
    arrays = read_npz(path, splits=splits)
    names, multilabel = class_names(flag)
    modality, organ, question, answers, answer_type = TEMPLATES.get(
        flag, (None, None, f"What does this {flag.removesuffix('mnist')} image show?", None, "open"))
    report = LoadReport(source=f"medmnist/{flag}", on_error=on_error)
    samples = []
    for split in splits:
        images, labels = arrays[split]
        for i in range(len(images)):
            row = f"{split}[{i}]"
            meta = {"dataset": flag, "modality": modality, "organ": organ, "site": flag,
                    "split": split, "uid": f"{flag}/{split}/{i}"}
            if multilabel:
                target = tuple(names[str(j)] for j in np.flatnonzero(labels[i]) if str(j) in names)
                samples.append(Sample(image=images[i], text=f"{flag} findings", task="multilabel",
                                      target=target, meta=meta))
                continue
            c = int(labels[i, 0])
            if str(c) not in names:
                report.fail(f"label {c} not a class of {flag} ({sorted(names)})", file=path, row=row)
                continue
            if as_task == "multiclass":
                samples.append(Sample(image=images[i], text=f"Classify this {organ} {modality} image.", task="multiclass",
                                      target=names[str(c)], meta=meta))
            else:
                answer = answers[c] if answers and c in answers else names[str(c)]
                samples.append(Sample(image=images[i], text=question, task="vqa", target=answer,
                                      meta=meta | {"answer_type": answer_type}))
    return SampleSet(samples, report.finish(len(samples)))
