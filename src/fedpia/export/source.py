"""What a run folder holds for export: its config, last checkpoint and head vocabularies.

A run folder (``fedpia run --out RUN_DIR``) holds ``config.json`` (written when the run starts),
``checkpoints/checkpoint/`` (the server and every client after the last completed round,
:mod:`fedpia.sim.checkpoint`) and, once finished, ``results.json``. :func:`read_run` reads them;
:func:`select_adapter` picks what one export carries:

- ``"global"``: the server's global adapter (+ its LoRA base-weight deltas, FLoRA / FedEx-LoRA)
  and the head of every client that has trained: the ``global`` evaluation view of each client
  (a client never sampled still has its randomly initialised head: left out, and named in
  ``Selection.left_out``);
- a client name: that client's personalised adapter (+ its base-weight deltas) and its own head:
  its ``personalized`` evaluation view (Ditto: the personal model; FedSA-LoRA: local B, ...).

Every refusal is an :class:`ExportError` (a ValueError) saying what is missing.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedpia.rounds import ExperimentConfig
from fedpia.sim.checkpoint import load_checkpoint
from fedpia.strategies.base import ClientState, ServerState, State


class ExportError(ValueError):
    """A run folder cannot be exported, or an export folder cannot be written or read."""


@dataclass(frozen=True)
class RunSnapshot:
    """A run folder after its last completed round.

    ``vocab``: ``{client: {"task", "labels"}}`` (head output index -> string); ``results``: the
    parsed ``results.json`` (None while the run has not finished)."""

    run_dir: Path
    config: ExperimentConfig
    round: int
    server: ServerState
    clients: dict[str, ClientState]
    vocab: dict[str, dict[str, Any]]
    history: list[dict[str, Any]]
    results: dict[str, Any] | None


@dataclass(frozen=True)
class Selection:
    """One adapter and the heads exported with it.

    ``kind``: "global" | "client"; ``heads``: ``{client: head state}``; ``metrics``: ``{client:
    the last round's metrics of this adapter with that client's head}`` (absent when the run did
    not evaluate that view, e.g. ``sim.eval_global=False``); ``left_out``: ``{client: why its
    head is not exported}``."""

    kind: str
    client: str | None
    adapter: State
    base_delta: State | None
    heads: dict[str, State]
    metrics: dict[str, dict[str, float]]
    left_out: dict[str, str] = dataclasses.field(default_factory=dict)


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ExportError(f"{path} is not valid JSON ({exc})") from exc


def _run_config(run_dir: Path, results: dict[str, Any] | None) -> ExperimentConfig:
    raw = _read_json(run_dir / "config.json") or (results or {}).get("config")
    if raw is None:
        raise ExportError(f"{run_dir} is not a fedpia run folder (no config.json or results.json; "
                          "give the --out folder of `fedpia run`)")
    cfg = ExperimentConfig.from_dict(raw)
    if cfg.engine == "flower":
        raise ExportError(f"{run_dir} is a Flower run: the Flower engine keeps no fedpia "
                          "checkpoints (adapters and heads stay on the nodes), so there is nothing "
                          "to export; run the experiment in-process (engine='inprocess') to export it")
    if cfg.strategy == "centralized":
        raise ExportError(f"{run_dir} is a 'centralized' run, which keeps no checkpoints: nothing "
                          "to export")
    return cfg


def read_run(run_dir: str | Path) -> RunSnapshot:
    """The run in ``run_dir`` after its last checkpointed round (ExportError when it has none,
    or when the checkpoint predates the head vocabularies)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ExportError(f"run folder {run_dir} does not exist")
    results = _read_json(run_dir / "results.json")
    cfg = _run_config(run_dir, results)
    ckpt = run_dir / "checkpoints"
    try:
        server, clients, meta = load_checkpoint(ckpt)
    except FileNotFoundError as exc:
        raise ExportError(f"no checkpoint under {ckpt}: the run has not completed a round (or its "
                          "checkpoints were deleted); nothing to export") from exc
    vocab = meta.get("heads")
    if vocab is None:
        raise ExportError(
            f"the checkpoint in {ckpt} has no head vocabularies (label / answer strings per head): "
            "it was written by a fedpia version from before export existed. Re-run the experiment "
            "(fedpia run ... --overwrite), or extend it by one round (fedpia run ... --resume --set "
            "sim.rounds=N+1): checkpoints written now record them")
    return RunSnapshot(run_dir, cfg, int(meta["round"]), server, clients, vocab,
                       list(meta.get("history", [])), results)


def _last_eval(snap: RunSnapshot) -> dict[str, Any]:
    return snap.history[-1].get("eval", {}) if snap.history else {}


def _delta(extra: dict[str, State]) -> State | None:
    return extra.get("base_delta") or None


def select_adapter(snap: RunSnapshot, adapter: str = "global") -> Selection:
    """``"global"`` or a client name -> :class:`Selection` (module docstring). ExportError for an
    unknown client or a client that has not trained yet."""
    evals = _last_eval(snap)
    if adapter == "global":
        trained = {n: c for n, c in snap.clients.items() if c.adapter is not None and c.head is not None}
        if not trained:
            raise ExportError(f"no client of the run in {snap.run_dir} has trained yet: no trained "
                              "head to export")
        left_out = {n: "never trained: its head is the random init" for n in snap.clients
                    if n not in trained}
        heads = {n: c.head for n, c in trained.items()}
        metrics = {n: evals[n]["global"] for n in heads if "global" in evals.get(n, {})}
        return Selection("global", None, snap.server.adapter, _delta(snap.server.extra), heads,
                         metrics, left_out)
    if adapter not in snap.clients:
        raise ExportError(f"unknown client {adapter!r}: --adapter takes 'global' or one of "
                          f"{sorted(snap.clients)}")
    state = snap.clients[adapter]
    if state.adapter is None or state.head is None:
        raise ExportError(f"client {adapter!r} has not trained yet (it was never sampled up to "
                          f"round {snap.round}): it has no personalised adapter; export 'global'")
    metrics = {adapter: evals[adapter]["personalized"]} if "personalized" in evals.get(adapter, {}) else {}
    return Selection("client", adapter, state.adapter, _delta(state.extra), {adapter: state.head},
                     metrics)
