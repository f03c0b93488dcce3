"""In-process reference predictions of a run (what the simulator's evaluation computes)."""

from __future__ import annotations

import torch

from fedpia.client.metrics import predict as split_logits
from fedpia.models import set_base_delta
from fedpia.rounds import build_run
from fedpia.sim import load_checkpoint


def reference_logits(cfg, run_dir, client: str, adapter: str) -> tuple[torch.Tensor, object]:
    """``(logits [N, C], runtime)`` of ``client``'s test split with the checkpoint's ``adapter``
    ("global" or the client's own, with its base-weight deltas) and the client's head, through
    the client runtime the simulator evaluates with (a model freshly built from ``cfg``)."""
    server, clients, _ = load_checkpoint(run_dir / "checkpoints")
    run = build_run(cfg)
    index = [c.name for c in run.data.clients].index(client)
    rt = run.runtime(index)
    extra = server.extra if adapter == "global" else clients[client].extra
    state = server.adapter if adapter == "global" else clients[client].adapter
    rt.head.load_state_dict(clients[client].head)
    rt.model.load_trainable_state(state)
    set_base_delta(rt.model, extra.get("base_delta") or None)
    try:
        return split_logits(rt.model, rt.head, rt.test), rt
    finally:
        set_base_delta(rt.model, None)


def exported_logits(ex, cfg, client: str) -> tuple[torch.Tensor, tuple]:
    """``(logits [N, C], test samples)`` of the exported model on ``client``'s raw test samples."""
    split = build_run(cfg).data.client(client)
    return ex.logits([s.image for s in split.test], [s.text for s in split.test], head=client), split.test


def trained_client(run_dir) -> str:
    """The first client (by name) that has a personalised adapter in the run's checkpoint."""
    _, clients, _ = load_checkpoint(run_dir / "checkpoints")
    return sorted(n for n, c in clients.items() if c.adapter is not None)[0]
