"""Hugging Face hub path: ``load_hf`` maps a ``datasets`` VQA dataset to samples.

``datasets`` is imported lazily (optional extra ``flower``). Hub ids: VQA-RAD
``flaviagiammarino/vqa-rad``, PathVQA ``flaviagiammarino/path-vqa``, SLAKE ``BoKelvin/SLAKE``.
Nothing is downloaded in tests: they pass the ``"parquet"`` builder with a local file.
"""

from __future__ import annotations

from PIL import Image

from fedpia.data.errors import LoadReport, check_mode
from fedpia.data.schema import SampleSet
from fedpia.data.vqa_formats import _vqa_sample

HUB_IDS = {"vqa_rad": "flaviagiammarino/vqa-rad", "pathvqa": "flaviagiammarino/path-vqa",
           "slake": "BoKelvin/SLAKE"}


def load_hf(path: str, *, split: str, dataset: str | None = None, image_field: str = "image",
            question_field: str = "question", answer_field: str = "answer", on_error: str = "raise",
            **load_kwargs) -> SampleSet:
    """``datasets.load_dataset(path, split=split, **load_kwargs)`` → VQA samples.

    ``path``: a hub id (see ``HUB_IDS``) or a builder name such as ``"parquet"`` with
    ``data_files=...``. Image columns decode to PIL images (``datasets.Image`` feature).
    """
    check_mode(on_error)
    import datasets  # lazy: optional heavy dependency

    ds = datasets.load_dataset(path, split=split, **load_kwargs)
    name = dataset or path.split("/")[-1]
    report = LoadReport(source=f"hf/{path}", on_error=on_error)
    missing = [f for f in (image_field, question_field, answer_field) if f not in ds.column_names]
    if missing:
        from fedpia.data.errors import DataError

        raise DataError(f"missing column(s) {missing}; has {ds.column_names}", file=path)
    samples = []
    for i, r in enumerate(ds):
        img = r[image_field]
        if not isinstance(img, Image.Image):
            report.fail(f"{image_field!r} is not an image ({type(img).__name__})", file=path, row=i)
            continue
        samples.append(_vqa_sample(img, r[question_field], r[answer_field], dataset=name,
                                   split=split, uid=f"{name}/{split}/{i}"))
    return SampleSet(samples, report.finish(len(samples)))
