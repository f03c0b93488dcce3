"""VQA-RAD loader (Lau et al., Sci. Data 2018; https://osf.io/89kps/).

Official release: ``VQA_RAD Dataset Public.json`` (2248 QA records, 14 fields) and
``VQA_RAD Image Folder/`` (315 ``synpic*.jpg``). Official split: ``phrase_type`` in
{``test_freeform``, ``test_para``} is test (451), all other records train (1797).
``answer_type`` is stripped and lower-cased (the file carries ``"CLOSED "`` twice);
``image_organ`` (HEAD/CHEST/ABD) is kept as ``meta["organ"]``. VQA-RAD has no modality column.
"""

from __future__ import annotations

import json
from pathlib import Path

from fedpia.data.errors import DataError, LoadReport, check_image, check_mode, require_file
from fedpia.data.schema import Sample, SampleSet, normalize_answer

JSON_NAME = "VQA_RAD Dataset Public.json"
IMAGE_DIR = "VQA_RAD Image Folder"
TEST_PHRASE_TYPES = frozenset({"test_freeform", "test_para"})
REQUIRED = ("qid", "phrase_type", "image_name", "image_organ", "question", "answer", "answer_type")
HF_ID = "flaviagiammarino/vqa-rad"


def load_vqa_rad(root: str | Path, *, on_error: str = "raise", verify_images: bool = True) -> SampleSet:
    """Load all 2248 VQA-RAD records from ``root`` (the folder holding the json and image folder).

    Returns a :class:`SampleSet` with ``meta["split"]`` in {"train", "test"}, task ``"vqa"``,
    target = :func:`normalize_answer` (answer), ``meta["answer_type"]`` in {"open", "closed"}.
    """
    check_mode(on_error)
    root = Path(root)
    path = require_file(root / JSON_NAME, what="VQA-RAD json")
    image_dir = require_file(root / IMAGE_DIR, what="VQA-RAD image folder")
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"malformed JSON ({exc})", file=path) from exc
    if not isinstance(records, list):
        raise DataError("expected a JSON list of QA records", file=path)
    report = LoadReport(source="vqa_rad", on_error=on_error)
    seen_images: dict[str, bool] = {}
    samples = []
    for i, rec in enumerate(records):
        missing = [k for k in REQUIRED if not isinstance(rec, dict) or k not in rec]
        if missing:
            report.fail(f"missing field(s) {missing}", file=path, row=i)
            continue
        answer_type = str(rec["answer_type"]).strip().lower()
        if answer_type not in ("open", "closed"):
            report.fail(f"answer_type {rec['answer_type']!r} not OPEN/CLOSED", file=path, row=i)
            continue
        img = image_dir / str(rec["image_name"])
        if img.name not in seen_images:
            seen_images[img.name] = check_image(img, report, row=i, verify=verify_images)
        elif not seen_images[img.name]:
            report.fail("image file missing or corrupt", file=img, row=i)
        if not seen_images[img.name]:
            continue
        split = "test" if str(rec["phrase_type"]).strip() in TEST_PHRASE_TYPES else "train"
        samples.append(Sample(
            image=img, text=str(rec["question"]).strip(), task="vqa",
            target=normalize_answer(rec["answer"]),
            meta={"dataset": "vqa_rad", "modality": None, "organ": str(rec["image_organ"]).strip(),
                  "site": "vqa_rad", "answer_type": answer_type, "split": split,
                  "uid": f"vqa_rad/{rec['qid']}", "image_name": img.name,
                  "question_type": rec.get("question_type")},
        ))
    return SampleSet(samples, report.finish(len(samples)))
