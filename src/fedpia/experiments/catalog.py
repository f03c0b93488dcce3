"""What can be chosen, read from the registries: ``catalog(kind) -> [(name, one-line description)]``.

Kinds: ``presets`` (:data:`fedpia.experiments.presets.PRESETS`), ``strategies`` (the strategy
registry :data:`fedpia.strategies.STRATEGIES`, then the named method variants that
``fedpia compare --strategies`` also accepts), ``backbones`` (:data:`fedpia.models.BACKBONES`) and
``peft`` (:data:`fedpia.models.PEFT_METHODS`). A description is the first sentence of the
registered object's own docstring; entries without one fall back to :data:`FALLBACK`.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

KINDS = ("presets", "strategies", "backbones", "peft")
MAX_WIDTH = 110  # characters of one description
# one line for registry entries whose object carries no docstring of its own
FALLBACK = {
    "backbones": {
        "vilt": "ViLT (transformers ViltModel): one joint image+text encoder; pooled [CLS] features",
        "blip": "BLIP (ALBEF family): vision encoder + text encoder with cross-attention; answer decoder dropped",
        "clip": "CLIP: separate image and text towers, fused as [u, v, u*v] of the projected embeddings",
    },
    "peft": {
        "houlsby": "Houlsby bottleneck adapters after attention and FFN outputs (y + a(y))",
        "parallel": "Parallel bottleneck adapter beside each FFN (a(x) added to the FFN output)",
        "compacter": "Compacter: PHM (Kronecker) bottleneck adapters at the Houlsby sites",
        "bias": "BitFit: only the backbone's bias terms train",
        "full": "full fine-tuning: every backbone parameter trains",
        "prompt": "prompt tuning (PromptFL / CoOp): learned context tokens inserted after [CLS]",
    },
}


def describe(obj: Any, *, fallback: str = "") -> str:
    """First sentence of ``obj``'s own docstring, on one line, without reStructuredText quotes.

    Inherited docstrings and the signature ``dataclasses`` writes into an undocumented class do
    not count: ``fallback`` is returned instead.
    """
    doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    if not doc or doc.startswith(f"{getattr(obj, '__name__', '')}("):
        return fallback
    para = " ".join(inspect.cleandoc(doc).split("\n\n")[0].split()).replace("``", "`")
    end = re.search(r"\.\s+(?=[A-Z])", para)  # "et al. 2017" is no sentence end
    line = para if end is None else para[: end.start() + 1]
    return line if len(line) <= MAX_WIDTH else line[: line.rfind(" ", 0, MAX_WIDTH)] + " ..."


def catalog(kind: str) -> list[tuple[str, str]]:
    """``[(name, description)]`` of one registry, in registration order."""
    if kind == "presets":
        from fedpia.experiments.presets import PRESETS

        return [(p.name, p.description) for p in PRESETS.values()]
    if kind == "strategies":
        from fedpia.experiments.variants import VARIANTS
        from fedpia.strategies import STRATEGIES

        return ([(n, describe(c)) for n, c in STRATEGIES.items()]
                + [(n, f"variant: {v.description}") for n, v in VARIANTS.items() if n not in STRATEGIES])
    if kind in ("backbones", "peft"):
        from fedpia.models import BACKBONES, PEFT_METHODS

        reg = BACKBONES if kind == "backbones" else PEFT_METHODS
        names = FALLBACK.get(kind, {})
        return [(n, describe(obj, fallback=names.get(n, "")) or names.get(n, "")) for n, obj in reg.items()]
    raise ValueError(f"unknown kind {kind!r}; choose one of {list(KINDS)}")
