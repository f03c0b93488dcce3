"""In-process federated simulator: ONE frozen backbone shared by all clients.

A transport around the round protocol of :mod:`fedpia.rounds` (every decision lives there):
the loop over rounds, the clients run one after the other in this process, and an atomic
checkpoint after each round. Per client only the adapter, the head and the strategy's client
state are swapped into the shared model; nothing else is copied. A round:

1. ``sample_clients``; ``strategy.client_payload(server)``;
2. each sampled client: ``client_step`` (failure draw, client-side PIA, local training, injected
   faults); a client that raises is recorded in ``failed`` and the round goes on;
3. ``server_step``: screening, bounded influence, aggregation, failure policy
   (``sim.on_failure``: a failed round is skipped with the previous global state kept, or
   raises :class:`~fedpia.rounds.RoundFailed`);
4. ``sim.share_heads``: heads averaged among clients of the same task (in-process only);
5. ``evaluate_client`` for every client (personalised and global views);
6. an atomic checkpoint (the privacy ledger included, so a resumed DP run keeps counting; and
   every head's label vocabulary, so a head can be exported with its answer strings).

DP noise here is seeded from the run seed (``noise_secret=None``): reproducible, and no real
privacy against anyone who knows ``sim.seed`` (:data:`fedpia.rounds.SEEDED_NOISE`).

Every random choice derives from named seed streams (``fedpia.rounds.seeds``), so a run resumed
from a checkpoint gives the same results as an uninterrupted one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from torch import nn

from fedpia.aggregation import average_heads_by_task
from fedpia.client import TrainConfig
from fedpia.client.runtime import ClientRuntime
from fedpia.data import FederatedData
from fedpia.privacy.accountant import PrivacyLedger
from fedpia.privacy.config import DPConfig
from fedpia.rounds import (
    SEEDED_NOISE,
    RobustConfig,
    RoundFailed,
    RoundRules,
    Run,
    SimConfig,
    check_min_clients,
    client_runtime,
    client_step,
    evaluate_client,
    global_view,
    initial_client_state,
    new_ledger,
    sample_clients,
    server_step,
    state_bytes,
)
from fedpia.sim.checkpoint import load_checkpoint, save_checkpoint
from fedpia.strategies.base import ClientState, ServerState, State, Strategy

log = logging.getLogger(__name__)

# RoundFailed, SimConfig, check_min_clients, state_bytes moved to fedpia.rounds (re-exported)
__all__ = ["RoundFailed", "SimConfig", "SimState", "Simulator", "check_min_clients", "state_bytes"]


@dataclass
class SimState:
    """Everything needed to continue a run: server, every client, rounds done, history, and
    the privacy ledger (None without DP)."""

    server: ServerState
    clients: dict[str, ClientState]
    round: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    ledger: PrivacyLedger | None = None


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
        robust: RobustConfig | None = None,
        dp: DPConfig | None = None,
        checkpoint_dir: Path | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        initial_adapter: State | None = None,
        runtime: Callable[[int], ClientRuntime] | None = None,
    ) -> None:
        if not data.clients:
            raise ValueError(f"setting {data.setting!r} has no clients")
        check_min_clients(sim, data)
        self.model, self.data, self.strategy = model, data, strategy
        self.sim, self.train_cfg = sim, train
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.on_event = on_event or (lambda event, info: None)
        # every client starts from the same adapter (the model's current one unless given)
        self.initial_adapter = (
            initial_adapter if initial_adapter is not None else model.trainable_state()
        )
        self.rules = RoundRules.make(strategy, sim=sim, train=train, robust=robust,
                                     num_clients=len(data.clients),
                                     initial_adapter=self.initial_adapter, dp=dp)
        build = runtime or (lambda i: client_runtime(model, data.clients[i], index=i, seed=sim.seed))
        self.clients: list[ClientRuntime] = []
        for i, split in enumerate(data.clients):
            self.on_event("encode", {"client": split.name})
            self.clients.append(build(i))

    @classmethod
    def from_run(cls, run: Run, *, checkpoint_dir: Path | None = None,
                 on_event: Callable[[str, dict[str, Any]], None] | None = None) -> Simulator:
        """The simulator of a :func:`~fedpia.rounds.build_run` run (its model, data, strategy,
        knobs and client runtimes)."""
        cfg = run.config
        return cls(run.model, run.data, run.strategy, sim=cfg.sim, train=cfg.train,
                   robust=cfg.robust, dp=cfg.dp, checkpoint_dir=checkpoint_dir, on_event=on_event,
                   initial_adapter=run.initial_adapter, runtime=run.runtime)

    # ---------------------------------------------------------------- state
    def initial_state(self) -> SimState:
        """Every client from the common initial adapter; with ``sim.independent_epochs`` > 0,
        from independently initialised, locally trained adapters fused once as round 0."""
        server = self.strategy.server_init(self.initial_adapter)
        if self.sim.independent_epochs:
            return self._independent_start(server)
        clients = {c.name: initial_client_state(c) for c in self.clients}
        return SimState(server=server, clients=clients,
                        ledger=new_ledger(self.rules, noise=SEEDED_NOISE))

    def _independent_start(self, server: ServerState) -> SimState:
        """Round 0 (:mod:`fedpia.rounds.independent`): each client's own adapter trained alone,
        then one fusion through ``server_step``; recorded (with evaluation) as round 0."""
        from fedpia.rounds.independent import independent_clients, round_zero

        t0 = time.perf_counter()
        self.on_event("round_start", {"round": 0, "clients": [c.name for c in self.clients]})
        clients = independent_clients(self.model.cfg, self.clients, epochs=self.sim.independent_epochs,
                                      train=self.train_cfg, seed=self.sim.seed)
        outcome = round_zero(self.rules, server, clients, self.clients)
        record = self._close_round(outcome.record, outcome.server, clients, t0)
        state = SimState(server=outcome.server, clients=clients, round=0, history=[record],
                         ledger=new_ledger(self.rules, noise=SEEDED_NOISE))
        self._checkpoint(state)
        return state

    def _checkpoint(self, state: SimState) -> None:
        if self.checkpoint_dir is not None:
            save_checkpoint(self.checkpoint_dir, server=state.server, clients=state.clients,
                            round_=state.round,
                            meta={"history": state.history,
                                  "privacy": state.ledger.state() if state.ledger else None,
                                  "heads": self.head_vocabularies()})

    def head_vocabularies(self) -> dict[str, dict[str, Any]]:
        """``{client: {"task", "labels"}}``: each head's output index -> answer / label string
        (the client's training label space), saved in every checkpoint so an exported head
        (:mod:`fedpia.export`) prints strings."""
        return {c.name: {"task": c.task, "labels": list(c.space.labels)} for c in self.clients}

    def resume_state(self) -> SimState:
        """The state saved by the last checkpoint (the privacy ledger included)."""
        if self.checkpoint_dir is None:
            raise ValueError("resume needs a checkpoint_dir")
        server, clients, meta = load_checkpoint(self.checkpoint_dir)
        ledger = new_ledger(self.rules, noise=SEEDED_NOISE)
        if ledger is not None:
            if meta.get("privacy") is None:
                raise ValueError(f"the checkpoint in {self.checkpoint_dir} has no privacy ledger "
                                 "but the run uses dp: cannot continue its accounting")
            ledger = PrivacyLedger.from_state(ledger.dp, meta["privacy"])
        return SimState(server=server, clients=clients, round=meta["round"],
                        history=meta["history"], ledger=ledger)

    # ---------------------------------------------------------------- run
    def run(self, state: SimState | None = None) -> SimState:
        state = state or self.initial_state()
        while state.round < self.sim.rounds:
            state = self.run_round(state)
            self._checkpoint(state)
        return state

    def run_round(self, state: SimState) -> SimState:
        """One round (module docstring). Client states of clients that trained advance even in a
        skipped round (they trained; as on Flower, where they keep their state on the node)."""
        r = state.round + 1
        t0 = time.perf_counter()
        chosen = [self.clients[i] for i in sample_clients(len(self.clients), r, self.sim)]
        self.on_event("round_start", {"round": r, "clients": [c.name for c in chosen]})
        payload = self.strategy.client_payload(state.server)
        new_clients = dict(state.clients)
        updates, failed = [], {}
        for c in chosen:
            try:
                upd, new_clients[c.name] = client_step(self.rules, c, payload, state.clients[c.name], r)
            except Exception as exc:  # a failing client is dropped, the round goes on
                log.warning("round %d: client %s failed: %s", r, c.name, exc)
                failed[c.name] = f"{type(exc).__name__}: {exc}"
                continue
            updates.append(upd)
            self.on_event("client_done", {"round": r, "client": c.name, **upd.metrics})
        outcome = server_step(self.rules, state.server, r, chosen=[(c.index, c.name) for c in chosen],
                              updates=updates, failed=failed, payload=payload, ledger=state.ledger)
        if self.sim.share_heads and outcome.kept:
            new_clients = self._share_heads(new_clients, outcome.kept)
        record = self._close_round(outcome.record, outcome.server, new_clients, t0)
        return SimState(server=outcome.server, clients=new_clients, round=r,
                        history=[*state.history, record], ledger=outcome.ledger)

    # ---------------------------------------------------------------- pieces
    def _close_round(self, record: dict[str, Any], server: ServerState,
                     clients: dict[str, ClientState], t0: float) -> dict[str, Any]:
        """Evaluate both views into ``record`` (``eval``, ``eval_time``), stamp ``round_time``
        (since ``t0``) and emit ``round_end``."""
        t_eval = time.perf_counter()
        record["eval"] = self.evaluate(server, clients)
        record["eval_time"] = time.perf_counter() - t_eval
        record["round_time"] = time.perf_counter() - t0
        self.on_event("round_end", record)
        return record

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
        view = global_view(server)
        return {c.name: evaluate_client(c, clients[c.name], view, eval_global=self.sim.eval_global)
                for c in self.clients}
