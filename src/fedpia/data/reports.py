"""Image + report multi-label loaders: Open-I (IU X-ray) and MIMIC-CXR (official file formats).

Open-I (Demner-Fushman et al. 2016; the widely used Kaggle export): ``indiana_reports.csv``
(uid, MeSH, Problems, findings, impression, ...) + ``indiana_projections.csv`` (uid, filename,
projection) + an image folder. Labels: ``Problems`` (default) or ``MeSH`` split on ';', MeSH
terms cut at the first '/' (``"Cardiomegaly/mild"`` → ``"Cardiomegaly"``).

MIMIC-CXR (Johnson et al. 2019): ``mimic-cxr-2.0.0-chexpert.csv[.gz]`` (subject_id, study_id +
14 CheXpert columns: 1.0 positive, 0.0 negative, -1.0 uncertain, blank = not mentioned),
``mimic-cxr-2.0.0-split.csv[.gz]`` (dicom_id, study_id, subject_id, split), images
``files/p<2 digits>/p<subject>/s<study>/<dicom>.jpg`` and reports ``files/p../p<subject>/s<study>.txt``.
Uncertain policy: ``"zeros"`` (U-Zeros, default) or ``"ones"`` (U-Ones) (Irvin et al. 2019).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fedpia.data.errors import (
    DataError,
    LoadReport,
    check_image,
    check_mode,
    require_columns,
    require_file,
)
from fedpia.data.schema import Sample, SampleSet

CHEXPERT_LABELS = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum",
                   "Fracture", "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion",
                   "Pleural Other", "Pneumonia", "Pneumothorax", "Support Devices")
_SPLITS = {"train": "train", "validate": "val", "val": "val", "test": "test"}


def read_csv(path: str | Path, required: tuple[str, ...]) -> pd.DataFrame:
    """Read a CSV (``.gz`` ok) as strings; DataError naming the file when unreadable or columns miss."""
    path = require_file(path, what="csv file")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"malformed CSV ({exc})", file=path) from exc
    require_columns(df.columns, required, file=path)
    return df


def _openi_labels(value: str, source: str) -> tuple[str, ...]:
    terms = [t.strip() for t in value.split(";") if t.strip()]
    if source == "mesh":
        terms = [t.split("/")[0].strip() for t in terms]
    return tuple(sorted(set(terms)))


def load_openi(root: str | Path, *, image_dir: str = "images/images_normalized", label_source: str = "problems",
               projections: tuple[str, ...] = ("Frontal",), on_error: str = "raise",
               verify_images: bool = True) -> SampleSet:
    """One multi-label sample per (report, image of an allowed projection). Text = findings +
    impression. No official split (``meta["split"]`` None); ``meta["patient"]`` = report uid."""
    check_mode(on_error)
    if label_source not in ("problems", "mesh"):
        raise ValueError(f"label_source must be 'problems' or 'mesh', got {label_source!r}")
    root = Path(root)
    rep_path, proj_path = root / "indiana_reports.csv", root / "indiana_projections.csv"
    reports = read_csv(rep_path, ("uid", "MeSH", "Problems", "findings", "impression"))
    projs = read_csv(proj_path, ("uid", "filename", "projection"))
    by_uid = {r["uid"]: (i + 2, r) for i, r in enumerate(reports.to_dict("records"))}
    report = LoadReport(source="openi", on_error=on_error)
    samples = []
    for i, p in enumerate(projs.to_dict("records")):
        if p["projection"] not in projections:
            report.n_filtered += 1
            continue
        if p["uid"] not in by_uid:
            report.fail(f"uid {p['uid']!r} not in indiana_reports.csv", file=proj_path, row=i + 2)
            continue
        row, rec = by_uid[p["uid"]]
        labels = _openi_labels(rec["Problems" if label_source == "problems" else "MeSH"], label_source)
        text = " ".join(x.strip() for x in (rec["findings"], rec["impression"]) if x.strip())
        if not labels or not text:
            report.fail("empty labels or empty report text", file=rep_path, row=row)
            continue
        img = root / image_dir / p["filename"]
        if not check_image(img, report, row=i + 2, verify=verify_images):
            continue
        samples.append(Sample(image=img, text=text, task="multilabel", target=labels,
                              meta={"dataset": "openi", "modality": "x-ray", "organ": "chest",
                                    "site": "openi", "split": None, "uid": f"openi/{p['filename']}",
                                    "patient": p["uid"], "projection": p["projection"]}))
    return SampleSet(samples, report.finish(len(samples)))


def _find(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (root / name).exists():
            return root / name
    raise DataError("required MIMIC-CXR file not found", file=root / stem)


def load_mimic_cxr(root: str | Path, *, uncertain: str = "zeros", image_root: str | Path | None = None,
                   report_root: str | Path | None = None, on_error: str = "raise",
                   verify_images: bool = True) -> SampleSet:
    """One sample per DICOM image in the split csv with its study's CheXpert labels.

    Target = labels with value 1.0 (and -1.0 under ``uncertain="ones"``); a study with no label
    row is a bad record. Text = the free-text report when ``report_root/files/...`` exists, else "".
    """
    check_mode(on_error)
    if uncertain not in ("zeros", "ones"):
        raise ValueError(f"uncertain must be 'zeros' or 'ones', got {uncertain!r}")
    root = Path(root)
    image_root, report_root = Path(image_root or root), Path(report_root or root)
    chex_path, split_path = _find(root, "mimic-cxr-2.0.0-chexpert.csv"), _find(root, "mimic-cxr-2.0.0-split.csv")
    chex = read_csv(chex_path, ("subject_id", "study_id", *CHEXPERT_LABELS))
    splits = read_csv(split_path, ("dicom_id", "study_id", "subject_id", "split"))
    positive = {"1.0", "1"} | ({"-1.0", "-1"} if uncertain == "ones" else set())
    labels_of = {r["study_id"]: tuple(c for c in CHEXPERT_LABELS if r[c].strip() in positive)
                 for r in chex.to_dict("records")}
    report = LoadReport(source="mimic_cxr", on_error=on_error)
    samples = []
    for i, r in enumerate(splits.to_dict("records")):
        subj, study = r["subject_id"], r["study_id"]
        if study not in labels_of:
            report.fail(f"study {study} has no CheXpert label row", file=split_path, row=i + 2)
            continue
        if r["split"] not in _SPLITS:
            report.fail(f"unknown split {r['split']!r}", file=split_path, row=i + 2)
            continue
        rel = Path("files") / f"p{subj[:2]}" / f"p{subj}"
        img = image_root / rel / f"s{study}" / f"{r['dicom_id']}.jpg"
        if not check_image(img, report, row=i + 2, verify=verify_images):
            continue
        txt = report_root / rel / f"s{study}.txt"
        text = txt.read_text(encoding="utf-8", errors="replace").strip() if txt.is_file() else ""
        samples.append(Sample(image=img, text=text, task="multilabel", target=labels_of[study],
                              meta={"dataset": "mimic_cxr", "modality": "x-ray", "organ": "chest",
                                    "site": "mimic_cxr", "split": _SPLITS[r["split"]],
                                    "uid": f"mimic_cxr/{r['dicom_id']}", "patient": subj, "study": study}))
    return SampleSet(samples, report.finish(len(samples)))
