"""Turn a client's samples into cached model inputs once (images decoded and resized once).

The simulator trains many rounds over the same samples; decoding JPEGs and tokenising every step
would dominate CPU time, so each split is processed once into an :class:`EncodedSplit` (for the
``minilm-vl`` backbone that includes the frozen image tower's features, ``image_feats``). A split
moves to the training device once (:meth:`EncodedSplit.to`, in place) and stays there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from fedpia.data import LabelSpace, Sample, load_image


@dataclass
class EncodedSplit:
    """Model inputs for N samples, targets and per-sample answer types.

    ``inputs``: processor output, every tensor with leading dim N. ``targets``: LongTensor [N]
    (class index, -1 = answer unseen in the client's training pool) or FloatTensor [N, C]
    multi-hot for multilabel. ``answer_types``: "open"/"closed"/None per sample (VQA only).
    """

    inputs: dict[str, torch.Tensor]
    targets: torch.Tensor
    task: str
    answer_types: tuple[str | None, ...]

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    @property
    def device(self) -> torch.device:
        return self.targets.device

    def to(self, device: torch.device | str) -> EncodedSplit:
        """Move every tensor to ``device`` IN PLACE (once; a no-op when already there); returns
        ``self`` so callers holding the split see the moved tensors too."""
        device = torch.device(device)
        if self.targets.device != device:
            self.inputs = {k: v.to(device) for k, v in self.inputs.items()}
            self.targets = self.targets.to(device)
        return self

    def batch(self, idx: torch.Tensor | Sequence[int]) -> dict[str, torch.Tensor]:
        """Inputs of rows ``idx`` (on the split's device)."""
        idx_t = torch.as_tensor(idx, dtype=torch.long).to(self.targets.device)
        return {k: v.index_select(0, idx_t) for k, v in self.inputs.items()}


def encode_split(
    processor: Callable[..., dict[str, torch.Tensor]],
    samples: Sequence[Sample],
    space: LabelSpace,
    *,
    chunk: int = 64,
) -> EncodedSplit:
    """Process ``samples`` in chunks with ``processor(images, texts)`` and encode targets."""
    if not samples:
        raise ValueError("cannot encode an empty split")
    task = samples[0].task
    parts: list[dict[str, torch.Tensor]] = []
    for start in range(0, len(samples), chunk):
        block = samples[start : start + chunk]
        parts.append(processor([load_image(s) for s in block], [s.text for s in block]))
    keys = parts[0].keys()
    inputs = {k: torch.cat([_pad_like(p[k], parts, k) for p in parts], dim=0) for k in keys}
    encoded = [space.encode(s.target) for s in samples]
    if task == "multilabel":
        targets = torch.as_tensor(np.stack(encoded), dtype=torch.float32)
    else:
        targets = torch.as_tensor(encoded, dtype=torch.long)
    answer_types = tuple(s.meta.get("answer_type") for s in samples)
    return EncodedSplit(inputs=inputs, targets=targets, task=task, answer_types=answer_types)


def _pad_like(t: torch.Tensor, parts: list[dict[str, torch.Tensor]], key: str) -> torch.Tensor:
    """Right-pad token tensors of one chunk to the longest chunk (pad id 0, mask 0)."""
    if t.dim() != 2:
        return t
    longest = max(p[key].shape[1] for p in parts)
    if t.shape[1] == longest:
        return t
    pad = torch.zeros(t.shape[0], longest - t.shape[1], dtype=t.dtype)
    return torch.cat([t, pad], dim=1)
