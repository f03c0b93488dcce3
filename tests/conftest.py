"""Shared test fixtures.

Tests that use the real data in ``../shared/data`` are NOT skipped when it is missing: they fail
with a clear message (CI always has it). Override the location with FEDPIA_SHARED_DATA.

Tests run torch on ONE thread (here and, through the environment, in every subprocess they
start): the test models are tiny, and on a 2-core machine with anything else running, two
spinning OpenMP threads made a 2-round simulation 6x slower (3.8 s vs 22.6 s at load 6).
"""

from __future__ import annotations

import os
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

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
