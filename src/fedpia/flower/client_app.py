"""The Flower ClientApp: one SuperNode = one client (partition) of a fedpia setting.

Handlers (message types):

* ``query``: who am I — client name, partition index, task, number of training examples;
* ``train``: rebuild the strategy's payload from ``payload/<name>`` ArrayRecords, load this
  client's :class:`~fedpia.strategies.ClientState` from the node-local ``Context.state``, run
  :func:`fedpia.client.runtime.client_round` (the SAME function the in-process simulator calls),
  save the new ClientState back into ``Context.state`` and reply with the upload;
* ``evaluate``: personalised (own adapter + head) and global (received adapter + own head)
  metrics on the client's test split, exactly like ``Simulator.evaluate``.

``Context.state`` persists between rounds of a run on the node (in simulation and on a real
SuperNode), so client-side PIA in round r >= 2 sees the client's own adapter of round r - 1.
The frozen model, the data and each partition's :class:`ClientRuntime` are cached per process
(a Ray actor or a SuperNode process serves many rounds and, in simulation, many partitions).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import Mod

from fedpia.client.runtime import ClientRuntime, client_round, derive_seed, evaluate_adapter
from fedpia.flower.config import FlowerRunConfig
from fedpia.flower.env import configure_environment
from fedpia.flower.records import (
    PAYLOAD,
    UPDATE_EXTRA,
    UPDATE_STATE,
    load_client_state,
    metrics_record,
    save_client_state,
    state_to_record,
    states_from_recorddict,
)
from fedpia.strategies.base import ClientState, State

log = logging.getLogger(__name__)


@dataclass
class _Resources:
    """Per-process cache: one shared frozen model, the setting's data, runtimes by partition."""

    model: Any
    data: Any
    width: int
    runtimes: dict[int, ClientRuntime] = field(default_factory=dict)


_CACHE: dict[str, _Resources] = {}


def adapter_width(state: State) -> int:
    """Largest unit-group width of an adapter (the default probe size m), 16 if none."""
    from fedpia.align import unit_groups

    return max((g.width for g in unit_groups(state)), default=16)


def client_runtime(cfg: FlowerRunConfig, partition_id: int, *, data_root: str | None = None):
    """The (cached) runtime of partition ``partition_id`` and the process-wide resources."""
    from fedpia.data import get_setting
    from fedpia.device import place
    from fedpia.models import build_model

    root = data_root if data_root is not None else cfg.data_root
    key = json.dumps(
        [cfg.setting, root, cfg.setting_options, cfg.model, cfg.sim.seed], sort_keys=True
    )
    res = _CACHE.get(key)
    if res is None:
        model = build_model(cfg.model_config())
        place(model, device=cfg.train.device, precision=cfg.train.precision)  # this node's device
        data = get_setting(cfg.setting, data_root=root, seed=cfg.sim.seed, **cfg.setting_options)
        res = _CACHE[key] = _Resources(model, data, adapter_width(model.trainable_state()))
    if not 0 <= partition_id < len(res.data.clients):
        raise ValueError(
            f"node_config partition-id={partition_id} out of range: setting {cfg.setting!r} "
            f"has {len(res.data.clients)} clients"
        )
    if partition_id not in res.runtimes:
        split = res.data.clients[partition_id]
        res.runtimes[partition_id] = ClientRuntime.build(
            res.model, split, index=partition_id, seed=cfg.sim.seed
        )
    return res.runtimes[partition_id], res


def _node(
    context: Context, cfg: FlowerRunConfig | None
) -> tuple[FlowerRunConfig, ClientRuntime, _Resources]:
    configure_environment()
    cfg = cfg or FlowerRunConfig.from_run_config(context.run_config)
    if "partition-id" not in context.node_config:
        raise ValueError(
            "node_config has no 'partition-id' (start the SuperNode with "
            '--node-config "partition-id=<k>")'
        )
    pid = int(context.node_config["partition-id"])
    root = context.node_config.get("data-root")
    rt, res = client_runtime(cfg, pid, data_root=str(root) if root else None)
    return cfg, rt, res


def _meta(rt: ClientRuntime) -> ConfigRecord:
    return ConfigRecord({"client": rt.name, "index": rt.index, "task": rt.task})


def handle_query(msg: Message, context: Context, cfg: FlowerRunConfig | None = None) -> Message:
    _, rt, _ = _node(context, cfg)
    meta = _meta(rt)
    meta["num_examples"] = len(rt.train)
    return Message(RecordDict({"meta": meta}), reply_to=msg)


def handle_train(msg: Message, context: Context, cfg: FlowerRunConfig | None = None) -> Message:
    cfg, rt, res = _node(context, cfg)
    conf = msg.content.config_records["config"]
    r, rounds, seed = int(conf["round"]), int(conf["num_rounds"]), int(conf["seed"])
    if cfg.sim.failure_prob > 0:  # same draw as the in-process simulator
        if (
            np.random.default_rng(derive_seed(seed, r, rt.index, 99)).random()
            < cfg.sim.failure_prob
        ):
            raise RuntimeError("simulated client failure")
    strategy = cfg.build_strategy()
    payload = states_from_recorddict(msg.content, PAYLOAD)
    cstate = load_client_state(context.state) or ClientState(head=rt.initial_head())
    update, new_state, info = client_round(
        rt,
        strategy,
        payload,
        cstate,
        round_=r,
        num_rounds=rounds,
        seed=seed,
        train_cfg=cfg.train,
        probe_samples=getattr(strategy, "probe_samples", 0) or res.width,
    )
    save_client_state(context.state, new_state)
    content = RecordDict({UPDATE_STATE: state_to_record(update.state), "meta": _meta(rt)})
    for name, extra in update.extra.items():
        content[UPDATE_EXTRA + name] = state_to_record(extra)
    metrics = metrics_record({**info, **update.metrics})
    metrics["num-examples"] = int(update.num_examples)
    metrics["rounds_trained"] = int(new_state.rounds_trained)  # proof the node kept its state
    content["metrics"] = metrics
    return Message(content, reply_to=msg)


def handle_evaluate(msg: Message, context: Context, cfg: FlowerRunConfig | None = None) -> Message:
    cfg, rt, _ = _node(context, cfg)
    shown = states_from_recorddict(msg.content, PAYLOAD)
    glob = shown.get("adapter")
    cstate = load_client_state(context.state) or ClientState(head=rt.initial_head())
    metrics = MetricRecord({"num-examples": len(rt.test)})
    if cstate.adapter is not None:
        own_delta = cstate.extra.get("base_delta")
        for k, v in evaluate_adapter(rt, cstate.adapter, cstate.head, base_delta=own_delta).items():
            metrics[f"personalized.{k}"] = v
    if cfg.sim.eval_global and glob is not None:
        glob_delta = shown.get("base_delta")
        for k, v in evaluate_adapter(rt, glob, cstate.head, base_delta=glob_delta).items():
            metrics[f"global.{k}"] = v
    return Message(RecordDict({"metrics": metrics, "meta": _meta(rt)}), reply_to=msg)


def make_client_app(cfg: FlowerRunConfig | None = None, *, mods: Sequence[Mod] = ()) -> ClientApp:
    """A ClientApp bound to ``cfg`` (None: read ``Context.run_config`` on every message)."""
    client = ClientApp(mods=list(mods))

    @client.query()
    def query(msg: Message, context: Context) -> Message:
        return handle_query(msg, context, cfg)

    @client.train()
    def train(msg: Message, context: Context) -> Message:
        return handle_train(msg, context, cfg)

    @client.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        return handle_evaluate(msg, context, cfg)

    return client


#: the module-level ClientApp for ``flwr run`` / ``flower-supernode`` (config from run_config)
app = make_client_app()
