"""Task settings as named presets: ``SETTINGS`` registry, :func:`get_setting`, :func:`describe`.

Synthetic presets need no files. Real presets take ``data_root``: a folder laid out like
``shared/data`` (``vqa_rad/``, ``medmnist/``, ``covid_chestxray_subset/``; ``mimic_cxr/`` for T4).
Every builder is deterministic given ``seed`` (one ``numpy.random.Generator`` per use, derived from
``[seed, k]``). See docs/data.md for the client layout of each preset.
"""

from __future__ import annotations

import inspect
import typing
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fedpia.data.errors import DataError
from fedpia.data.partition import (
    train_val_split,
)
from fedpia.data.schema import ClientSplit, FederatedData, Sample
from fedpia.data.synthetic import KINDS, LOCATIONS, SyntheticSpec, generate, skewed_probs
from fedpia.typecheck import check_value

SETTINGS: dict[str, Callable[..., FederatedData]] = {}


def register_setting(name: str):
    def deco(fn: Callable[..., FederatedData]) -> Callable[..., FederatedData]:
        if name in SETTINGS:
            raise ValueError(f"setting {name!r} already registered")
        SETTINGS[name] = fn
        return fn
    return deco


def get_setting(name: str, *, data_root: str | Path | None = None, seed: int = 0, **overrides) -> FederatedData:
    """Build preset ``name``; ``overrides`` are the builder's keyword knobs (unknown keys raise)."""
    overrides = check_setting_options(name, overrides)
    return SETTINGS[name](data_root=data_root, seed=seed, **overrides)


def check_setting_options(name: str, options: dict) -> dict:
    """``options`` checked against setting ``name``'s knobs (names and annotated types) without
    loading any data; a ValueError names the knob."""
    if name not in SETTINGS:
        raise ValueError(f"unknown setting {name!r}; known: {sorted(SETTINGS)}")
    fn = SETTINGS[name]
    params = inspect.signature(fn).parameters
    allowed = {p for p, v in params.items() if v.kind is not v.VAR_KEYWORD} - {"data_root", "seed"}
    if any(v.kind is v.VAR_KEYWORD for v in params.values()):
        allowed |= set(_SYN_DEFAULTS)  # synthetic builders forward sizes to _synthetic
    bad = sorted(set(options) - allowed)
    if bad:
        raise ValueError(f"setting {name!r} has no knob(s) {bad}; knobs: {sorted(allowed)}")
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable annotations: the builder checks its own knobs
        hints = {}
    hints = {**{k: type(v) for k, v in _SYN_DEFAULTS.items()}, **hints}
    return {k: check_value(v, hints.get(k, Any), f"setting_options.{k}") for k, v in options.items()}


def describe(fd: FederatedData, *, top_k: int = 3) -> str:
    """Multi-line per-client summary: sizes per split, task, answer-space / label-set size (from
    train), top-k training labels; for VQA clients a second line with open/closed counts per split
    and the share of test answers inside the client's training answer space (the rest score 0)."""
    lines = [f"setting {fd.setting!r}: {len(fd.clients)} clients, metric={fd.metric}"]
    if fd.description:
        lines.append(f"  {fd.description}")
    for c in fd.clients:
        labels = Counter(t for s in c.train for t in (s.target if c.task == "multilabel" else (s.target,)))
        top = ", ".join(f"{lab}:{n}" for lab, n in labels.most_common(top_k))
        sz = c.sizes()
        lines.append(f"  {c.name:<20} {c.task:<10} train={sz['train']:<5} val={sz['val']:<4} "
                     f"test={sz['test']:<4} labels={len(labels)} top[{top}]")
        if c.task == "vqa":
            lines.append(" " * 23 + _vqa_summary(c))
    total = {part: sum(c.sizes()[part] for c in fd.clients) for part in ("train", "val", "test")}
    lines.append(f"  {'total':<31} train={total['train']:<5} val={total['val']:<4} test={total['test']}")
    return "\n".join(lines)


def _vqa_summary(c: ClientSplit) -> str:
    """``open/closed train=a/b val=c/d test=e/f test_in_space=x%`` for one VQA client."""
    def oc(part: Sequence[Sample]) -> str:
        n = Counter(s.meta["answer_type"] for s in part)
        return f"{n['open']}/{n['closed']}"

    space = c.label_space()
    seen = sum(space.encode(s.target) >= 0 for s in c.test)
    share = f"{100 * seen / len(c.test):.1f}%" if c.test else "n/a"
    return (f"open/closed train={oc(c.train)} val={oc(c.val)} test={oc(c.test)} "
            f"test_in_space={share}")


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed, *key])


def _take(samples: Sequence[Sample], idx) -> list[Sample]:
    return [samples[int(i)] for i in idx]


def _cap(samples: Sequence[Sample], max_n: int | None, rng: np.random.Generator) -> list[Sample]:
    """Deterministic random subsample of at most ``max_n`` (order kept)."""
    if max_n is None or len(samples) <= max_n:
        return list(samples)
    return _take(samples, np.sort(rng.choice(len(samples), size=max_n, replace=False)))


def _root(data_root: str | Path | None, sub: str, setting: str) -> Path:
    if data_root is None:
        raise ValueError(f"setting {setting!r} needs data_root (a folder holding {sub}/)")
    path = Path(data_root) / sub
    if not path.is_dir():
        raise DataError(f"setting {setting!r}: required data folder {sub}/ not found", file=path)
    return path


def _split_client(name: str, task: str, pool: Sequence[Sample], *, seed: int, k: int,
                  val_fraction: float, test: Sequence[Sample] | None = None,
                  test_fraction: float = 0.0, group_key: str = "uid", max_train: int | None = None,
                  max_val: int | None = None, max_test: int | None = None, meta=None) -> ClientSplit:
    """Carve val (and test, when ``test`` is None) out of ``pool`` by groups of ``meta[group_key]``."""
    rng = _rng(seed, k, 1)
    pool = list(pool)
    if test is None:
        rest, te = train_val_split(len(pool), val_fraction=test_fraction, rng=rng,
                                   groups=[s.meta[group_key] for s in pool])
        pool, test = _take(pool, rest), _take(pool, te)
    tr, va = train_val_split(len(pool), val_fraction=val_fraction, rng=rng,
                             groups=[s.meta[group_key] for s in pool])
    return ClientSplit(name=name, task=task, train=_cap(_take(pool, tr), max_train, rng),
                       val=_cap(_take(pool, va), max_val, rng), test=_cap(list(test), max_test, rng),
                       meta=dict(meta or {}))


# ----------------------------------------------------------------------------- synthetic presets
def _synthetic(setting: str, plan: Sequence[tuple[str, str]], *, seed: int, metric: str,
               n_train: int, n_val: int, n_test: int, image_size: int, label_skew: float | None,
               description: str) -> FederatedData:
    """``plan`` = [(modality, task)] per client; label skew = Dirichlet(α) priors on kind/location."""
    clients = []
    for k, (modality, task) in enumerate(plan):
        rng = _rng(seed, k)
        spec = SyntheticSpec(modality=modality, task=task, image_size=image_size,
                             kind_probs=skewed_probs(len(KINDS), alpha=label_skew, rng=rng),
                             location_probs=skewed_probs(len(LOCATIONS), alpha=label_skew, rng=rng))
        name = f"client{k}-{modality}-{task}"
        parts = {split: generate(spec, n, rng=rng, split=split, site=name, uid_prefix=name)
                 for split, n in (("train", n_train), ("val", n_val), ("test", n_test))}
        clients.append(ClientSplit(name=name, task=task, meta={"spec": spec}, **parts))
    return FederatedData(setting=setting, clients=tuple(clients), metric=metric, description=description)


_SYN_DEFAULTS = {"n_train": 160, "n_val": 20, "n_test": 40, "image_size": 32}


@register_setting("synthetic")
def synthetic(*, data_root=None, seed: int = 0, modalities: Sequence[str] = ("x-ray", "ultrasound", "fundus", "ct"),
              label_skew: float | None = 1.0, **knobs) -> FederatedData:
    """Embedded default: one VQA client per modality, mild label skew (CPU demo sized)."""
    return _synthetic("synthetic", [(m, "vqa") for m in modalities], seed=seed, metric="vqa_accuracy",
                      label_skew=label_skew, description="synthetic VQA, one modality per client",
                      **(_SYN_DEFAULTS | knobs))


@register_setting("t1-synthetic")
def t1_synthetic(*, data_root=None, seed: int = 0, n_clients: int = 5, label_skew: float | None = 0.5,
                 **knobs) -> FederatedData:
    """T1 stand-in: 5 VQA clients (modalities cycled), Dirichlet(0.5) answer skew."""
    mods = ("x-ray", "ct", "ultrasound", "fundus")
    return _synthetic("t1-synthetic", [(mods[k % 4], "vqa") for k in range(n_clients)], seed=seed,
                      metric="vqa_accuracy", label_skew=label_skew,
                      description="T1 stand-in: MedVQA clients with answer skew", **(_SYN_DEFAULTS | knobs))


@register_setting("t2-synthetic")
def t2_synthetic(*, data_root=None, seed: int = 0, n_clients: int = 8, label_skew: float | None = None,
                 **knobs) -> FederatedData:
    """T2 stand-in: 8 VQA clients, modality per client (each modality twice)."""
    mods = ("x-ray", "ultrasound", "fundus", "ct")
    return _synthetic("t2-synthetic", [(mods[k % 4], "vqa") for k in range(n_clients)], seed=seed,
                      metric="vqa_accuracy", label_skew=label_skew,
                      description="T2 stand-in: modality-heterogeneous VQA",
                      **(_SYN_DEFAULTS | {"n_train": 80} | knobs))


@register_setting("t3-synthetic")
def t3_synthetic(*, data_root=None, seed: int = 0, n_clients: int = 4, label_skew: float | None = 0.5,
                 **knobs) -> FederatedData:
    """T3 stand-in: 4 x-ray clients, image + templated report → multi-label findings."""
    return _synthetic("t3-synthetic", [("x-ray", "multilabel")] * n_clients, seed=seed, metric="f1",
                      label_skew=label_skew, description="T3 stand-in: image+report multi-label",
                      **(_SYN_DEFAULTS | knobs))


@register_setting("t5-synthetic")
def t5_synthetic(*, data_root=None, seed: int = 0, label_skew: float | None = 1.0, **knobs) -> FederatedData:
    """T5 stand-in: task-heterogeneous (2 VQA, 2 multiclass, 1 multilabel)."""
    plan = [("x-ray", "vqa"), ("ct", "vqa"), ("ultrasound", "multiclass"), ("fundus", "multiclass"),
            ("x-ray", "multilabel")]
    return _synthetic("t5-synthetic", plan, seed=seed, metric="f1", label_skew=label_skew,
                      description="T5 stand-in: VQA + classification clients", **(_SYN_DEFAULTS | knobs))
