"""Errors and load reports shared by every loader.

Every loader takes ``on_error="raise" | "skip"``. In ``"raise"`` mode the first bad record raises a
:class:`DataError` naming the file (and row/line when known). In ``"skip"`` mode the record is
dropped, the skip is logged at WARNING level and recorded in the returned :class:`LoadReport`.
Structural problems that make a whole file unusable (missing file, unparsable JSON/CSV, missing
required columns) always raise, whatever the mode.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

logger = logging.getLogger(__name__)

ON_ERROR_MODES = ("raise", "skip")


class DataError(ValueError):
    """A data file or record is missing or malformed. ``file`` and ``row`` locate the problem."""

    def __init__(self, message: str, *, file: str | Path | None = None, row: int | str | None = None):
        where = ""
        if file is not None:
            where = f"{file}"
            if row is not None:
                where += f" (row {row})"
            where += ": "
        super().__init__(where + message)
        self.file = None if file is None else str(file)
        self.row = row


@dataclass
class LoadReport:
    """What a loader did: ``n_loaded`` samples kept, ``skipped`` records dropped (file, row, reason),
    ``n_filtered`` records dropped on purpose (e.g. image not part of a subset, duplicates)."""

    source: str
    on_error: str = "raise"
    n_loaded: int = 0
    n_filtered: int = 0
    skipped: list[tuple[str, int | str | None, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.on_error not in ON_ERROR_MODES:
            raise ValueError(f"on_error must be one of {ON_ERROR_MODES}, got {self.on_error!r}")

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)

    def fail(self, message: str, *, file: str | Path, row: int | str | None = None) -> None:
        """Raise :class:`DataError` (``on_error="raise"``) or record and log a skip."""
        err = DataError(message, file=file, row=row)
        if self.on_error == "raise":
            raise err
        self.skipped.append((str(file), row, message))
        logger.warning("skipping record: %s", err)

    def finish(self, n_loaded: int) -> LoadReport:
        self.n_loaded = n_loaded
        if self.skipped:
            logger.warning("%s: loaded %d samples, skipped %d bad records",
                           self.source, n_loaded, self.n_skipped)
        return self

    def summary(self) -> str:
        return (f"{self.source}: loaded={self.n_loaded} skipped={self.n_skipped} "
                f"filtered={self.n_filtered}")


def check_mode(on_error: str) -> str:
    if on_error not in ON_ERROR_MODES:
        raise ValueError(f"on_error must be one of {ON_ERROR_MODES}, got {on_error!r}")
    return on_error


def require_file(path: str | Path, *, what: str = "file") -> Path:
    """Return ``Path(path)`` or raise :class:`DataError` naming it when it does not exist."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"required {what} not found", file=p)
    return p


def check_image(path: Path, report: LoadReport, *, row: int | str | None, verify: bool) -> bool:
    """True when ``path`` exists and (``verify``) PIL identifies it as an image; else ``report.fail``."""
    if not path.is_file():
        report.fail("image file not found", file=path, row=row)
        return False
    if verify:
        try:
            with Image.open(path) as im:
                im.verify()
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            report.fail(f"corrupt or unreadable image ({exc.__class__.__name__})", file=path, row=row)
            return False
    return True


def require_columns(columns, required, *, file: str | Path) -> None:
    missing = [c for c in required if c not in set(columns)]
    if missing:
        raise DataError(f"missing required column(s) {missing}", file=file)
