"""Shared test fixtures.

Tests that use the real data in ``../shared/data`` are NOT skipped when it is missing: they fail
with a clear message (CI always has it). Override the location with FEDPIA_SHARED_DATA.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_data() -> Path:
    env = os.environ.get("FEDPIA_SHARED_DATA")
    return Path(env) if env else (REPO_ROOT.parent / "shared" / "data")


@pytest.fixture(scope="session", autouse=True)
def _feature_cache_dir(tmp_path_factory):
    """Image-feature caches written by tests go to a session temp dir, not ~/.cache/fedpia."""
    old = os.environ.get("FEDPIA_CACHE_DIR")
    os.environ["FEDPIA_CACHE_DIR"] = str(tmp_path_factory.mktemp("fedpia-cache"))
    yield
    if old is None:
        os.environ.pop("FEDPIA_CACHE_DIR", None)
    else:
        os.environ["FEDPIA_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = _shared_data()
    if not (root / "MANIFEST.md").exists():
        pytest.fail(f"real test data not found at {root} (set FEDPIA_SHARED_DATA)")
    return root
