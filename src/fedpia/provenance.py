"""Leaf module: where a result came from (package versions, git hash, host facts), as JSON data.

Used by the runner (``results.json``), ``compare`` (``summary.json``) and the exporter
(``fedpia_adapter.json``), so every artefact records its origin the same way.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("fedpia", "torch", "transformers", "peft", "POT", "numpy", "flwr")


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """``{distribution: installed version or None}``."""
    versions: dict[str, str | None] = {}
    for pkg in packages:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return versions


def git_hash() -> str | None:
    """The commit of the fedpia sources in use (None outside a git checkout)."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def provenance() -> dict[str, Any]:
    """Versions, git hash, host facts: what a reader needs to reproduce a result."""
    return {
        "versions": package_versions(),
        "git_hash": git_hash(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
