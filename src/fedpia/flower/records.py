"""Lossless conversion between fedpia's named states and Flower records.

Flower's :class:`~flwr.app.ArrayRecord` keeps state-dict key names and serialises every tensor
with ``np.save`` (dtype and shape are part of the payload), so a round trip
``state -> ArrayRecord -> state`` is bit-exact for every dtype NumPy knows (float16/32/64, ints,
bool). bfloat16 has no NumPy dtype and is rejected with a clear error instead of being silently
cast.

Record layout (keys of a :class:`~flwr.app.RecordDict`, ``/`` separates namespaces):

* server -> client (train):  ``payload/<name>`` one ArrayRecord per entry of
  ``strategy.client_payload(server)``, ``config`` ConfigRecord (round, num_rounds, seed);
* client -> server (train):  ``update/state`` ArrayRecord, ``update/extra/<name>``
  ArrayRecords, ``metrics`` MetricRecord (``num-examples`` + training info), ``meta``
  ConfigRecord (client name, partition id);
* client-side persistent state (``Context.state``): ``fedpia/client/adapter``,
  ``fedpia/client/head``, ``fedpia/client/extra/<name>`` ArrayRecords and
  ``fedpia/client/meta`` ConfigRecord (rounds trained).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from fedpia.strategies.base import ClientState, State

PAYLOAD = "payload/"
UPDATE_STATE = "update/state"
UPDATE_EXTRA = "update/extra/"
CLIENT_PREFIX = "fedpia/client/"


def state_to_record(state: Mapping[str, torch.Tensor]) -> ArrayRecord:
    """Named tensors -> ArrayRecord with the same keys (order kept, values copied to CPU)."""
    record = ArrayRecord()
    for key, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            raise ValueError(f"state entry {key!r} is a {type(tensor).__name__}, not a Tensor")
        if tensor.dtype == torch.bfloat16:
            raise ValueError(f"state entry {key!r} is bfloat16, which NumPy cannot carry")
        record[key] = Array(tensor.detach().cpu().contiguous().numpy())  # keeps 0-d shapes
    return record


def record_to_state(record: ArrayRecord) -> State:
    """ArrayRecord -> named tensors: same keys, dtypes and shapes (writable, owning copies)."""
    out: State = {}
    for key, array in record.items():
        arr = array.numpy()
        out[key] = torch.from_numpy(np.array(arr, copy=True))
    return out


def states_to_recorddict(states: Mapping[str, State], prefix: str) -> RecordDict:
    return RecordDict({prefix + name: state_to_record(s) for name, s in states.items()})


def states_from_recorddict(content: RecordDict, prefix: str) -> dict[str, State]:
    return {
        key[len(prefix) :]: record_to_state(rec)
        for key, rec in content.array_records.items()
        if key.startswith(prefix)
    }


INFO = "info"  # ConfigRecord name of the structured (JSON) training info of a train reply


def structured_info(values: Mapping[str, object]) -> ConfigRecord | None:
    """Non-scalar JSON entries of ``values`` (e.g. FedPIA's client diagnostics under "pia") as a
    ConfigRecord holding one JSON string, or None when there are none (MetricRecords keep
    numbers only)."""
    rest = {k: v for k, v in values.items() if isinstance(v, Mapping | list)}
    return ConfigRecord({"json": json.dumps(rest)}) if rest else None


def info_from_record(rec: ConfigRecord | None) -> dict[str, object]:
    """Inverse of :func:`structured_info` ({} for None)."""
    return {} if rec is None else dict(json.loads(str(rec["json"])))


def metrics_record(values: Mapping[str, object]) -> MetricRecord:
    """Numeric scalars of ``values`` as a MetricRecord (ints stay ints; other values dropped)."""
    rec = MetricRecord()
    for key, value in values.items():
        if isinstance(value, bool):
            rec[key] = int(value)
        elif isinstance(value, int | float):
            rec[key] = value
    return rec


def save_client_state(store: RecordDict, cstate: ClientState) -> None:
    """Write ``cstate`` into a node-local RecordDict (Flower ``Context.state``), replacing it."""
    from flwr.app import ConfigRecord

    for key in [k for k in store.keys() if k.startswith(CLIENT_PREFIX)]:
        del store[key]
    if cstate.adapter is not None:
        store[CLIENT_PREFIX + "adapter"] = state_to_record(cstate.adapter)
    if cstate.head is not None:
        store[CLIENT_PREFIX + "head"] = state_to_record(cstate.head)
    for name, extra in cstate.extra.items():
        store[CLIENT_PREFIX + "extra/" + name] = state_to_record(extra)
    store[CLIENT_PREFIX + "meta"] = ConfigRecord({"rounds_trained": cstate.rounds_trained})


def load_client_state(store: RecordDict) -> ClientState | None:
    """The ClientState saved by :func:`save_client_state`, or None if the node has none yet."""
    meta = store.config_records.get(CLIENT_PREFIX + "meta")
    if meta is None:
        return None
    arrays = store.array_records
    adapter = arrays.get(CLIENT_PREFIX + "adapter")
    head = arrays.get(CLIENT_PREFIX + "head")
    return ClientState(
        adapter=record_to_state(adapter) if adapter is not None else None,
        head=record_to_state(head) if head is not None else None,
        extra=states_from_recorddict(store, CLIENT_PREFIX + "extra/"),
        rounds_trained=int(meta["rounds_trained"]),
    )
