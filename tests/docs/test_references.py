"""Files named in the docs and in the code exist in the repository (no dangling DESIGN.md & co)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEXTS = [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "src").rglob("*.py"),
         *(REPO / "benchmarks").glob("*.py"), *(REPO / "tests").rglob("*.py"), REPO / "Makefile",
         REPO / "pyproject.toml"]
# repository paths (src/..., docs/x.md, ...) and bare Markdown file names such as DESIGN.md
REPO_PATH = re.compile(r"(?<![\w./-])((?:src|tests|docs|benchmarks|examples|scripts|\.ci)/[\w./-]*\w)")
MD_NAME = re.compile(r"(?<![\w./-])([A-Z][A-Z_]+\.md)\b")
LINK = re.compile(r"\]\(([^)#:\s]+)(?:#[^)]*)?\)")
OUTSIDE = {"MANIFEST.md"}  # the data manifest lives in ../shared/data, beside the repository


def references(text: str, *, markdown: bool = True) -> set[str]:
    """Repository paths, upper-case Markdown names and (Markdown) relative links in ``text``."""
    refs = set(REPO_PATH.findall(text)) | set(MD_NAME.findall(text)) - OUTSIDE
    return refs | set(LINK.findall(text)) if markdown else refs


def _exists(ref: str, source: Path) -> bool:
    if "*" in ref or "<" in ref:
        return True
    return any((base / ref).exists() for base in (REPO, source.parent)) or bool(list(REPO.rglob(ref)))


def test_reference_finder_on_known_text():
    text = "see DESIGN.md and [x](docs/align.md#plans), `src/fedpia/cli.py`, ../shared/data/MANIFEST.md"
    assert references(text) == {"DESIGN.md", "docs/align.md", "src/fedpia/cli.py"}
    assert references("f[a](gen) in DESIGN.md", markdown=False) == {"DESIGN.md"}


def test_every_referenced_file_exists():
    missing = []
    for path in TEXTS:
        if path == Path(__file__):
            continue
        for ref in references(path.read_text(encoding="utf-8"), markdown=path.suffix == ".md"):
            if not _exists(ref, path):
                missing.append(f"{path.relative_to(REPO)}: {ref}")
    assert not missing, "references to files that do not exist:\n" + "\n".join(sorted(missing))
