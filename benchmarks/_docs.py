"""Shared by the benchmark scripts: replace one marked section of docs/benchmarks.md."""

from __future__ import annotations

import re
from pathlib import Path


def write_section(doc: Path, key: str, heading: str, block: str) -> None:
    """Replace ``<!-- key:start --> ... <!-- key:end -->`` in ``doc`` with ``block`` (which carries
    the markers), or append it under ``## heading`` when the markers are not there yet."""
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    if f"<!-- {key}:start -->" in text:
        pattern = rf"<!-- {key}:start -->.*<!-- {key}:end -->"
        text = re.sub(pattern, lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + f"\n\n## {heading}\n\n" + block + "\n"
    doc.write_text(text)
