"""Device and autocast precision: one place that turns the two config knobs into torch objects.

Knobs (``TrainConfig.device`` / ``TrainConfig.precision``):

- device: ``auto`` (cuda if available, else mps if available, else cpu) | ``cpu`` | ``cuda`` |
  ``cuda:<n>`` | ``mps``. Asking for an accelerator this machine does not have is a ValueError
  (the CLI turns it into exit 2), never a crash later on.
- precision: ``fp32`` (no autocast) | ``bf16`` | ``fp16`` (``torch.autocast`` with that dtype on
  the device's type; parameters and optimizer state stay fp32: mixed precision, not half
  weights). fp16 on CUDA needs loss scaling: :func:`grad_scaler` returns a ``GradScaler`` then.

:func:`place` moves a model (and, for a ``FedModel``, its frozen image feature extractor) to the
resolved device once and records the precision on it; training, evaluation, activation probes and
feature extraction read both back with :func:`model_device` / :func:`model_precision`. Each
Flower node resolves ``auto`` on its own machine.
"""

from __future__ import annotations

import contextlib
import logging
import re

import torch
from torch import nn

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_DEVICE_RE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def check_device(spec: str, *, field: str = "train.device") -> None:
    """ValueError unless ``spec`` is ``auto|cpu|cuda[:n]|mps`` (syntax only: no probing)."""
    if not isinstance(spec, str) or not _DEVICE_RE.fullmatch(spec):
        raise ValueError(f"{field}={spec!r}; allowed: 'auto', 'cpu', 'cuda', 'cuda:<n>', 'mps'")


def check_precision(precision: str, *, field: str = "train.precision") -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"{field}={precision!r}; allowed: {list(PRECISIONS)}")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(spec: str = "auto") -> torch.device:
    """The ``torch.device`` for ``spec`` on THIS machine.

    Raises ValueError for a bad spec, ``cuda`` without a usable CUDA device, ``cuda:n`` with n out
    of range, or ``mps`` without MPS.
    """
    check_device(spec)
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    dev = torch.device(spec)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"train.device={spec!r} but this machine has no usable CUDA device "
                f"(torch {torch.__version__}, built with CUDA {torch.version.cuda}); "
                "use train.device=cpu or auto"
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"train.device={spec!r} but this machine has {count} CUDA device(s)")
        if dev.index is None:  # "cuda" -> "cuda:<current>", the device parameters report
            dev = torch.device("cuda", torch.cuda.current_device())
    if dev.type == "mps" and not _mps_available():
        raise ValueError(f"train.device={spec!r} but MPS is not available on this machine")
    return dev


def autocast(device: torch.device | str, precision: str = "fp32"):
    """Context manager: ``torch.autocast(device.type, dtype)`` for bf16/fp16, a no-op for fp32."""
    check_precision(precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=_DTYPES[precision])


def grad_scaler(device: torch.device, precision: str):
    """A ``torch.amp.GradScaler`` for fp16 on CUDA (fp16 gradients underflow), else None."""
    if precision == "fp16" and device.type == "cuda":
        return torch.amp.GradScaler("cuda")
    return None


def model_device(module: nn.Module) -> torch.device:
    """Device of the module's first parameter (or buffer); cpu for a module without tensors."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")


def model_precision(module: nn.Module) -> str:
    """Precision recorded by :func:`place` (``fp32`` for a module never placed)."""
    return getattr(module, "precision", "fp32")


def place(model: nn.Module, *, device: str = "auto", precision: str = "fp32") -> torch.device:
    """Move ``model`` (and its processor's feature extractor, when it has one) to ``device`` and
    record ``precision`` on both. Idempotent: a model already there is not copied again.

    Returns the resolved device. Raises ValueError as :func:`resolve_device` does.
    """
    check_precision(precision)
    dev = resolve_device(device)
    if model_device(model) != dev:
        log.info("moving the model to %s", dev)
        model.to(dev)
    model.precision = precision
    extractor = getattr(getattr(model, "processor", None), "extractor", None)
    if extractor is not None:
        extractor.place(dev, precision)
    return dev


__all__ = [
    "PRECISIONS",
    "autocast",
    "check_device",
    "check_precision",
    "grad_scaler",
    "model_device",
    "model_precision",
    "place",
    "resolve_device",
]
