"""Fault injection for robustness studies: Flower client mods that corrupt a node's upload.

A mod wraps the ClientApp call (``mod(msg, context, call_next) -> Message``); these ones let the
client train normally (its own state is saved) and then replace its uploaded adapter, so the
server-side screening (``fedpia.aggregation.filter_updates``) is exercised end to end.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import torch
from flwr.app import Context, Message, MessageType
from flwr.clientapp.typing import ClientAppCallable

from fedpia.flower.records import UPDATE_STATE, record_to_state, state_to_record


def corrupt_update_mod(
    *,
    partitions: Collection[int],
    rounds: Collection[int],
    value: float = float("nan"),
) -> Callable[[Message, Context, ClientAppCallable], Message]:
    """A mod filling the first tensor of the upload with ``value`` (NaN by default) for the
    nodes with ``partition-id`` in ``partitions`` in the given 1-based ``rounds``."""
    parts, rnds = frozenset(partitions), frozenset(rounds)

    def mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
        reply = call_next(msg, context)
        if msg.metadata.message_type != MessageType.TRAIN or reply.has_error():
            return reply
        pid = int(context.node_config.get("partition-id", -1))
        r = int(msg.content.config_records["config"]["round"])
        if pid in parts and r in rnds:
            state = record_to_state(reply.content.array_records[UPDATE_STATE])
            first = next(iter(state))
            state[first] = torch.full_like(state[first], value)
            reply.content[UPDATE_STATE] = state_to_record(state)
        return reply

    return mod
