"""Loaders for further medical VQA datasets in their official formats.

SLAKE has its own module (:mod:`fedpia.data.slake`, tested on the real release).

* VQA-Med 2019/2020/2021 (ImageCLEF): pipe-separated QA text ``image_id|question|answer``
  (2019 test: ``image_id|category|question|answer``) + an image folder of ``<image_id>.jpg``.
* PathVQA (He et al. 2020): official pickle ``qas/<split>/<split>_qa.pkl`` (list of
  {image, question, answer}) + ``images/<split>/<image>.jpg``; or the HF parquet export
  (columns image {bytes, path}, question, answer): :func:`load_pathvqa_parquet`.
* OmniMedVQA (Hu et al., CVPR 2024): ``QA_information/Open-access/*.json`` (lists of {question,
  gt_answer, option_A.., image_path, modality_type, dataset}), image paths relative to the root.
"""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

from PIL import Image

from fedpia.data.errors import DataError, LoadReport, check_image, check_mode, require_file
from fedpia.data.schema import Sample, SampleSet, normalize_answer

_SPLIT_NAMES = {"train": "train", "validate": "val", "val": "val", "test": "test"}


def _answer_type(answer: str) -> str:
    return "closed" if normalize_answer(answer) in ("yes", "no") else "open"


def _vqa_sample(img, question, answer, *, dataset, split, uid, answer_type=None, **meta) -> Sample:
    return Sample(image=img, text=str(question).strip(), task="vqa", target=normalize_answer(answer),
                  meta={"dataset": dataset, "site": dataset, "split": split, "uid": uid,
                        "answer_type": answer_type or _answer_type(str(answer))} | meta)


def _read_json_list(path: Path) -> list:
    try:
        data = json.loads(require_file(path, what="json file").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"malformed JSON ({exc})", file=path) from exc
    if not isinstance(data, list):
        raise DataError("expected a JSON list of records", file=path)
    return data


def load_vqa_med(qa_file: str | Path, image_dir: str | Path, *, split: str, year: int = 2019,
                 image_ext: str = ".jpg", on_error: str = "raise", verify_images: bool = True) -> SampleSet:
    """One ImageCLEF VQA-Med QA file. Lines with a wrong number of '|' fields are bad records."""
    check_mode(on_error)
    path, image_dir = require_file(qa_file, what="VQA-Med QA file"), Path(image_dir)
    dataset = f"vqa_med_{year}"
    category = path.stem.split("_")[1].lower() if path.stem.startswith("C") and "_" in path.stem else None
    report = LoadReport(source=dataset, on_error=on_error)
    samples = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 4:
            image_id, cat, question, answer = parts
        elif len(parts) == 3:
            (image_id, question, answer), cat = parts, category
        else:
            report.fail(f"expected 3 or 4 '|'-separated fields, got {len(parts)}", file=path, row=n)
            continue
        img = image_dir / f"{image_id}{image_ext}"
        if check_image(img, report, row=n, verify=verify_images):
            samples.append(_vqa_sample(img, question, answer, dataset=dataset, split=_SPLIT_NAMES[split],
                                       uid=f"{dataset}/{split}/{n}", category=cat))
    return SampleSet(samples, report.finish(len(samples)))


def load_pathvqa(root: str | Path, *, splits=("train", "val", "test"), on_error: str = "raise",
                 verify_images: bool = True) -> SampleSet:
    """PathVQA official pickles. NOTE: unpickling runs code: only load files you trust."""
    check_mode(on_error)
    root = Path(root)
    report = LoadReport(source="pathvqa", on_error=on_error)
    samples = []
    for split in splits:
        path = require_file(root / "qas" / split / f"{split}_qa.pkl", what="PathVQA pickle")
        try:
            records = pickle.loads(path.read_bytes())  # noqa: S301 - official format
        except (pickle.UnpicklingError, EOFError, AttributeError, ValueError) as exc:
            raise DataError(f"malformed pickle ({exc})", file=path) from exc
        for i, r in enumerate(records):
            if not isinstance(r, dict) or any(k not in r for k in ("image", "question", "answer")):
                report.fail("record needs image, question, answer", file=path, row=i)
                continue
            img = root / "images" / split / f"{r['image']}.jpg"
            if check_image(img, report, row=i, verify=verify_images):
                samples.append(_vqa_sample(img, r["question"], r["answer"], dataset="pathvqa",
                                           split=_SPLIT_NAMES[split], uid=f"pathvqa/{split}/{i}",
                                           modality="pathology"))
    return SampleSet(samples, report.finish(len(samples)))


def load_pathvqa_parquet(path: str | Path, *, split: str, on_error: str = "raise") -> SampleSet:
    """PathVQA (or any {image, question, answer}) parquet export; image bytes opened lazily by PIL."""
    import pandas as pd

    check_mode(on_error)
    path = require_file(path, what="parquet file")
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types
        raise DataError(f"unreadable parquet ({exc})", file=path) from exc
    from fedpia.data.errors import require_columns

    require_columns(df.columns, ("image", "question", "answer"), file=path)
    report = LoadReport(source=f"parquet/{path.name}", on_error=on_error)
    samples = []
    for i, r in enumerate(df.to_dict("records")):
        raw = r["image"]["bytes"] if isinstance(r["image"], dict) else r["image"]
        try:
            img = Image.open(io.BytesIO(raw))
        except Exception as exc:  # noqa: BLE001 - PIL raises many types on garbage
            report.fail(f"corrupt image bytes ({exc.__class__.__name__})", file=path, row=i)
            continue
        samples.append(_vqa_sample(img, r["question"], r["answer"], dataset="pathvqa", split=split,
                                   uid=f"pathvqa/{split}/{i}", modality="pathology"))
    return SampleSet(samples, report.finish(len(samples)))


def load_omnimedvqa(root: str | Path, *, access: str = "Open-access", on_error: str = "raise",
                    verify_images: bool = True) -> SampleSet:
    """OmniMedVQA multiple-choice QA; text = question + lettered options, target = gt_answer."""
    check_mode(on_error)
    root = Path(root)
    qa_dir = require_file(root / "QA_information" / access, what="OmniMedVQA QA folder")
    report = LoadReport(source="omnimedvqa", on_error=on_error)
    samples = []
    for path in sorted(qa_dir.glob("*.json")):
        for i, r in enumerate(_read_json_list(path)):
            if any(k not in r for k in ("question", "gt_answer", "image_path")):
                report.fail("record needs question, gt_answer, image_path", file=path, row=i)
                continue
            opts = [f"{k[-1]}) {r[k]}" for k in sorted(r) if k.startswith("option_")]
            img = root / r["image_path"]
            if check_image(img, report, row=i, verify=verify_images):
                samples.append(_vqa_sample(
                    img, f"{r['question']} Options: {'; '.join(opts)}", r["gt_answer"],
                    dataset="omnimedvqa", split=None, uid=f"omnimedvqa/{r.get('question_id', f'{path.stem}-{i}')}",
                    answer_type="closed", modality=str(r.get("modality_type", "")).lower() or None,
                    source_dataset=r.get("dataset")))
    return SampleSet(samples, report.finish(len(samples)))
