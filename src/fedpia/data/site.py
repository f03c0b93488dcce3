"""Site-local data: ONE client's data from the site's own folder, never a whole preset.

A deployed SuperNode (a hospital) is configured by its operator with its dataset folder and
format (Flower node config, ``--node-config 'data-format="vqa_rad" data-path="/data/vqa_rad"'``);
:func:`parse_site` reads those keys and :func:`load_site` builds the client's
:class:`~fedpia.data.ClientSplit` with any loader fedpia has:

| ``data-format`` | loader | task | test split |
|---|---|---|---|
| ``vqa_rad`` | :func:`~fedpia.data.load_vqa_rad` | vqa | official |
| ``slake`` | :func:`~fedpia.data.load_slake` (``data-language``) | vqa | official (+ official val) |
| ``medmnist:<flag>`` | :func:`~fedpia.data.load_medmnist` (``data-task``, ``data-size``) | vqa / multiclass / multilabel | official (+ official val) |
| ``covid`` | :func:`~fedpia.data.load_covid_cxr` | multilabel | carved by patient |
| ``hf`` | :func:`~fedpia.data.load_hf` on a ``save_to_disk`` folder or a local folder of data files ``datasets.load_dataset`` reads (``data-task``, ``data-train-split``, ``data-test-split``) | vqa / multiclass / multilabel | the named splits (val: a ``val`` / ``validation`` split), else carved |
| ``synthetic:<modality>`` | :func:`~fedpia.data.generate` (demos and tests; ``data-task``, ``data-n-train`` ...) | any | generated |

Common keys: ``data-max-train`` / ``data-max-val`` / ``data-max-test`` (deterministic caps),
``data-val-fraction`` (val carved from train when there is no official val, default 0.1),
``data-test-fraction`` (carved when there is no test split, default 0.2). An unknown ``data-*``
key raises (a typo must not be silently ignored). Carving is seeded from ``(seed, index)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMATS = ("vqa_rad", "slake", "medmnist", "covid", "hf", "synthetic")
#: option key (without ``data-``) -> (type, default)
OPTIONS: dict[str, tuple[type, Any]] = {
    "max-train": (int, None), "max-val": (int, None), "max-test": (int, None),
    "val-fraction": (float, 0.1), "test-fraction": (float, 0.2), "task": (str, None),
    "size": (int, 28), "language": (str, "en"), "train-split": (str, "train"),
    "test-split": (str, "test"), "n-train": (int, 64), "n-val": (int, 8), "n-test": (int, 32),
    "image-size": (int, 32),
}
_NEEDS_ARG = ("medmnist", "synthetic")


@dataclass(frozen=True)
class SiteSpec:
    """A site's data: ``format`` (one of ``FORMATS``), ``arg`` (the MedMNIST flag or synthetic
    modality), ``path`` (the folder; None for synthetic) and ``options`` (keys of ``OPTIONS``)."""

    format: str
    arg: str | None = None
    path: Path | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def option(self, key: str) -> Any:
        return self.options.get(key, OPTIONS[key][1])


def parse_site(node_config: Mapping[str, Any]) -> SiteSpec | None:
    """The :class:`SiteSpec` of a node config (None when it has no ``data-format``).
    ValueError names the offending key."""
    keys = {k: v for k, v in node_config.items() if str(k).startswith("data-") and k != "data-root"}
    if "data-format" in keys and "data-root" in node_config:
        raise ValueError("node config has data-format and data-root: data-root is the preset "
                         "folder of a simulated partition (partition-id), data-path the site's own")
    if "data-format" not in keys:
        if keys:
            raise ValueError(f"node config has {sorted(keys)} but no data-format "
                             f"(one of {list(FORMATS)})")
        return None
    fmt, _, arg = str(keys.pop("data-format")).partition(":")
    if fmt not in FORMATS:
        raise ValueError(f"data-format={fmt!r}; allowed: {list(FORMATS)} (medmnist:<flag>, "
                         "synthetic:<modality>)")
    if (fmt in _NEEDS_ARG) != bool(arg):
        raise ValueError(f"data-format={fmt!r} {'needs' if fmt in _NEEDS_ARG else 'takes no'} "
                         f"':<{'flag' if fmt == 'medmnist' else 'modality'}>' suffix")
    path = keys.pop("data-path", None)
    if fmt != "synthetic" and not path:
        raise ValueError(f"data-format={fmt!r} needs data-path (the site's dataset folder)")
    options = {}
    for key, value in keys.items():
        name = key[len("data-"):]
        if name not in OPTIONS:
            raise ValueError(f"unknown node config key {key!r}; data keys: data-format, "
                             f"data-path, " + ", ".join(f"data-{k}" for k in OPTIONS))
        typ = OPTIONS[name][0]
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, typ) or isinstance(value, bool):
            raise ValueError(f"node config {key}={value!r} must be a {typ.__name__}")
        options[name] = value
    return SiteSpec(fmt, arg or None, Path(str(path)).expanduser() if path else None, options)


def load_site(spec: SiteSpec, *, name: str, index: int, seed: int) -> Any:
    """The site's :class:`~fedpia.data.ClientSplit` named ``name`` (the server-assigned client
    name). Without an official test (val) split, test (val) is carved from train by group
    (image / patient / sample), so no group lands in two splits; then the caps apply. Carving
    and caps are seeded from ``(seed, index)``."""
    from fedpia.data.partition import train_val_split
    from fedpia.data.schema import ClientSplit
    from fedpia.data.settings import _cap, _rng, _take

    pools = _LOADERS[spec.format](spec, seed=seed, index=index)
    rng = _rng(seed, index, 1)
    train, val, test = list(pools["train"]), pools.get("val"), pools.get("test")
    if not train:
        raise ValueError(f"site data {spec.format} at {spec.path}: no training samples")
    key = pools.get("group", "uid")
    for part, fraction in (("test", "test-fraction"), ("val", "val-fraction")):
        if (test if part == "test" else val):
            continue
        rest, carved = train_val_split(len(train), val_fraction=spec.option(fraction), rng=rng,
                                       groups=[s.meta[key] for s in train])
        train, taken = _take(train, rest), _take(train, carved)
        test, val = (taken, val) if part == "test" else (test, taken)
    meta = {"format": spec.format, "arg": spec.arg, "path": str(spec.path) if spec.path else None}
    return ClientSplit(name=name, task=train[0].task, meta=meta,
                       train=_cap(train, spec.option("max-train"), rng),
                       val=_cap(list(val), spec.option("max-val"), rng),
                       test=_cap(list(test), spec.option("max-test"), rng))


def _vqa_rad(spec: SiteSpec, **_: Any) -> dict[str, Any]:
    from fedpia.data.vqarad import load_vqa_rad

    ds = load_vqa_rad(spec.path)
    return {"train": ds.split("train"), "test": ds.split("test"), "group": "image_name"}


def _slake(spec: SiteSpec, **_: Any) -> dict[str, Any]:
    from fedpia.data.slake import load_slake

    ds = load_slake(spec.path, language=spec.option("language"))
    return {"train": ds.split("train"), "val": ds.split("val"), "test": ds.split("test"),
            "group": "image_name"}


def _medmnist(spec: SiteSpec, **_: Any) -> dict[str, Any]:
    from fedpia.data.medmnist_data import load_medmnist

    ds = load_medmnist(spec.path, spec.arg, as_task=spec.option("task") or "vqa",
                       size=spec.option("size"))
    return {"train": ds.split("train"), "val": ds.split("val"), "test": ds.split("test")}


def _covid(spec: SiteSpec, **_: Any) -> dict[str, Any]:
    from fedpia.data.covid import load_covid_cxr

    return {"train": tuple(load_covid_cxr(spec.path)), "test": None, "group": "patient"}


def _hf(spec: SiteSpec, **_: Any) -> dict[str, Any]:
    from fedpia.data.hf import load_hf

    ds = load_hf(str(spec.path), task=spec.option("task") or "vqa")  # every split of the folder
    return {"train": ds.split(spec.option("train-split")), "val": ds.split("val") or None,
            "test": ds.split(spec.option("test-split")) or None}


def _synthetic(spec: SiteSpec, *, seed: int, index: int) -> dict[str, Any]:
    import numpy as np

    from fedpia.data.synthetic import SyntheticSpec, generate

    rng = np.random.default_rng([seed, index, 7])
    syn = SyntheticSpec(modality=spec.arg, task=spec.option("task") or "vqa",
                        image_size=spec.option("image-size"))
    site = f"site{index}-{spec.arg}"
    return {part: tuple(generate(syn, spec.option(f"n-{part}"), rng=rng, split=part, site=site,
                                 uid_prefix=site))
            for part in ("train", "val", "test")}


_LOADERS = {"vqa_rad": _vqa_rad, "slake": _slake, "medmnist": _medmnist, "covid": _covid,
            "hf": _hf, "synthetic": _synthetic}
