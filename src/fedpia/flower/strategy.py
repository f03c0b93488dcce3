"""A Flower message strategy wrapping ANY fedpia :class:`~fedpia.strategies.Strategy`.

A transport: Flower drives the loop (:meth:`flwr.serverapp.strategy.Strategy.start`:
configure_train -> aggregate_train -> configure_evaluate -> aggregate_evaluate per round) and
every decision is a call into the round layer (:mod:`fedpia.rounds`), the same calls the
in-process simulator makes:

1. ``configure_train``: ``sample_clients``; send ``strategy.client_payload(server)`` as
   ``payload/<name>`` ArrayRecords + a ConfigRecord (round, num_rounds, seed) to the sampled
   nodes (their ClientApp runs ``client_step``);
2. ``aggregate_train``: rebuild the uploads from the replies (ordered by client index, so sums
   run in the simulator's order; error or missing replies are failed clients), then
   ``server_step`` (screening, bounded influence, aggregation, failure policy);
3. ``configure_evaluate`` / ``aggregate_evaluate``: ``global_view(server)`` to every node (their
   ClientApp runs ``evaluate_client``); the views land in the round record.

The global state is the explicit :class:`~fedpia.strategies.ServerState` ``self.server``; the
ArrayRecord Flower threads through ``start`` is only a mirror of ``self.server.adapter``.
``self.history`` holds one record per round (``fedpia.rounds.RECORD_KEYS``).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy as FlowerStrategyBase

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
from fedpia.rounds import RoundFailed, RoundRules, global_view, sample_clients, server_step
from fedpia.strategies.base import ClientUpdate, ServerState, State

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeInfo:
    node_id: int
    client: str
    index: int
    task: str
    num_examples: int


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
    """Flower strategy around ``rules.strategy`` (see module docstring)."""

    def __init__(self, rules: RoundRules, *, initial_adapter: State,
                 discovery_timeout: float = 600.0) -> None:
        self.rules, self.num_clients = rules, rules.num_clients
        self.discovery_timeout = discovery_timeout
        self.server: ServerState = rules.strategy.server_init(initial_adapter)
        self.history: list[dict[str, Any]] = []
        self.nodes: list[NodeInfo] | None = None  # by client index
        self._round: dict[str, Any] = {}

    def summary(self) -> None:
        s = self.rules.strategy
        log.info("fedpia strategy %r over %d clients; %s", s.name, self.num_clients, s.config())

    # ---------------------------------------------------------------- discovery
    def discover(self, grid: Grid) -> list[NodeInfo]:
        """Wait for ``num_clients`` nodes and ask each who it is (a ``query`` message)."""
        t0 = time.monotonic()
        while len(ids := list(grid.get_node_ids())) < self.num_clients:
            if time.monotonic() - t0 > self.discovery_timeout:
                raise RuntimeError(f"only {len(ids)}/{self.num_clients} nodes connected")
            time.sleep(0.5)
        msgs = [Message(RecordDict(), dst_node_id=i, message_type=MessageType.QUERY) for i in ids]
        by_index: dict[int, NodeInfo] = {}
        for reply in grid.send_and_receive(msgs, timeout=self.discovery_timeout):
            if reply.has_error():
                raise RuntimeError(f"node {reply.metadata.src_node_id}: {reply.error.reason}")
            m = reply.content.config_records["meta"]
            info = NodeInfo(reply.metadata.src_node_id, str(m["client"]), int(m["index"]),
                            str(m["task"]), int(m["num_examples"]))
            if info.index in by_index:
                raise ValueError(f"two nodes serve partition-id {info.index} ({info.client})")
            by_index[info.index] = info
        if sorted(by_index) != list(range(self.num_clients)):
            raise ValueError(f"partition-ids {sorted(by_index)} != 0..{self.num_clients - 1}")
        self.nodes = [by_index[i] for i in range(self.num_clients)]
        return self.nodes

    # ---------------------------------------------------------------- train
    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        nodes = self.nodes or self.discover(grid)
        sim = self.rules.sim
        chosen = [nodes[i] for i in sample_clients(len(nodes), server_round, sim)]
        payload = self.rules.strategy.client_payload(self.server)
        content = states_to_recorddict(payload, PAYLOAD)
        content["config"] = ConfigRecord(
            {"round": server_round, "num_rounds": sim.rounds, "seed": sim.seed}
        )
        self._round = {"t0": time.perf_counter(), "chosen": chosen, "payload": payload}
        log.info("round %d: training %s", server_round, [n.client for n in chosen])
        return [
            Message(content, dst_node_id=n.node_id, message_type=MessageType.TRAIN) for n in chosen
        ]

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        r, chosen = server_round, self._round["chosen"]
        by_node = {n.node_id: n for n in chosen}
        got: dict[int, ClientUpdate] = {}
        failed: dict[str, str] = {}
        for reply in replies:
            node = by_node.get(reply.metadata.src_node_id)
            if node is None:
                continue
            try:
                if reply.has_error():
                    raise RuntimeError(reply.error.reason)
                got[node.index] = parse_update(reply.content)
            except Exception as exc:  # an error reply / malformed reply = a failed client
                why = (error_reason(str(exc)) if reply.has_error()
                       else f"{type(exc).__name__}: {exc}")
                log.warning("round %d: client %s failed: %s", r, node.client, why)
                failed[node.client] = why
        for n in chosen:
            if n.index not in got and n.client not in failed:
                failed[n.client] = "no reply before the timeout"
        failed = {n.client: failed[n.client] for n in chosen if n.client in failed}  # index order
        updates = [got[i] for i in sorted(got)]
        try:
            outcome = server_step(self.rules, self.server, r, chosen=[(n.index, n.client) for n in chosen],
                                  updates=updates, failed=failed, payload=self._round["payload"])
        except RoundFailed as exc:
            self.history.append(exc.record)
            raise
        self.server = outcome.server
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
        nodes = self.nodes or self.discover(grid)
        content = states_to_recorddict(global_view(self.server), PAYLOAD)
        content["config"] = ConfigRecord({"round": server_round})
        return [
            Message(content, dst_node_id=n.node_id, message_type=MessageType.EVALUATE)
            for n in nodes
        ]

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        by_node = {n.node_id: n for n in self.nodes or []}
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
        record["eval"] = {self.nodes[i].client: per_index[i] for i in sorted(per_index)}
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
