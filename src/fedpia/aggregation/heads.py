"""Task-head averaging among clients that share a task signature.

FedPIA keeps every client's head local by default (answer pools / label sets differ by client;
docs/baselines.md, "shared heads"). Option: clients whose task signature is equal (e.g. the same ordered answer pool)
share a head, i.e. receive the weighted FedAvg of their heads; others are left untouched.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch

from ._common import State, normalize_weights, weighted_average


def average_heads_by_task(
    heads: Sequence[Mapping[str, torch.Tensor]],
    tasks: Sequence[Hashable],
    weights: Sequence[float] | torch.Tensor | None,
) -> list[State]:
    r"""For every group G of clients with equal ``tasks[k]``, client k in G receives
    :math:`\sum_{j\in G} w_j h_j / \sum_{j\in G} w_j`. Singletons get a copy of their own head.

    Raises ``ValueError`` when lengths differ, heads in one group have different keys/shapes
    (naming the key), or a shared group's weights sum to zero.
    """
    n = len(heads)
    if len(tasks) != n:
        raise ValueError(f"got {n} heads but {len(tasks)} task signatures")
    p = normalize_weights(weights, n)
    groups: dict[Hashable, list[int]] = {}
    for k, task in enumerate(tasks):
        groups.setdefault(task, []).append(k)
    out: list[State | None] = [None] * n
    for task, members in groups.items():
        if len(members) == 1:
            k = members[0]
            out[k] = {key: t.detach().clone() for key, t in heads[k].items()}
            continue
        w = p[members]
        if w.sum() <= 0:
            raise ValueError(f"clients {members} with task {task!r} all have weight 0")
        try:
            avg = weighted_average([heads[k] for k in members], w)
        except ValueError as err:
            raise ValueError(f"heads of clients {members} (task {task!r}): {err}") from err
        for k in members:
            out[k] = {key: t.clone() for key, t in avg.items()}
    return out  # type: ignore[return-value]
