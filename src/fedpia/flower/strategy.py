"""A Flower message strategy wrapping ANY fedpia :class:`~fedpia.strategies.Strategy`.

A transport: Flower drives the loop (:meth:`flwr.serverapp.strategy.Strategy.start`:
configure_train -> aggregate_train -> configure_evaluate -> aggregate_evaluate per round) and
every decision is a call into the round layer (:mod:`fedpia.rounds`), the same calls the
in-process simulator makes:

1. ``configure_train``: the node directory (:mod:`fedpia.flower.nodes`) says which node serves
   which client; ``sample_clients`` over ALL clients (as in-process); send
   ``strategy.client_payload(server)`` as ``payload/<name>`` ArrayRecords + a ConfigRecord
   (round, num_rounds, seed, and the client's identity: name, index, num_clients) to the
   sampled clients' nodes (their ClientApp runs ``client_step``); a sampled client without a
   node is a failed client ("offline");
2. ``aggregate_train``: rebuild the uploads from the replies, attributed to the node's client
   (never to the name a reply carries), ordered by client index (the simulator's summation
   order; error or missing replies are failed clients), then ``server_step`` (screening,
   bounded influence, aggregation or central DP, failure policy, privacy ledger);
3. ``configure_evaluate`` / ``aggregate_evaluate``: ``global_view(server)`` to every node (their
   ClientApp runs ``evaluate_client``); the views land in the round record.

The global state is the explicit :class:`~fedpia.strategies.ServerState` ``self.server``; the
ArrayRecord Flower threads through ``start`` is only a mirror of ``self.server.adapter``.
``self.history`` holds one record per round (``fedpia.rounds.RECORD_KEYS``).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy as FlowerStrategyBase

from fedpia.flower.nodes import NodeInfo, identity
from fedpia.flower.records import (
    INFO,
    PAYLOAD,
    UPDATE_EXTRA,
    UPDATE_STATE,
    info_from_record,
    record_to_state,
    state_to_record,
    states_from_recorddict,
    states_to_recorddict,
)
from fedpia.rounds import (
    RoundFailed,
    RoundRules,
    global_view,
    new_ledger,
    sample_clients,
    server_step,
)
from fedpia.strategies.base import ClientUpdate, ServerState, State

log = logging.getLogger(__name__)

#: the noise source of a Flower run's privacy ledger
NODE_NOISE = ("local DP: each node's own secret (node config dp-secret-file) or fresh OS entropy "
              "every round; central DP: fresh OS entropy on the server every round")


def parse_update(content: RecordDict) -> ClientUpdate:
    """A ClientUpdate from a train reply; a malformed reply raises ValueError with the reason.

    The example count is passed on as sent (None when absent): screening judges it."""
    missing = [k for k in (UPDATE_STATE, "metrics", "meta") if k not in content]
    if missing:
        raise ValueError(f"reply lacks record(s) {missing}")
    metrics = dict(content.metric_records["metrics"])
    n = metrics.pop("num-examples", None)
    return ClientUpdate(
        client=str(content.config_records["meta"]["client"]),
        state=record_to_state(content.array_records[UPDATE_STATE]),
        num_examples=n,
        extra=states_from_recorddict(content, UPDATE_EXTRA),
        metrics={**{k: v for k, v in metrics.items() if isinstance(v, int | float)},
                 **info_from_record(content.config_records.get(INFO))},
    )


_FLOWER_ERROR = re.compile(r"^<class '(?:[\w.]+\.)?(\w+)'>:<'(.*)'>$", re.S)


def error_reason(reason: str) -> str:
    """A ClientApp exception as the in-process engine records it (``"Name: message"``); Flower
    formats it as ``"<class 'pkg.Name'>:<'message'>"``."""
    m = _FLOWER_ERROR.match(reason)
    return f"{m.group(1)}: {m.group(2)}" if m else reason


class FlowerStrategy(FlowerStrategyBase):
    """Flower strategy around ``rules.strategy`` (see module docstring). ``directory`` maps
    nodes to clients (:mod:`fedpia.flower.nodes`); ``noise`` labels the DP noise source in the
    privacy ledger (central-DP noise gets fresh OS entropy every round)."""

    def __init__(self, rules: RoundRules, *, initial_adapter: State, directory: Any,
                 noise: str = NODE_NOISE) -> None:
        self.rules, self.num_clients, self.directory = rules, rules.num_clients, directory
        self.server: ServerState = rules.strategy.server_init(initial_adapter)
        self.ledger = new_ledger(rules, noise=noise)
        self.history: list[dict[str, Any]] = []
        self._round: dict[str, Any] = {}

    def summary(self) -> None:
        s = self.rules.strategy
        log.info("fedpia strategy %r over %d clients; %s", s.name, self.num_clients, s.config())

    @property
    def names(self) -> list[str]:
        return self.directory.names

    def _message(self, payload: dict[str, State], node: NodeInfo, kind: str, **config: Any
                 ) -> Message:
        content = states_to_recorddict(payload, PAYLOAD)
        content["config"] = ConfigRecord({**config, **identity(self.names, node.index)})
        return Message(content, dst_node_id=node.node_id, message_type=kind)

    # ---------------------------------------------------------------- train
    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        nodes = self.directory.nodes(grid)
        sim = self.rules.sim
        chosen = sample_clients(self.num_clients, server_round, sim)
        offline = {self.names[i]: "offline: no node authenticated as this client"
                   for i in chosen if i not in nodes}
        payload = self.rules.strategy.client_payload(self.server)
        self._round = {"t0": time.perf_counter(), "chosen": chosen, "payload": payload,
                       "by_node": {nodes[i].node_id: nodes[i] for i in chosen if i in nodes},
                       "offline": offline}
        log.info("round %d: training %s%s", server_round, [self.names[i] for i in chosen],
                 f" (offline: {sorted(offline)})" if offline else "")
        return [self._message(payload, nodes[i], MessageType.TRAIN, round=server_round,
                              num_rounds=sim.rounds, seed=sim.seed) for i in chosen if i in nodes]

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        r, by_node = server_round, self._round["by_node"]
        got: dict[int, ClientUpdate] = {}
        failed: dict[str, str] = dict(self._round["offline"])
        for reply in replies:
            node = by_node.get(reply.metadata.src_node_id)
            if node is None:
                continue
            try:
                if reply.has_error():
                    raise RuntimeError(reply.error.reason)
                got[node.index] = replace(parse_update(reply.content), client=node.client)
            except Exception as exc:  # an error reply / malformed reply = a failed client
                why = (error_reason(str(exc)) if reply.has_error()
                       else f"{type(exc).__name__}: {exc}")
                log.warning("round %d: client %s failed: %s", r, node.client, why)
                failed[node.client] = why
        chosen = [(i, self.names[i]) for i in self._round["chosen"]]
        for i, name in chosen:
            if i not in got and name not in failed:
                failed[name] = "no reply before the timeout"
        failed = {name: failed[name] for _, name in chosen if name in failed}  # index order
        updates = [got[i] for i in sorted(got)]
        secret = os.urandom(32) if self.rules.dp.mode == "central" else None
        try:
            outcome = server_step(self.rules, self.server, r, chosen=chosen, updates=updates,
                                  failed=failed, payload=self._round["payload"],
                                  ledger=self.ledger, noise_secret=secret)
        except RoundFailed as exc:
            self.history.append(exc.record)
            raise
        self.server, self.ledger = outcome.server, outcome.ledger
        self._round["record"] = outcome.record
        if outcome.skipped:
            return None, None
        # Flower's own log: unweighted mean training loss of the aggregated clients
        loss = [u.metrics.get("loss", float("nan")) for u in updates if u.client in outcome.kept]
        return state_to_record(self.server.adapter), MetricRecord({"loss": float(np.mean(loss))})

    # ---------------------------------------------------------------- evaluate
    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        nodes = self.directory.nodes(grid)
        self._round["eval_nodes"] = {n.node_id: n for n in nodes.values()}
        self._round["eval_t0"] = time.perf_counter()
        view = global_view(self.server)
        return [self._message(view, nodes[i], MessageType.EVALUATE, round=server_round)
                for i in sorted(nodes)]

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        by_node = self._round.get("eval_nodes", {})
        per_index: dict[int, dict[str, Any]] = {}
        for reply in replies:
            node = by_node.get(reply.metadata.src_node_id)
            if node is None:
                continue
            if reply.has_error():
                log.warning("round %d: evaluation of %s failed: %s", server_round, node.client,
                            reply.error.reason)
                continue
            res: dict[str, dict[str, float]] = {}
            for key, value in reply.content.metric_records["metrics"].items():
                view, _, name = key.partition(".")
                if name:
                    res.setdefault(view, {})[name] = value
            per_index[node.index] = res
        record = self._round.get("record", {"round": server_round})
        record["eval"] = {self.names[i]: per_index[i] for i in sorted(per_index)}
        record["eval_time"] = time.perf_counter() - self._round.get("eval_t0", time.perf_counter())
        record["round_time"] = time.perf_counter() - self._round.get("t0", time.perf_counter())
        self.history.append(record)
        return _mean_metrics(record["eval"])


def _mean_metrics(evals: dict[str, dict[str, Any]]) -> MetricRecord:
    """Unweighted mean over clients of each ``<view>.<metric>`` (for Flower's own log)."""
    sums: dict[str, list[float]] = {}
    for res in evals.values():
        for view, metrics in res.items():
            for name, value in metrics.items():
                sums.setdefault(f"{view}.{name}", []).append(float(value))
    return MetricRecord({k: float(np.mean(v)) for k, v in sums.items()})
