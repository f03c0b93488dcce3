"""Fixtures of the Flower tests: ONE real Flower + Ray simulation (``flwr run`` on a private
``--simulation`` SuperLink; SuperLink, Ray and actor start-up are the slow part) shared by every
assertion that needs it; a fake task identity (helpers live in flower_helpers.py)."""

from __future__ import annotations

import logging

import pytest
from flower_helpers import run_inprocess, tiny_config


@pytest.fixture()
def task_identity(monkeypatch):
    """Flower only builds Messages inside a task (a run on a node): fake one for the test."""
    from flwr.supercore.task_identity import TaskIdentity

    for attr, value in (("_task_id", 1), ("_run_id", 1), ("_node_id", 1)):
        monkeypatch.setattr(TaskIdentity, attr, value)


@pytest.fixture(scope="session")
def ray_run():
    """The one Flower + Ray simulation: FedPIA, 3 clients, 2 rounds, client 1 uploads NaN in
    round 1; and the same config in-process."""
    from fedpia.flower import run_flower_simulation

    cfg = tiny_config("fedpia", faults=[{"client": 1, "round": 1, "kind": "nan"}])
    res = run_flower_simulation(cfg)  # flwr run on a private --simulation SuperLink
    return {"cfg": cfg, "flower": (res.history, res), "inprocess": run_inprocess(cfg)}


@pytest.fixture(autouse=True)
def _quiet_flower():
    logging.getLogger("flwr").setLevel(logging.WARNING)
    yield
