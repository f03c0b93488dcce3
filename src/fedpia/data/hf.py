"""Hugging Face ``datasets`` → samples: :func:`load_hf` for VQA, multiclass and multi-label data.

``source`` may be a ``datasets.Dataset`` or ``DatasetDict`` object, a folder written by
``save_to_disk``, or anything ``datasets.load_dataset`` takes (a hub id, see ``HUB_IDS``, or a
builder name such as ``"parquet"`` with ``data_files=...``). ``datasets`` is imported lazily
(optional extra ``hf``). Nothing is downloaded in tests: they build small datasets in code.

Columns are named by *role* (``columns={"image": "img", "target": "label"}``); defaults per task:

==============  =========  ============================  ==========================
role            vqa        multiclass                    multilabel
==============  =========  ============================  ==========================
image           image      image                         image
text            question   none (``prompt`` is used)      none (``prompt`` is used)
target          answer     label                         labels
==============  =========  ============================  ==========================

Optional roles: ``answer_type`` (VQA "open"/"closed"; inferred from the answer when absent),
``split`` (a column holding train/val/test per row), and ``modality``, ``organ``, ``site``
(copied into ``Sample.meta``). Targets: a ``ClassLabel`` index becomes its class name; a
multi-label target is a list of names, a list of ``ClassLabel`` indices, or (``target`` given as a
list of column names) one 0/1 column per label. Split names ``validation``/``valid``/``validate``
become ``val``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fedpia.data.errors import DataError, LoadReport, check_mode
from fedpia.data.schema import Sample, SampleSet
from fedpia.data.vqa_formats import _vqa_sample

HUB_IDS = {"vqa_rad": "flaviagiammarino/vqa-rad", "pathvqa": "flaviagiammarino/path-vqa",
           "slake": "BoKelvin/SLAKE"}
DEFAULT_COLUMNS = {
    "vqa": {"image": "image", "text": "question", "target": "answer"},
    "multiclass": {"image": "image", "text": None, "target": "label"},
    "multilabel": {"image": "image", "text": None, "target": "labels"},
}
ROLES = ("image", "text", "target", "answer_type", "split", "modality", "organ", "site")
DEFAULT_PROMPT = {"multiclass": "What does this image show?", "multilabel": "Which findings are present?"}
_SPLIT_ALIASES = {"validation": "val", "valid": "val", "validate": "val", "dev": "val"}


def load_hf(source: Any, *, split: str | None = None, task: str = "vqa",
            columns: Mapping[str, str | Sequence[str] | None] | None = None, dataset: str | None = None,
            prompt: str | None = None, on_error: str = "raise", **load_kwargs) -> SampleSet:
    """Map a Hugging Face dataset to :class:`Sample` objects of ``task``.

    ``split``: one split of a ``DatasetDict`` / hub dataset (``None``: every split; for a single
    ``Dataset``: its own ``.split`` or ``"train"``). ``columns``: role → column overrides of
    :data:`DEFAULT_COLUMNS`. ``prompt``: the text of every sample when there is no text column.
    ``load_kwargs`` go to ``datasets.load_dataset`` (only for hub ids / builder names).
    A missing column raises :class:`DataError` naming the role and the column.
    """
    check_mode(on_error)
    if task not in DEFAULT_COLUMNS:
        raise ValueError(f"task must be one of {sorted(DEFAULT_COLUMNS)}, got {task!r}")
    unknown = sorted(set(columns or {}) - set(ROLES))
    if unknown:
        raise ValueError(f"unknown column role(s) {unknown}; roles are {list(ROLES)}")
    cols = DEFAULT_COLUMNS[task] | dict(columns or {})
    parts, where = _resolve(source, split, load_kwargs)
    name = dataset or _dataset_name(source, parts)
    report = LoadReport(source=f"hf/{where}", on_error=on_error)
    text_default = prompt if prompt is not None else DEFAULT_PROMPT.get(task, "")
    samples = []
    for split_name, ds in parts:
        _check_columns(ds, cols, where)
        samples.extend(_samples(ds, task, cols, name=name, split=split_name, text_default=text_default,
                                report=report, where=where))
    return SampleSet(samples, report.finish(len(samples)))


def _resolve(source: Any, split: str | None, load_kwargs: dict) -> tuple[list[tuple[str, Any]], str]:
    """``([(split name, Dataset)], description of the source)`` from any accepted ``source``."""
    import datasets  # lazy: optional heavy dependency

    where = type(source).__name__
    if isinstance(source, str | Path):
        where = str(source)
        path = Path(source)
        if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
            source = datasets.load_from_disk(str(path))
        else:
            source = datasets.load_dataset(str(source), split=split, **load_kwargs)
    elif load_kwargs:
        raise TypeError(f"load_dataset arguments {sorted(load_kwargs)} only apply to a path or hub id")
    if isinstance(source, datasets.DatasetDict):
        if split is None:
            return [(k, v) for k, v in source.items()], where
        if split not in source:
            raise DataError(f"no split {split!r}; splits are {list(source)}", file=where)
        return [(split, source[split])], where
    if isinstance(source, datasets.Dataset):
        own = str(source.split) if source.split is not None else "train"
        return [(split or own, source)], where
    raise TypeError(f"load_hf takes a datasets.Dataset / DatasetDict, a saved folder or a hub id, "
                    f"got {type(source).__name__}")


def _dataset_name(source: Any, parts: list[tuple[str, Any]]) -> str:
    if isinstance(source, str | Path):
        return Path(str(source)).name or str(source)
    info = parts[0][1].info
    return info.dataset_name or info.builder_name or "hf"


def _check_columns(ds: Any, cols: Mapping[str, Any], where: str) -> None:
    """Raise :class:`DataError` naming every mapped column the dataset lacks."""
    missing = []
    for role, col in cols.items():
        for c in ([] if col is None else [col] if isinstance(col, str) else list(col)):
            if c not in ds.column_names:
                missing.append(f"{c!r} ({role})")
    if missing:
        raise DataError(f"missing column(s) {', '.join(missing)}; the dataset has {ds.column_names}; "
                        f"map roles to columns with columns={{role: name}}", file=where)


def _samples(ds: Any, task: str, cols: Mapping[str, Any], *, name: str, split: str, text_default: str,
             report: LoadReport, where: str) -> list[Sample]:
    to_target = _target_reader(ds.features, task, cols["target"])
    out = []
    for i, row in enumerate(ds):
        image = _image(row[cols["image"]])
        if image is None:
            report.fail(f"column {cols['image']!r} holds no image ({type(row[cols['image']]).__name__})",
                        file=where, row=i)
            continue
        row_split = _split_name(row[cols["split"]] if cols.get("split") else split)
        meta = {k: row[cols[k]] for k in ("modality", "organ", "site") if cols.get(k)}
        text = row[cols["text"]] if cols.get("text") else text_default
        uid = f"{name}/{row_split}/{i}"
        try:
            target = to_target(row)
        except (TypeError, ValueError, IndexError) as exc:
            report.fail(f"bad target ({exc})", file=where, row=i)
            continue
        if task == "vqa":
            answer_type = row[cols["answer_type"]] if cols.get("answer_type") else None
            answer_type = str(answer_type).strip().lower() if answer_type else None
            out.append(_vqa_sample(image, text, target, dataset=name, split=row_split, uid=uid,
                                   answer_type=answer_type, **meta))
        else:
            out.append(Sample(image=image, text=str(text).strip(), task=task, target=target,
                              meta={"dataset": name, "site": name, "split": row_split, "uid": uid} | meta))
    return out


def _target_reader(features: Any, task: str, col: str | Sequence[str]):
    """``row -> target``: str for vqa / multiclass, tuple of label names for multilabel."""
    if task == "multilabel" and not isinstance(col, str):
        names = list(col)  # one 0/1 column per label
        return lambda row: tuple(c for c in names if row[c] not in (None, 0, False, "0", ""))
    label_names = _class_names(features.get(col))
    if task != "multilabel":
        return lambda row: _label(row[col], label_names)

    def multilabel(row: Mapping[str, Any]) -> tuple[str, ...]:
        value = row[col]
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise TypeError(f"multilabel column {col!r} must hold a list, got {type(value).__name__}")
        return tuple(_label(v, label_names) for v in value)

    return multilabel


def _class_names(feature: Any) -> list[str] | None:
    """Names of a ``ClassLabel`` (or a list / ``Sequence`` of one), else None."""
    inner = getattr(feature, "feature", None)  # datasets.Sequence / List
    if isinstance(feature, list) and feature:
        inner = feature[0]
    names = getattr(inner if inner is not None else feature, "names", None)
    return list(names) if names else None


def _label(value: Any, names: list[str] | None) -> str:
    if names is not None and isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < len(names):
            raise IndexError(f"class index {value} outside 0..{len(names) - 1}")
        return names[value]
    if value is None:
        raise ValueError("missing label")
    return str(value).strip()


def _image(value: Any) -> Any:
    """A PIL image, an array, or an existing file path; ``{"bytes", "path"}`` dicts decoded; else None."""
    from PIL import Image

    if isinstance(value, Image.Image):
        return value
    if isinstance(value, Mapping):
        if value.get("bytes"):
            import io

            with Image.open(io.BytesIO(value["bytes"])) as im:
                im.load()
                return im.copy()
        value = value.get("path")
    if isinstance(value, str | Path) and Path(value).is_file():
        return str(value)
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return value
    return None


def _split_name(value: Any) -> str:
    """``"validation"`` -> ``"val"``; a sliced split such as ``"train[:10%]"`` -> ``"train"``."""
    s = str(value).strip().lower().split("[")[0]
    return _SPLIT_ALIASES.get(s, s)
