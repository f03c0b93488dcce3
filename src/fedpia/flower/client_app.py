"""The Flower ClientApp: one SuperNode = one client of the federation.

A transport around the client side of the round protocol (:mod:`fedpia.rounds`). Where a node's
data comes from is the node operator's decision (Flower node config), never the run config's:

* **site-local** (deployment): ``data-format`` / ``data-path`` (+ ``data-*`` loader options,
  :mod:`fedpia.data.site`) name the hospital's OWN dataset; the node builds exactly that one
  client. Its name and index (seed streams) come from the server in every message — the
  server knows which client a node is from its authenticated key (:mod:`fedpia.flower.nodes`);
* **partition** (simulation): ``partition-id`` = k serves client k of the run config's setting
  (``data-root`` in the node config overrides the run config's ``data_root``).

Handlers (message types): ``query`` (who am I: client name, index, task, training examples),
``train`` (rebuild the payload, load this client's :class:`~fedpia.strategies.ClientState` from
the node-local ``Context.state``, run :func:`fedpia.rounds.client_step` — the SAME function the
in-process simulator calls — save the new ClientState, reply with the upload) and ``evaluate``
(:func:`fedpia.rounds.evaluate_client` on the received global view).

Node-side privacy knobs (node config): ``dp-secret-file`` (a file only this site can read whose
bytes, with the run seed, round and client, seed this node's local-DP noise — reproducible for
the site, secret to everyone else; without it: fresh OS entropy every round) and
``dp-min-noise`` (refuse to train unless the run uses local DP with σ ≥ this value: the
hospital's own floor, whatever the submitted run config says).

Importing this module loads only ``flwr`` (and NumPy): torch, transformers, POT, pandas and
fedpia's model code load on the first message, so a SuperNode's ClientApp process starts within
Flower's start-up window even on a loaded machine. The run (model, data, runtime) is cached per
process.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import Mod

log = logging.getLogger(__name__)

_RUNS: dict[str, Any] = {}


def node_run(cfg: Any, *, data_root: str | None = None) -> Any:
    """The (per-process cached) :class:`~fedpia.rounds.Run` of ``cfg``."""
    import json

    from fedpia.rounds import build_run

    key = json.dumps([cfg.to_dict(), data_root], sort_keys=True, default=str)
    if key not in _RUNS:
        _RUNS[key] = build_run(cfg, data_root=data_root)
    return _RUNS[key]


def _node(msg: Message, context: Context, cfg: Any) -> tuple[Any, Any, Any]:
    """(run, client runtime, round rules) of this node for ``msg`` (module docstring)."""
    from fedpia.data.site import parse_site
    from fedpia.flower.env import configure_environment
    from fedpia.rounds import from_run_config

    configure_environment()
    cfg = cfg or from_run_config(context.run_config)
    conf = msg.content.config_records.get("config") or ConfigRecord()
    n = int(conf["num_clients"]) if "num_clients" in conf else None
    site = parse_site(context.node_config)
    if site is not None:
        missing = [k for k in ("client", "index", "num_clients") if k not in conf]
        if missing:
            raise ValueError(f"message lacks the client identity {missing} (server side of "
                             "node identity: fedpia.flower.nodes)")
        run = node_run(cfg)
        return run, run.site_runtime(site, name=str(conf["client"]), index=int(conf["index"])), \
            run.rules(n)
    if "partition-id" not in context.node_config:
        raise ValueError("node config has neither data-format / data-path (this site's own data) "
                         "nor partition-id (a simulated partition of the run's setting)")
    root = context.node_config.get("data-root")
    run = node_run(cfg, data_root=str(root) if root else None)
    rt = run.runtime(int(context.node_config["partition-id"]))
    if "index" in conf and int(conf["index"]) != rt.index:
        raise ValueError(f"the server sends client {conf['index']} to partition-id {rt.index}")
    return run, rt, run.rules(n)


def _meta(rt: Any) -> ConfigRecord:
    return ConfigRecord({"client": rt.name, "index": rt.index, "task": rt.task})


def handle_query(msg: Message, context: Context, cfg: Any = None) -> Message:
    _, rt, _ = _node(msg, context, cfg)
    meta = _meta(rt)
    meta["num_examples"] = len(rt.train)
    return Message(RecordDict({"meta": meta}), reply_to=msg)


def _check_same_run(conf: ConfigRecord, run: Any) -> int:
    """The round of a train message; ValueError if the server runs another config."""
    sim = run.config.sim
    if (int(conf["num_rounds"]), int(conf["seed"])) != (sim.rounds, sim.seed):
        raise ValueError(f"server runs sim.rounds={conf['num_rounds']}, sim.seed={conf['seed']}; "
                         f"this node's run_config has {sim.rounds}, {sim.seed}")
    return int(conf["round"])


def noise_secret(context: Context, rules: Any) -> bytes | None:
    """This node's local-DP noise secret: ``dp-secret-file``'s bytes, else 32 bytes of fresh OS
    entropy; None without local DP. Enforces the node's ``dp-min-noise`` floor."""
    floor = context.node_config.get("dp-min-noise")
    dp = rules.dp
    if floor is not None and (dp.mode != "local" or dp.noise_multiplier < float(floor)):
        raise ValueError(f"this node requires dp.mode='local' with noise multiplier >= {floor} "
                         f"(node config dp-min-noise); the run has mode {dp.mode!r}, "
                         f"σ = {dp.noise_multiplier:g}")
    if dp.mode != "local":
        return None
    path = context.node_config.get("dp-secret-file")
    if not path:
        return os.urandom(32)
    secret = Path(str(path)).expanduser().read_bytes()
    if len(secret) < 16:
        raise ValueError(f"dp-secret-file {path} holds {len(secret)} bytes; use >= 16 random "
                         "bytes (e.g. head -c 32 /dev/urandom)")
    return secret


def handle_train(msg: Message, context: Context, cfg: Any = None) -> Message:
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
    from fedpia.rounds import client_step, initial_client_state

    run, rt, rules = _node(msg, context, cfg)
    r = _check_same_run(msg.content.config_records["config"], run)
    secret = noise_secret(context, rules)
    payload = states_from_recorddict(msg.content, PAYLOAD)
    cstate = load_client_state(context.state) or initial_client_state(rt)
    update, new_state = client_step(rules, rt, payload, cstate, r, noise_secret=secret)
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


def handle_evaluate(msg: Message, context: Context, cfg: Any = None) -> Message:
    from fedpia.flower.records import PAYLOAD, load_client_state, states_from_recorddict
    from fedpia.rounds import evaluate_client, initial_client_state

    run, rt, _ = _node(msg, context, cfg)
    view = states_from_recorddict(msg.content, PAYLOAD)
    cstate = load_client_state(context.state) or initial_client_state(rt)
    res = evaluate_client(rt, cstate, view, eval_global=run.config.sim.eval_global)
    metrics = MetricRecord({"num-examples": len(rt.test)})
    for view_name, values in res.items():
        for k, v in values.items():
            metrics[f"{view_name}.{k}"] = v
    return Message(RecordDict({"metrics": metrics, "meta": _meta(rt)}), reply_to=msg)


def make_client_app(cfg: Any = None, *, mods: Sequence[Mod] = ()) -> ClientApp:
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
