"""Tiny Flower runs for the tests: configs, the in-process reference, and a fake Grid / Context
that drives the ServerApp's strategy and the ClientApp's handlers in this process (no Ray)."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from flwr.app import Context, Error, Message, MessageType, RecordDict

from fedpia.experiments import ExperimentConfig
from fedpia.rounds import build_run, to_run_config

TINY = {
    "setting": "synthetic",
    "setting_options": {"modalities": ["x-ray", "ct", "fundus"], "n_train": 24, "n_val": 4,
                        "n_test": 12, "image_size": 32},
    "model": {"backbone": "vilt", "pretrained": "tiny", "peft": "houlsby", "adapter_width": 8},
    "train": {"lr": 2e-3, "batch_size": 8, "local_steps": 2, "warmup_frac": 0.0},
}


def tiny_config(strategy: str = "fedpia", *, rounds: int = 2, model=None, **sim) -> ExperimentConfig:
    return ExperimentConfig.from_dict({**TINY, "strategy": strategy,
                                       "model": {**TINY["model"], **(model or {})},
                                       "sim": {"rounds": rounds, **sim}})


def run_inprocess(cfg: ExperimentConfig, *, rounds: int | None = None, threads: int = 1):
    """The same run on the in-process simulator (its own build_run: model, data, heads)."""
    from fedpia.sim import Simulator

    saved = torch.get_num_threads()
    torch.set_num_threads(threads)  # as in the Ray actors (num_cpus=1 -> OMP_NUM_THREADS=1)
    try:
        sim = Simulator.from_run(build_run(cfg))
        state = sim.initial_state()
        for _ in range(rounds or cfg.sim.rounds):
            state = sim.run_round(state)
        return state
    finally:
        torch.set_num_threads(saved)


class FakeGrid:
    """A Flower Grid whose nodes are ClientApp handlers called in this process: node 100 + k
    has node config ``node_configs[k]`` (default: partition k) and its own Context (node-local
    ``state``; ``run_config`` = the flat config, parsed by the handlers as a real SuperNode
    does) and, for ``get_nodes``, the public key ``keys[k]``. An exception becomes an error
    reply with Flower's reason format, as a real ClientApp's would."""

    def __init__(self, cfg: ExperimentConfig, n: int, *, node_configs=None, keys=None) -> None:
        flat = to_run_config(cfg)
        confs = node_configs or [{"partition-id": k} for k in range(n)]
        self.keys = {100 + k: key for k, key in enumerate(keys or [b""] * len(confs))}
        self.sent: list[tuple[int, str]] = []  # (node id, message type) of every message
        self.contexts = {100 + k: Context(run_id=1, node_id=100 + k, node_config=conf,
                                          state=RecordDict(), run_config=flat)
                         for k, conf in enumerate(confs)}

    def get_node_ids(self):
        return list(self.contexts)

    def get_nodes(self):
        return [SimpleNamespace(node_id=i, public_key=self.keys[i]) for i in self.contexts]

    def send_and_receive(self, messages, *, timeout=None):
        from fedpia.flower.client_app import handle_evaluate, handle_query, handle_train

        handlers = {MessageType.QUERY: handle_query, MessageType.TRAIN: handle_train,
                    MessageType.EVALUATE: handle_evaluate}
        replies = []
        for msg in messages:
            self.sent.append((msg.metadata.dst_node_id, msg.metadata.message_type))
            ctx = self.contexts[msg.metadata.dst_node_id]
            try:
                replies.append(handlers[msg.metadata.message_type](msg, ctx))
            except Exception as ex:
                reason = str(type(ex)) + ":<'" + str(ex) + "'>"
                replies.append(Message(Error(code=0, reason=reason), reply_to=msg))
        return replies


def run_fake_flower(cfg: ExperimentConfig, *, rounds: int | None = None, operator=None,
                    grid: FakeGrid | None = None):
    """The ServerApp's strategy on a FakeGrid (Flower's own ``Strategy.start`` loop)."""
    from fedpia.flower.records import state_to_record
    from fedpia.flower.server_app import server_strategy

    run = build_run(cfg)
    strategy = server_strategy(run, operator)
    grid = grid or FakeGrid(cfg, strategy.num_clients)
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        strategy.start(grid=grid, initial_arrays=state_to_record(run.initial_adapter),
                       num_rounds=rounds or cfg.sim.rounds, timeout=60.0)
    finally:
        torch.set_num_threads(saved)
    return strategy
