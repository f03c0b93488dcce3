"""Shared by the benchmark scripts: replace one marked section of docs/benchmarks.md; parse
comma-separated integer options (:func:`int_list`, an argparse ``type``)."""

from __future__ import annotations

import argparse
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


def int_list(text: str) -> list[int]:
    """argparse ``type`` for comma-separated integers (``"0,1,2"``): a usage error (exit 2) naming
    the bad value otherwise."""
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not out:
        raise argparse.ArgumentTypeError(f"expected at least one integer, got {text!r}")
    return out
