"""In-process federated simulator: ONE frozen backbone shared by all clients.

Per client only the adapter, the head and the strategy's client state are swapped into the shared
model; nothing else is copied. A round:

1. sample clients (seeded by ``(seed, round)``);
2. each sampled client: ``strategy.client_start`` (client-side PIA) -> :func:`train_local` ->
   ``strategy.client_finish``; a client that raises is logged and dropped (tolerated up to
   ``max_failure_frac``);
3. uploads are validated (NaN/Inf, keys, shapes, dtypes); invalid ones are rejected with a reason;
4. ``strategy.aggregate``; if fewer than ``min_clients`` valid updates remain or aggregation fails,
   the round raises :class:`RoundFailed` and the previous state is kept;
5. evaluation of every client: personalised (own adapter) and global (global adapter + own head);
6. an atomic checkpoint.

Every random choice derives from ``(seed, round, client index)``, so a run resumed from a
checkpoint gives the same results as an uninterrupted one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from fedpia.aggregation import AggregationError, average_heads_by_task, filter_updates
from fedpia.client import TrainConfig
from fedpia.client.runtime import ClientRuntime, client_round, derive_seed, evaluate_adapter
from fedpia.data import FederatedData
from fedpia.sim.checkpoint import load_checkpoint, save_checkpoint
from fedpia.strategies.base import (
    ClientState,
    ClientUpdate,
    RoundContext,
    ServerState,
    State,
    Strategy,
)

log = logging.getLogger(__name__)


class RoundFailed(RuntimeError):
    """A round could not complete; the simulator state is unchanged."""


@dataclass(frozen=True)
class SimConfig:
    """Engine knobs. ``failure_prob`` injects simulated client crashes (robustness studies)."""

    rounds: int = 30
    fraction_fit: float = 1.0
    min_clients: int = 1
    seed: int = 0
    share_heads: bool = False
    failure_prob: float = 0.0
    max_failure_frac: float = 0.5
    eval_global: bool = True

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ValueError(f"sim.rounds must be >= 1, got {self.rounds}")
        if not 0.0 < self.fraction_fit <= 1.0:
            raise ValueError(f"sim.fraction_fit must be in (0, 1], got {self.fraction_fit}")
        if self.min_clients < 1:
            raise ValueError(f"sim.min_clients must be >= 1, got {self.min_clients}")
        if self.seed < 0:
            raise ValueError(f"sim.seed must be >= 0, got {self.seed}")
        for knob in ("failure_prob", "max_failure_frac"):
            if not 0.0 <= getattr(self, knob) <= 1.0:
                raise ValueError(f"sim.{knob} must be in [0, 1], got {getattr(self, knob)}")


def check_min_clients(sim: SimConfig, data: FederatedData) -> None:
    """ValueError when ``sim.min_clients`` exceeds the setting's clients (no round could succeed)."""
    if sim.min_clients > len(data.clients):
        raise ValueError(f"sim.min_clients={sim.min_clients} but setting {data.setting!r} has "
                         f"{len(data.clients)} clients: no round could succeed")


@dataclass
class SimState:
    """Everything needed to continue a run: server, every client, rounds done, history."""

    server: ServerState
    clients: dict[str, ClientState]
    round: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def aggregate_round(
    strategy: Strategy,
    server: ServerState,
    updates: list[ClientUpdate],
    *,
    round_: int,
    sim: SimConfig,
    num_clients: int,
) -> tuple[ServerState, dict[str, Any], dict[int, str], float]:
    """Screen uploads (NaN/Inf, keys, shapes, dtypes) and aggregate the valid ones.

    Shared by every engine. Returns (new server state, diagnostics, {index: rejection reason},
    aggregation seconds). Raises :class:`RoundFailed` (state untouched) when fewer than
    ``sim.min_clients`` valid updates remain or the strategy's aggregation fails.
    """
    try:
        valid, rejected = filter_updates(
            [u.state for u in updates], server.adapter, min_clients=sim.min_clients
        )
    except AggregationError as exc:
        raise RoundFailed(f"round {round_}: {exc}") from exc
    for i, reason in rejected.items():
        log.warning("round %d: rejected update of %s: %s", round_, updates[i].client, reason)
    ctx = RoundContext(round=round_, num_rounds=sim.rounds, seed=sim.seed, num_clients=num_clients)
    t0 = time.perf_counter()
    try:
        new, diag = strategy.aggregate(server, [updates[i] for i in valid], ctx)
    except Exception as exc:
        raise RoundFailed(f"round {round_}: aggregation failed: {exc}") from exc
    return new, diag, rejected, time.perf_counter() - t0


def state_bytes(state: State) -> int:
    return sum(t.numel() * t.element_size() for t in state.values())


class Simulator:
    """Drive ``strategy`` over ``data`` with the shared ``model`` (see module docstring)."""

    def __init__(
        self,
        model: nn.Module,
        data: FederatedData,
        strategy: Strategy,
        *,
        sim: SimConfig,
        train: TrainConfig,
        checkpoint_dir: Path | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        initial_adapter: State | None = None,
    ) -> None:
        if not data.clients:
            raise ValueError(f"setting {data.setting!r} has no clients")
        check_min_clients(sim, data)
        self.model, self.data, self.strategy = model, data, strategy
        self.sim, self.train_cfg = sim, train
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.on_event = on_event or (lambda event, info: None)
        self.clients: list[ClientRuntime] = []
        for i, split in enumerate(data.clients):
            self.on_event("encode", {"client": split.name})
            self.clients.append(ClientRuntime.build(model, split, index=i, seed=sim.seed))
        # every client starts from the same adapter (the model's current one unless given)
        self.initial_adapter = (
            initial_adapter if initial_adapter is not None else model.trainable_state()
        )

    # ---------------------------------------------------------------- state
    def initial_state(self) -> SimState:
        clients = {c.name: ClientState(head=c.initial_head()) for c in self.clients}
        return SimState(server=self.strategy.server_init(self.initial_adapter), clients=clients)

    def resume_state(self) -> SimState:
        if self.checkpoint_dir is None:
            raise ValueError("resume needs a checkpoint_dir")
        server, clients, meta = load_checkpoint(self.checkpoint_dir)
        return SimState(
            server=server, clients=clients, round=meta["round"], history=meta["history"]
        )

    # ---------------------------------------------------------------- run
    def run(self, state: SimState | None = None) -> SimState:
        state = state or self.initial_state()
        while state.round < self.sim.rounds:
            state = self.run_round(state)
            if self.checkpoint_dir is not None:
                save_checkpoint(
                    self.checkpoint_dir,
                    server=state.server,
                    clients=state.clients,
                    round_=state.round,
                    meta={"history": state.history},
                )
        return state

    def run_round(self, state: SimState) -> SimState:
        r = state.round + 1
        t0 = time.perf_counter()
        chosen = self._sample(r)
        self.on_event("round_start", {"round": r, "clients": [c.name for c in chosen]})
        payload = self.strategy.client_payload(state.server)
        new_clients = dict(state.clients)
        updates, failed, per_client = [], {}, {}
        for c in chosen:
            try:
                upd, cstate, info = self._client_round(c, payload, state.clients[c.name], r)
            except Exception as exc:  # a failing client is dropped, the round goes on
                log.warning("round %d: client %s failed: %s", r, c.name, exc)
                failed[c.name] = f"{type(exc).__name__}: {exc}"
                continue
            updates.append(upd)
            new_clients[c.name] = cstate
            per_client[c.name] = info
            self.on_event("client_done", {"round": r, "client": c.name, **info})
        if len(failed) > self.sim.max_failure_frac * len(chosen):
            raise RoundFailed(f"round {r}: {len(failed)}/{len(chosen)} clients failed: {failed}")
        server, diag, rejected, server_time = aggregate_round(
            self.strategy, state.server, updates, round_=r, sim=self.sim, num_clients=len(self.clients)
        )
        kept = [u for i, u in enumerate(updates) if i not in rejected]
        if self.sim.share_heads:
            new_clients = self._share_heads(new_clients, [u.client for u in kept])
        record = {
            "round": r,
            "clients": per_client,
            "failed": failed,
            "rejected": {updates[i].client: why for i, why in rejected.items()},
            "server_time": server_time,
            "bytes_down": state_bytes(payload["adapter"]) * len(chosen),
            "bytes_up": sum(state_bytes(u.state) for u in updates),
            "diagnostics": diag,
        }
        record["eval"] = self.evaluate(server, new_clients)
        record["round_time"] = time.perf_counter() - t0
        self.on_event("round_end", record)
        return SimState(
            server=server, clients=new_clients, round=r, history=[*state.history, record]
        )

    # ---------------------------------------------------------------- pieces
    def _sample(self, r: int) -> list[ClientRuntime]:
        k = max(self.sim.min_clients, round(self.sim.fraction_fit * len(self.clients)))
        k = min(k, len(self.clients))
        if k == len(self.clients):
            return list(self.clients)
        rng = np.random.default_rng(derive_seed(self.sim.seed, r, 1))
        idx = sorted(rng.choice(len(self.clients), size=k, replace=False).tolist())
        return [self.clients[i] for i in idx]

    def _client_round(
        self, c: ClientRuntime, payload: dict[str, State], cstate: ClientState, r: int
    ) -> tuple[Any, ClientState, dict[str, float]]:
        if self.sim.failure_prob > 0:
            draw = np.random.default_rng(derive_seed(self.sim.seed, r, c.index, 99)).random()
            if draw < self.sim.failure_prob:
                raise RuntimeError("simulated client failure")
        m = getattr(self.strategy, "probe_samples", 0) or _adapter_width(self.initial_adapter)
        return client_round(
            c,
            self.strategy,
            payload,
            cstate,
            round_=r,
            num_rounds=self.sim.rounds,
            seed=self.sim.seed,
            train_cfg=self.train_cfg,
            probe_samples=m,
            num_clients=len(self.clients),
        )

    def _share_heads(
        self, clients: dict[str, ClientState], names: list[str]
    ) -> dict[str, ClientState]:
        by_name = {c.name: c for c in self.clients}
        sigs = [(by_name[n].task, tuple(by_name[n].space.labels)) for n in names]
        weights = [float(len(by_name[n].train)) for n in names]
        heads = average_heads_by_task([clients[n].head for n in names], sigs, weights)
        out = dict(clients)
        for n, h in zip(names, heads, strict=True):
            out[n] = replace(clients[n], head=h)
        return out

    def evaluate(self, server: ServerState, clients: dict[str, ClientState]) -> dict[str, Any]:
        """Per client: personalised (own adapter + head) and global (global adapter + head)."""
        out: dict[str, Any] = {}
        for c in self.clients:
            cs = clients[c.name]
            res: dict[str, Any] = {}
            if cs.adapter is not None:
                res["personalized"] = evaluate_adapter(
                    c, cs.adapter, cs.head, base_delta=cs.extra.get("base_delta")
                )
            if self.sim.eval_global:
                res["global"] = evaluate_adapter(
                    c, server.adapter, cs.head, base_delta=server.extra.get("base_delta")
                )
            out[c.name] = res
        return out


def _adapter_width(state: State) -> int:
    from fedpia.align import unit_groups

    groups = unit_groups(state)
    return max((g.width for g in groups), default=16)
