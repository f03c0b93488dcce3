"""Which Flower node serves which client: the server side of node identity.

Two directories, one interface (``names``, ``nodes(grid) -> {client index: NodeInfo}``):

* :class:`KeyDirectory` (deployment; the server operator's ``[[clients]]``,
  :mod:`fedpia.deploy.operator`): client k is the node that authenticated with client k's
  registered public key (Flower's ``NodeInfo.public_key``, PEM SubjectPublicKeyInfo). Re-read
  every round: a hospital that is offline is absent (its sampled rounds count as failed), a
  node with an unlisted key is logged once and ignored — it can neither take an offline
  hospital's place nor abort the run.
* :class:`PartitionDirectory` (simulation): every node answers a ``query`` with the
  ``partition-id`` of its node config (self-declared, so only for federations where one party
  runs every node: Flower's simulation engine, tests).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeInfo:
    node_id: int
    client: str
    index: int


def identity(names: list[str], index: int) -> dict[str, Any]:
    """What a message tells its node about the client it serves (site-local nodes build their
    client from it: name, index for the seed streams, federation size)."""
    return {"client": names[index], "index": index, "num_clients": len(names)}


class KeyDirectory:
    """Nodes identified by their authenticated public keys (module docstring)."""

    def __init__(self, clients: tuple[Any, ...], *, timeout: float) -> None:
        self.names = [c.name for c in clients]
        self._index = {bytes(c.public_key): i for i, c in enumerate(clients)}
        self.timeout = timeout
        self._waited = False
        self._ignored: set[int] = set()

    def nodes(self, grid: Grid) -> dict[int, NodeInfo]:
        """The authenticated nodes online now, by client index. The first call waits (at most
        ``timeout`` seconds) until every listed client is online."""
        t0 = time.monotonic()
        while True:
            found = self._lookup(grid)
            if self._waited or len(found) == len(self.names) or time.monotonic() - t0 > self.timeout:
                break
            time.sleep(0.5)
        if not self._waited:
            missing = [n for i, n in enumerate(self.names) if i not in found]
            if missing:
                log.warning("starting without %s: no node with their registered key is online",
                            missing)
            self._waited = True
        return found

    def _lookup(self, grid: Grid) -> dict[int, NodeInfo]:
        found: dict[int, NodeInfo] = {}
        for info in grid.get_nodes():
            index = self._index.get(bytes(info.public_key))
            if index is None:
                if info.node_id not in self._ignored:
                    self._ignored.add(info.node_id)
                    log.warning("ignoring node %d: its public key is not one of the server "
                                "operator's clients", info.node_id)
                continue
            found[index] = NodeInfo(info.node_id, self.names[index], index)
        return found


class PartitionDirectory:
    """Nodes that name their own partition (simulation; module docstring)."""

    def __init__(self, num_clients: int, *, timeout: float) -> None:
        self.num_clients, self.timeout = num_clients, timeout
        self.names: list[str] = []
        self._nodes: dict[int, NodeInfo] | None = None

    def nodes(self, grid: Grid) -> dict[int, NodeInfo]:
        """Wait for ``num_clients`` nodes and ask each its partition (once)."""
        if self._nodes is not None:
            return self._nodes
        t0 = time.monotonic()
        while len(ids := list(grid.get_node_ids())) < self.num_clients:
            if time.monotonic() - t0 > self.timeout:
                raise RuntimeError(f"only {len(ids)}/{self.num_clients} nodes connected")
            time.sleep(0.5)
        msgs = [Message(RecordDict({"config": ConfigRecord({"num_clients": self.num_clients})}),
                        dst_node_id=i, message_type=MessageType.QUERY) for i in ids]
        by_index: dict[int, NodeInfo] = {}
        for reply in grid.send_and_receive(msgs, timeout=self.timeout):
            if reply.has_error():
                raise RuntimeError(f"node {reply.metadata.src_node_id}: {reply.error.reason}")
            m = reply.content.config_records["meta"]
            info = NodeInfo(reply.metadata.src_node_id, str(m["client"]), int(m["index"]))
            if info.index in by_index:
                raise ValueError(f"two nodes serve partition-id {info.index} ({info.client})")
            by_index[info.index] = info
        if sorted(by_index) != list(range(self.num_clients)):
            raise ValueError(f"partition-ids {sorted(by_index)} != 0..{self.num_clients - 1}")
        self.names = [by_index[i].client for i in range(self.num_clients)]
        self._nodes = by_index
        return by_index
