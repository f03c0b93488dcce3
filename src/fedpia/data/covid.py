"""COVID-19 Image Data Collection subset (Cohen et al., arXiv:2006.11988): chest X-ray + clinical notes.

Layout: ``metadata.csv`` (all 751 rows of the collection) + ``images/`` (the subset present here).
Only rows whose ``filename`` exists under ``<folder>/`` are kept (the rest are *filtered*, not
errors); rows are de-duplicated by ``filename`` (the same Eurorad cases were entered twice; keeping
both would leak across splits). Target = the ``finding`` split on commas and stripped
(multi-label); text = ``clinical_notes``; site = country = last comma-part of ``location``
(``"?"`` or empty → ``"unknown"``).
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

REQUIRED = ("patientid", "finding", "filename", "location", "clinical_notes")


def country_of(location) -> str:
    """Last comma-separated part of a location string; ``"unknown"`` for NaN, empty or ``"?"``."""
    if location is None or (isinstance(location, float) and pd.isna(location)):
        return "unknown"
    part = str(location).split(",")[-1].strip()
    return "unknown" if part in ("", "?") else part


def split_findings(finding) -> tuple[str, ...]:
    """``"COVID-19, ARDS"`` → ``("ARDS", "COVID-19")`` (sorted, unique, stripped)."""
    if finding is None or (isinstance(finding, float) and pd.isna(finding)):
        return ()
    return tuple(sorted({f.strip() for f in str(finding).split(",") if f.strip()}))


def load_covid_cxr(root: str | Path, *, on_error: str = "raise", verify_images: bool = True) -> SampleSet:
    """Load the image + clinical-notes multi-label samples from ``root``.

    ``meta["split"]`` is None (the collection has no official split; presets split by patient).
    ``report.n_filtered`` counts rows dropped because their image is not part of the subset or
    is a duplicate filename.
    """
    check_mode(on_error)
    root = Path(root)
    path = require_file(root / "metadata.csv", what="COVID-19 metadata csv")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"malformed CSV ({exc})", file=path) from exc
    require_columns(df.columns, REQUIRED, file=path)
    report = LoadReport(source="covid_chestxray", on_error=on_error)
    seen: set[str] = set()
    samples = []
    for i, rec in enumerate(df.to_dict("records")):
        row = i + 2  # 1-based line number in the csv (header = line 1)
        folder = rec.get("folder") or "images"
        img = root / folder / rec["filename"]
        if not rec["filename"] or not img.exists() or rec["filename"] in seen:
            report.n_filtered += 1
            continue
        if not check_image(img, report, row=row, verify=verify_images):
            continue
        labels = split_findings(rec["finding"])
        notes = rec["clinical_notes"].strip()
        if not labels:
            report.fail("empty 'finding'", file=path, row=row)
            continue
        if not notes:
            report.fail("empty 'clinical_notes'", file=path, row=row)
            continue
        seen.add(rec["filename"])
        samples.append(Sample(
            image=img, text=notes, task="multilabel", target=labels,
            meta={"dataset": "covid_chestxray", "modality": (rec.get("modality") or "x-ray").lower(),
                  "organ": "chest", "site": country_of(rec["location"]), "split": None,
                  "uid": f"covid_chestxray/{rec['filename']}", "patient": rec["patientid"],
                  "view": rec.get("view")},
        ))
    return SampleSet(samples, report.finish(len(samples)))
