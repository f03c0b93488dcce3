"""Partitioners: pure functions over label / key lists returning per-client index arrays.

We use our own small functions rather than ``flwr_datasets.partitioner`` (those operate on Hugging
Face ``datasets.Dataset`` objects, while our samples are plain Python objects holding lazy image
paths); the Dirichlet scheme is the same as flwr-datasets' ``DirichletPartitioner`` (Hsu et al.
2019, arXiv:1909.06335): for every class c draw ``q_c ~ Dir(α·1_K)`` and give client k a share
``q_c[k]`` of class c's indices, with the usual balancing (clients already holding ≥ N/K samples
get no more) and a bounded number of re-draws until every client has ≥ ``min_size`` samples.

Every function takes an explicit ``numpy.random.Generator``; outputs are sorted index arrays.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence

import numpy as np


def iid_partition(n: int, n_clients: int, *, rng: np.random.Generator) -> list[np.ndarray]:
    """Random permutation of ``range(n)`` cut into ``n_clients`` near-equal parts (sizes differ ≤ 1)."""
    if n_clients < 1 or n < n_clients:
        raise ValueError(f"iid_partition: need 1 <= n_clients <= n, got n={n}, n_clients={n_clients}")
    return [np.sort(p) for p in np.array_split(rng.permutation(n), n_clients)]


def dirichlet_partition(labels: Sequence[Hashable], n_clients: int, *, alpha: float = 0.5,
                        rng: np.random.Generator, min_size: int = 1,
                        max_retries: int = 100) -> list[np.ndarray]:
    """Label-skewed partition: class c is split across clients by ``q_c ~ Dir(α·1_K)``.

    Small α → each client sees few classes; α → ∞ → IID. Raises ValueError when
    ``len(labels) < n_clients * min_size`` (impossible) or when ``max_retries`` draws all leave a
    client with fewer than ``min_size`` samples.
    """
    n = len(labels)
    if alpha <= 0:
        raise ValueError(f"dirichlet_partition: alpha must be > 0, got {alpha}")
    if n_clients < 1 or min_size < 0 or max_retries < 1:
        raise ValueError("dirichlet_partition: need n_clients >= 1, min_size >= 0, max_retries >= 1")
    if n < n_clients * min_size:
        raise ValueError(f"dirichlet_partition: {n} samples cannot give {n_clients} clients "
                         f">= {min_size} samples each")
    classes: dict[Hashable, list[int]] = {}
    for i, y in enumerate(labels):
        classes.setdefault(y, []).append(i)
    order = sorted(classes, key=str)
    for _ in range(max_retries):
        parts: list[list[int]] = [[] for _ in range(n_clients)]
        for c in order:
            idx = rng.permutation(classes[c])
            q = rng.dirichlet(np.full(n_clients, alpha))
            q = q * np.array([len(p) < n / n_clients for p in parts])  # balancing
            q = q / q.sum() if q.sum() > 0 else np.full(n_clients, 1.0 / n_clients)
            cuts = (np.cumsum(q) * len(idx)).astype(int)[:-1]
            for k, chunk in enumerate(np.split(idx, cuts)):
                parts[k].extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_size:
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    raise ValueError(f"dirichlet_partition: no draw gave every client >= {min_size} samples after "
                     f"{max_retries} retries (alpha={alpha}, n={n}, clients={n_clients}); "
                     "raise alpha, lower min_size or use fewer clients")


def natural_partition(keys: Sequence[Hashable], *,
                      groups: Mapping[str, Sequence[Hashable]] | None = None,
                      rest: str | None = None) -> dict[str, np.ndarray]:
    """Partition by a meta value (dataset, site, organ, modality, task).

    Without ``groups``: one client per distinct key (sorted by str). With ``groups``: client name →
    list of key values; keys in no group go to client ``rest`` (dropped when ``rest`` is None).
    Empty clients are dropped.
    """
    out: dict[str, list[int]] = {}
    if groups is None:
        for i, k in enumerate(keys):
            out.setdefault(str(k), []).append(i)
        return {name: np.asarray(out[name], dtype=np.int64) for name in sorted(out)}
    owner = {}
    for name, values in groups.items():
        for v in values:
            if v in owner:
                raise ValueError(f"natural_partition: key {v!r} is in groups {owner[v]!r} and {name!r}")
            owner[v] = name
    for i, k in enumerate(keys):
        name = owner.get(k, rest)
        if name is not None:
            out.setdefault(name, []).append(i)
    names = [g for g in groups if g in out] + ([rest] if rest in out and rest not in groups else [])
    return {name: np.asarray(out[name], dtype=np.int64) for name in names}


def task_partition(tasks: Sequence[str]) -> dict[str, np.ndarray]:
    """One client per task ("vqa", "multiclass", "multilabel"): natural partition by task."""
    return natural_partition(tasks)


def assign_like(train_labels: Sequence[Hashable], parts: Sequence[np.ndarray],
                labels: Sequence[Hashable], *, rng: np.random.Generator) -> list[np.ndarray]:
    """Split another set (e.g. the official test set) with the class mix of a train partition:
    a sample of class c goes to client k with probability ``n_{c,k} / n_c`` (uniform for unseen c)."""
    k = len(parts)
    counts: dict[Hashable, np.ndarray] = {}
    for j, p in enumerate(parts):
        for i in p:
            counts.setdefault(train_labels[i], np.zeros(k))[j] += 1
    out: list[list[int]] = [[] for _ in range(k)]
    for i, y in enumerate(labels):
        w = counts.get(y, np.ones(k))
        out[int(rng.choice(k, p=w / w.sum()))].append(i)
    return [np.asarray(o, dtype=np.int64) for o in out]


def train_val_split(n: int, *, val_fraction: float, rng: np.random.Generator,
                    groups: Sequence[Hashable] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Random split of ``range(n)`` into (train, val) with ≈ ``val_fraction`` in val.

    With ``groups`` (e.g. patient or image ids) whole groups go to one side (no leakage); val gets
    groups until it holds ≥ round(val_fraction·n) samples. Train is never left empty.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"train_val_split: val_fraction must be in [0, 1), got {val_fraction}")
    groups = list(range(n)) if groups is None else list(groups)
    if len(groups) != n:
        raise ValueError(f"train_val_split: {len(groups)} groups for {n} samples")
    members: dict[Hashable, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    keys = list(members)
    want = int(round(val_fraction * n))
    val: list[int] = []
    for j in rng.permutation(len(keys)):
        if len(val) >= want:
            break
        if n - len(val) - len(members[keys[j]]) < 1:
            continue
        val.extend(members[keys[j]])
    val_arr = np.sort(np.asarray(val, dtype=np.int64))
    train_arr = np.setdiff1d(np.arange(n), val_arr)
    return train_arr, val_arr


def partition_report(labels: Sequence[Hashable], parts: Mapping[str, np.ndarray] | Sequence[np.ndarray],
                     *, top_k: int = 5) -> list[dict]:
    """Per client: ``{"client", "size", "top_labels": [(label, count), ...]}`` (log / describe)."""
    items = parts.items() if isinstance(parts, Mapping) else enumerate(parts)
    return [{"client": name, "size": len(idx),
             "top_labels": Counter(labels[i] for i in idx).most_common(top_k)} for name, idx in items]
