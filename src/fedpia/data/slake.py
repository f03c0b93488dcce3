"""SLAKE loader (Liu et al., ISBI 2021, arXiv:2102.09542; https://www.med-vqa.com/slake/).

Official release (``Slake1.0``): ``train.json`` / ``validate.json`` / ``test.json`` (the Hugging
Face copy names the second ``validation.json``; both are accepted), each a JSON list of QA records
with the 12 fields ``img_id, img_name, question, answer, q_lang, location, modality, answer_type,
base_type, content_type, triple, qid``; images at ``imgs/<img_name>`` = ``imgs/xmlab<N>/source.jpg``.
The per-image ``imgs/xmlab<N>/question.json`` copies are older (typos such as "exsit") and are
never read.

English subset (``q_lang == "en"``, the benchmark): 4,919 / 1,053 / 1,061 QA on 450 / 96 / 96
disjoint images; 642 images, one modality each (CT 282, MRI 181, X-Ray 179) and one location.
One English training record (``train.json`` row 1622, qid 1622) has an empty answer: records with
an empty answer are dropped on purpose (``report.n_filtered``, logged), so 4,918 English training
samples load.

Sample fields: ``target`` = :func:`normalize_answer` (answer); ``meta``: ``split`` in
{train, val, test}, ``answer_type`` in {open, closed} (from the file, not inferred: SLAKE's CLOSED
includes "which is bigger, A or B?"), ``modality`` in {ct, mri, x-ray}, ``organ`` = ``location``
as written (``Lung``, ``Abdomen``, ``Brain_Tissue``, ...), ``image_name`` (for grouping),
``base_type`` (vqa / kvqa), ``content_type``, ``qid``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path, PurePosixPath

from fedpia.data.errors import DataError, LoadReport, check_image, check_mode, require_file
from fedpia.data.schema import Sample, SampleSet, normalize_answer

logger = logging.getLogger(__name__)

SPLIT_FILES = {"train": ("train.json",), "validate": ("validate.json", "validation.json"),
               "test": ("test.json",)}
SPLIT_NAMES = {"train": "train", "validate": "val", "test": "test"}
MODALITIES = {"ct": "ct", "mri": "mri", "x-ray": "x-ray"}  # lower-cased file value -> ours
REQUIRED = ("img_name", "question", "answer", "q_lang", "location", "modality", "answer_type", "qid")
HF_ID = "BoKelvin/SLAKE"


def split_file(root: Path, split: str) -> Path:
    """The JSON file of official split ``split`` (train / validate / test) under ``root``."""
    if split not in SPLIT_FILES:
        raise ValueError(f"SLAKE split must be one of {sorted(SPLIT_FILES)}, got {split!r}")
    for name in SPLIT_FILES[split]:
        if (root / name).is_file():
            return root / name
    return require_file(root / SPLIT_FILES[split][0], what=f"SLAKE {split} split file")


def read_records(path: Path) -> list:
    """The JSON list in ``path``; DataError naming the file when it is not valid JSON or not a list."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"malformed JSON ({exc})", file=path) from exc
    if not isinstance(data, list):
        raise DataError(f"expected a JSON list of QA records, got {type(data).__name__}", file=path)
    return data


def _record_problem(r) -> str | None:
    """Why record ``r`` is unusable, or None (checked before the language filter)."""
    if not isinstance(r, dict):
        return f"record is a {type(r).__name__}, not an object"
    missing = [k for k in REQUIRED if k not in r]
    if missing:
        return f"missing field(s) {missing}"
    name = PurePosixPath(str(r["img_name"]))
    if name.is_absolute() or ".." in name.parts or not str(r["img_name"]).strip():
        return f"img_name {r['img_name']!r} must be a relative path under imgs/"
    if str(r["answer_type"]).strip().lower() not in ("open", "closed"):
        return f"answer_type {r['answer_type']!r} not OPEN/CLOSED"
    if str(r["modality"]).strip().lower() not in MODALITIES:
        return f"modality {r['modality']!r} not one of CT/MRI/X-Ray"
    if not str(r["question"]).strip():
        return "empty question"
    return None


def load_slake(root: str | Path, *, splits=("train", "validate", "test"), language: str = "en",
               on_error: str = "raise", verify_images: bool = True) -> SampleSet:
    """SLAKE QA records with ``q_lang == language`` from the official split files under ``root``.

    Bad records (not an object, missing field, unknown answer_type/modality, empty question, unsafe
    img_name, duplicate qid, missing or corrupt image) raise :class:`DataError` naming the file and
    row (``on_error="raise"``) or are skipped and reported (``"skip"``); a missing or unparsable
    split file raises in both modes, before any record is read. Other languages and empty
    answers count in ``report.n_filtered``. Each image is checked once (``verify_images``: header
    parsed by PIL, not decoded).
    """
    check_mode(on_error)
    root = Path(root)
    report = LoadReport(source="slake", on_error=on_error)
    seen_qids: dict[str, tuple[str, int]] = {}
    image_ok: dict[Path, bool] = {}
    samples = []
    files = {split: split_file(root, split) for split in splits}
    records = {split: read_records(path) for split, path in files.items()}  # structure first
    for split, path in files.items():
        for i, r in enumerate(records[split]):
            problem = _record_problem(r)
            if problem is None and str(r["qid"]) in seen_qids:
                problem = "qid {} already used at {} row {}".format(r["qid"], *seen_qids[str(r["qid"])])
            if problem is not None:
                report.fail(problem, file=path, row=i)
                continue
            seen_qids[str(r["qid"])] = (path.name, i)
            if r["q_lang"] != language or not str(r["answer"]).strip():
                if r["q_lang"] == language:
                    logger.info("%s (row %d): dropping qid %s with an empty answer", path, i, r["qid"])
                report.n_filtered += 1
                continue
            img = root / "imgs" / str(r["img_name"])
            if img not in image_ok:
                image_ok[img] = check_image(img, report, row=i, verify=verify_images)
            elif not image_ok[img]:
                report.fail("image file missing or corrupt", file=img, row=i)
            if image_ok[img]:
                samples.append(_sample(r, img, SPLIT_NAMES[split]))
    return SampleSet(samples, report.finish(len(samples)))


def _sample(r: dict, img: Path, split: str) -> Sample:
    return Sample(
        image=img, text=str(r["question"]).strip(), task="vqa", target=normalize_answer(r["answer"]),
        meta={"dataset": "slake", "site": "slake", "split": split, "uid": f"slake/{r['qid']}",
              "answer_type": str(r["answer_type"]).strip().lower(),
              "modality": MODALITIES[str(r["modality"]).strip().lower()],
              "organ": str(r["location"]).strip(), "image_name": str(r["img_name"]),
              "base_type": r.get("base_type"), "content_type": r.get("content_type"), "qid": r["qid"]},
    )
