"""A Flower message strategy wrapping ANY fedpia :class:`~fedpia.strategies.Strategy`.

Flower drives the loop (:meth:`flwr.serverapp.strategy.Strategy.start`: configure_train ->
aggregate_train -> configure_evaluate -> aggregate_evaluate per round); every decision is
delegated to the same pure pieces the in-process simulator uses, in the same order:

1. sample clients with :func:`sample_clients` (seeded by ``(seed, round)``, as the simulator);
2. send ``strategy.client_payload(server)`` as ``payload/<name>`` ArrayRecords + a ConfigRecord
   (round, num_rounds, seed) to the sampled nodes;
3. rebuild :class:`~fedpia.strategies.ClientUpdate` objects from the replies (ordered by client
   index, so sums run in the simulator's order), count error replies as failed clients, reject
   invalid uploads (NaN/Inf, keys, shapes, dtypes) with :func:`fedpia.aggregation.filter_updates`;
4. ``strategy.aggregate``; too few valid updates, too many failures or a failing aggregation is a
   round failure: the server state is left unchanged and the run raises
   :class:`fedpia.sim.RoundFailed` (``on_round_failure="raise"``) or goes on (``"skip"``);
5. evaluation on every node (personalised + global), stored in the round record.

The global state is the explicit :class:`~fedpia.strategies.ServerState` ``self.server``,
replaced (never mutated) after each successful aggregation; the ArrayRecord Flower threads
through ``start`` is only a mirror of ``self.server.adapter`` (Flower's ``Result.arrays``).
``self.history`` holds one record per round with the simulator's keys.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy as FlowerStrategyBase

from fedpia.client.runtime import derive_seed
from fedpia.flower.records import (
    PAYLOAD,
    UPDATE_EXTRA,
    UPDATE_STATE,
    record_to_state,
    state_to_record,
    states_from_recorddict,
    states_to_recorddict,
)
from fedpia.sim import RoundFailed, SimConfig, state_bytes
from fedpia.sim.simulator import aggregate_round
from fedpia.strategies.base import ClientUpdate, ServerState, State, Strategy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeInfo:
    node_id: int
    client: str
    index: int
    task: str
    num_examples: int


def sample_clients(n: int, round_: int, sim: SimConfig) -> list[int]:
    """Indices of the clients trained in ``round_`` (identical to the in-process simulator)."""
    k = min(max(sim.min_clients, round(sim.fraction_fit * n)), n)
    if k == n:
        return list(range(n))
    rng = np.random.default_rng(derive_seed(sim.seed, round_, 1))
    return sorted(rng.choice(n, size=k, replace=False).tolist())


def parse_update(content: RecordDict) -> ClientUpdate:
    """A ClientUpdate from a train reply; a malformed reply raises ValueError with the reason."""
    missing = [k for k in (UPDATE_STATE, "metrics", "meta") if k not in content]
    if missing:
        raise ValueError(f"reply lacks record(s) {missing}")
    metrics = dict(content.metric_records["metrics"])
    if "num-examples" not in metrics:
        raise ValueError("reply metrics lack 'num-examples'")
    n = metrics.pop("num-examples")
    return ClientUpdate(
        client=str(content.config_records["meta"]["client"]),
        state=record_to_state(content.array_records[UPDATE_STATE]),
        num_examples=int(n),
        extra=states_from_recorddict(content, UPDATE_EXTRA),
        metrics={k: v for k, v in metrics.items() if isinstance(v, int | float)},
    )


class FlowerStrategy(FlowerStrategyBase):
    """Flower strategy around ``strategy`` (see module docstring)."""

    def __init__(
        self,
        strategy: Strategy,
        *,
        initial_adapter: State,
        sim: SimConfig,
        num_clients: int,
        on_round_failure: str = "raise",
        discovery_timeout: float = 600.0,
    ) -> None:
        if num_clients < 1:
            raise ValueError(f"num_clients must be >= 1, got {num_clients}")
        self.strategy, self.sim, self.num_clients = strategy, sim, num_clients
        self.on_round_failure, self.discovery_timeout = on_round_failure, discovery_timeout
        self.server: ServerState = strategy.server_init(initial_adapter)
        self.history: list[dict[str, Any]] = []
        self.nodes: list[NodeInfo] | None = None  # by client index
        self._round: dict[str, Any] = {}

    def summary(self) -> None:
        log.info(
            "fedpia strategy %r over %d clients; %s",
            self.strategy.name,
            self.num_clients,
            self.strategy.config(),
        )

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
            info = NodeInfo(
                reply.metadata.src_node_id,
                str(m["client"]),
                int(m["index"]),
                str(m["task"]),
                int(m["num_examples"]),
            )
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
        chosen = [nodes[i] for i in sample_clients(len(nodes), server_round, self.sim)]
        payload = self.strategy.client_payload(self.server)
        content = states_to_recorddict(payload, PAYLOAD)
        content["config"] = ConfigRecord(
            {"round": server_round, "num_rounds": self.sim.rounds, "seed": self.sim.seed}
        )
        self._round = {
            "t0": time.perf_counter(),
            "chosen": chosen,
            "bytes_down": state_bytes(payload["adapter"]) * len(chosen),
        }
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
                log.warning("round %d: client %s failed: %s", r, node.client, exc)
                failed[node.client] = f"{type(exc).__name__}: {exc}"
        for n in chosen:
            if n.index not in got and n.client not in failed:
                failed[n.client] = "no reply before the timeout"
        updates = [got[i] for i in sorted(got)]
        record: dict[str, Any] = {
            "round": r,
            "clients": {u.client: dict(u.metrics) for u in updates},
            "failed": failed,
            "rejected": {},
            "bytes_down": self._round["bytes_down"],
            "bytes_up": sum(state_bytes(u.state) for u in updates),
        }
        self._round["record"] = record
        try:
            if len(failed) > self.sim.max_failure_frac * len(chosen):
                raise RoundFailed(
                    f"round {r}: {len(failed)}/{len(chosen)} clients failed: {failed}"
                )
            server, diag, server_time = self._aggregate(r, updates, record)
        except RoundFailed as exc:
            record["error"] = str(exc)
            if self.on_round_failure == "raise":
                self.history.append(record)
                raise
            log.error("%s (global state unchanged, continuing)", exc)
            return None, None
        self.server = server
        record.update(server_time=server_time, diagnostics=diag)
        loss = [u.metrics.get("loss", float("nan")) for u in updates]
        weights = [u.num_examples for u in updates]
        metrics = MetricRecord({"loss": float(np.average(loss, weights=weights))})
        return state_to_record(server.adapter), metrics

    def _aggregate(
        self, r: int, updates: list[ClientUpdate], record: dict[str, Any]
    ) -> tuple[ServerState, dict[str, Any], float]:
        server, diag, rejected, seconds = aggregate_round(
            self.strategy, self.server, updates, round_=r, sim=self.sim, num_clients=self.num_clients
        )
        record["rejected"] = {updates[i].client: why for i, why in rejected.items()}
        return server, diag, seconds

    # ---------------------------------------------------------------- evaluate
    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        nodes = self.nodes or self.discover(grid)
        shown = {"adapter": self.server.adapter}
        if self.server.extra.get("base_delta"):  # FLoRA / FedEx-LoRA: merged into base weights
            shown["base_delta"] = self.server.extra["base_delta"]
        content = states_to_recorddict(shown, PAYLOAD)
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
                log.warning(
                    "round %d: evaluation of %s failed: %s",
                    server_round,
                    node.client,
                    reply.error.reason,
                )
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
        return _mean_metrics(record["eval"], {n.client: n for n in self.nodes or []})


def _mean_metrics(evals: dict[str, dict[str, Any]], nodes: dict[str, NodeInfo]) -> MetricRecord:
    """Unweighted mean over clients of each ``<view>.<metric>`` (for Flower's own log)."""
    sums: dict[str, list[float]] = {}
    for res in evals.values():
        for view, metrics in res.items():
            for name, value in metrics.items():
                sums.setdefault(f"{view}.{name}", []).append(float(value))
    return MetricRecord({k: float(np.mean(v)) for k, v in sums.items()})
