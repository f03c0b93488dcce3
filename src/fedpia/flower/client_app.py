"""The Flower ClientApp: one SuperNode = one client (partition) of a fedpia setting.

A transport around the client side of the round protocol (:mod:`fedpia.rounds`). Handlers
(message types):

* ``query``: who am I — client name, partition index, task, number of training examples;
* ``train``: rebuild the strategy's payload from ``payload/<name>`` ArrayRecords, load this
  client's :class:`~fedpia.strategies.ClientState` from the node-local ``Context.state``, run
  :func:`fedpia.rounds.client_step` (the SAME function the in-process simulator calls: failure
  draw, injected faults, client-side PIA, local training), save the new ClientState back into
  ``Context.state`` and reply with the upload;
* ``evaluate``: :func:`fedpia.rounds.evaluate_client` on the received global view.

``Context.state`` persists between rounds of a run on the node (in simulation and on a real
SuperNode), so client-side PIA in round r >= 2 sees the client's own adapter of round r - 1.
The run (:func:`fedpia.rounds.build_run`: the frozen model, the data, each partition's runtime)
is cached per process (a Ray actor or a SuperNode process serves many rounds and, in simulation,
many partitions).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import Mod

from fedpia.client.runtime import ClientRuntime
from fedpia.flower.env import configure_environment
from fedpia.flower.records import (
    INFO,
    PAYLOAD,
    UPDATE_EXTRA,
    UPDATE_STATE,
    load_client_state,
    metrics_record,
    save_client_state,
    state_to_record,
    states_from_recorddict,
    structured_info,
)
from fedpia.rounds import (
    ExperimentConfig,
    Run,
    build_run,
    client_step,
    evaluate_client,
    from_run_config,
    initial_client_state,
)

log = logging.getLogger(__name__)

_RUNS: dict[str, Run] = {}


def node_run(cfg: ExperimentConfig, *, data_root: str | None = None) -> Run:
    """The (per-process cached) run of ``cfg`` (``data_root``: the node's own data folder)."""
    key = json.dumps([cfg.to_dict(), data_root], sort_keys=True, default=str)
    if key not in _RUNS:
        _RUNS[key] = build_run(cfg, data_root=data_root)
    return _RUNS[key]


def _node(context: Context, cfg: ExperimentConfig | None) -> tuple[Run, ClientRuntime]:
    configure_environment()
    cfg = cfg or from_run_config(context.run_config)
    if "partition-id" not in context.node_config:
        raise ValueError(
            "node_config has no 'partition-id' (start the SuperNode with "
            '--node-config "partition-id=<k>")'
        )
    root = context.node_config.get("data-root")
    run = node_run(cfg, data_root=str(root) if root else None)
    return run, run.runtime(int(context.node_config["partition-id"]))


def _meta(rt: ClientRuntime) -> ConfigRecord:
    return ConfigRecord({"client": rt.name, "index": rt.index, "task": rt.task})


def handle_query(msg: Message, context: Context, cfg: ExperimentConfig | None = None) -> Message:
    _, rt = _node(context, cfg)
    meta = _meta(rt)
    meta["num_examples"] = len(rt.train)
    return Message(RecordDict({"meta": meta}), reply_to=msg)


def _check_same_run(conf: ConfigRecord, run: Run) -> int:
    """The round of a train message; ValueError if the server runs another config."""
    sim = run.config.sim
    if (int(conf["num_rounds"]), int(conf["seed"])) != (sim.rounds, sim.seed):
        raise ValueError(f"server runs sim.rounds={conf['num_rounds']}, sim.seed={conf['seed']}; "
                         f"this node's run_config has {sim.rounds}, {sim.seed}")
    return int(conf["round"])


def handle_train(msg: Message, context: Context, cfg: ExperimentConfig | None = None) -> Message:
    run, rt = _node(context, cfg)
    r = _check_same_run(msg.content.config_records["config"], run)
    payload = states_from_recorddict(msg.content, PAYLOAD)
    cstate = load_client_state(context.state) or initial_client_state(rt)
    update, new_state = client_step(run.rules(), rt, payload, cstate, r)
    save_client_state(context.state, new_state)
    content = RecordDict({UPDATE_STATE: state_to_record(update.state), "meta": _meta(rt)})
    for name, extra in update.extra.items():
        content[UPDATE_EXTRA + name] = state_to_record(extra)
    metrics = metrics_record(update.metrics)
    if update.num_examples is not None:  # a None count (injected) travels as an absent key
        metrics["num-examples"] = update.num_examples
    content["metrics"] = metrics
    info = structured_info(update.metrics)  # e.g. FedPIA's client diagnostics ("pia")
    if info is not None:
        content[INFO] = info
    return Message(content, reply_to=msg)


def handle_evaluate(msg: Message, context: Context, cfg: ExperimentConfig | None = None) -> Message:
    run, rt = _node(context, cfg)
    view = states_from_recorddict(msg.content, PAYLOAD)
    cstate = load_client_state(context.state) or initial_client_state(rt)
    res = evaluate_client(rt, cstate, view, eval_global=run.config.sim.eval_global)
    metrics = MetricRecord({"num-examples": len(rt.test)})
    for view_name, values in res.items():
        for k, v in values.items():
            metrics[f"{view_name}.{k}"] = v
    return Message(RecordDict({"metrics": metrics, "meta": _meta(rt)}), reply_to=msg)


def make_client_app(cfg: ExperimentConfig | None = None, *, mods: Sequence[Mod] = ()) -> ClientApp:
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
