"""A real local deployment, as docs/flower.md describes it (marker ``deployment``; runs in CI).

On 127.0.0.1, free ports, a private FLWR_HOME: one SuperLink with TLS and SuperNode
authentication, its operator config (``FEDPIA_SERVER_CONFIG``: output folder, the two
hospitals' public keys), two registered SuperNodes each with its OWN site data (node config
``data-format``), one SuperNode whose key was never registered. The commands are the ones
``fedpia.deploy`` prints for make_deployment.py. Then:

* the unregistered node is refused by the SuperLink and exits;
* 1 round of FedPIA with local DP, where hospital-1 uploads NaN (injected fault), submitted
  with ``python -m fedpia.flower.submit``: exit 0; results under ``<output_dir>/<run id>/``
  with both hospitals (by their keys), hospital-1's upload rejected by screening, ε reported;
* a run config naming ``data_root`` is refused by the ServerApp: the run is
  ``finished:failed`` and the submit command exits 1.

Every process is started in its own process group and stopped by PID at teardown, also when
the test fails (:mod:`fedpia.deploy.processes`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fedpia.deploy import (
    CONNECTION,
    flwr_config_toml,
    register_command,
    superlink_command,
    supernode_command,
    write_deployment_keys,
)
from fedpia.deploy.operator import ENV, operator_toml
from fedpia.deploy.processes import free_port, start, stop, wait_port
from fedpia.experiments import ExperimentConfig
from fedpia.flower.env import DEFAULTS
from fedpia.flower.simulation import write_app

pytestmark = pytest.mark.deployment
BIN = Path(sys.executable).parent
HOSPITALS = ("hospital-0", "hospital-1")
SITE = ('data-format="synthetic:{}" data-n-train=24 data-n-val=4 data-n-test=12 '
        "data-image-size=32")


def _config(**extra) -> ExperimentConfig:
    return ExperimentConfig.from_dict({
        "name": "secure-deployment", "strategy": "fedpia",
        "model": {"backbone": "vilt", "pretrained": "tiny", "peft": "houlsby", "adapter_width": 8},
        "train": {"lr": 2e-3, "batch_size": 8, "local_steps": 2, "warmup_frac": 0.0},
        "sim": {"rounds": 1, "faults": [{"client": "hospital-1", "round": 1, "kind": "nan"}]},
        "dp": {"mode": "local", "clip": 0.5, "noise_multiplier": 4.0},
        "flower": {"timeout": 300.0}, **extra})


def _exe(cmd: list[str]) -> list[str]:
    """The venv's executable for a Flower command (the tests' Python's bin/)."""
    return [str(BIN / cmd[0]) if (BIN / cmd[0]).exists() else cmd[0], *cmd[1:]]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    work = tmp_path_factory.mktemp("secure")
    files = write_deployment_keys(work / "keys", nodes=[*HOSPITALS, "rogue"])
    port = free_port()
    home = work / "flwr-home"
    home.mkdir()
    (home / "config.toml").write_text(flwr_config_toml(files, address=f"127.0.0.1:{port}"))
    (work / "server.toml").write_text(operator_toml(
        work / "runs", {h: files.node_keys[h][1] for h in HOSPITALS}))
    env = {**os.environ, **DEFAULTS, "FLWR_HOME": str(home),
           "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")])}
    procs: dict[str, subprocess.Popen] = {}
    logs = work / "logs"
    try:
        procs["superlink"] = start(_exe(superlink_command(
            files, bind_host="127.0.0.1", port=port, database=work / "state.db")),
            log=logs / "superlink.log", env={**env, ENV: str(work / "server.toml")})
        wait_port(port, proc=procs["superlink"], log=logs / "superlink.log")
        for h in HOSPITALS:  # the operator registers the hospitals' public keys
            done = subprocess.run(_exe(register_command(files, h)), env=env, capture_output=True,
                                  text=True, timeout=120)
            assert done.returncode == 0, done.stdout + done.stderr
        for k, node in enumerate([*HOSPITALS, "rogue"]):
            cmd = supernode_command(files, node, superlink=f"127.0.0.1:{port}", port=free_port(),
                                    node_config=SITE.format(("x-ray", "ct", "fundus")[k]))
            procs[node] = start(_exe(cmd), log=logs / f"{node}.log", env=env)
        yield {"work": work, "env": env, "procs": procs, "logs": logs, "t0": time.monotonic()}
    finally:
        for proc in procs.values():
            stop(proc)


def _submit(deployment, cfg: ExperimentConfig, name: str) -> subprocess.CompletedProcess:
    app = write_app(deployment["work"] / name, cfg)
    return subprocess.run([sys.executable, "-m", "fedpia.flower.submit", str(app), CONNECTION,
                           "--timeout", "600"], env=deployment["env"], capture_output=True,
                          text=True, timeout=900)


def test_unregistered_node_is_refused(deployment):
    rogue = deployment["procs"]["rogue"]
    code = rogue.wait(timeout=180)  # refused at activation: flower-supernode exits
    text = (deployment["logs"] / "rogue.log").read_text()
    assert code != 0 and "Failed to activate SuperNode" in text, text[-2000:]


def test_one_round_of_fedpia_with_local_dp_over_tls(deployment):
    done = _submit(deployment, _config(), "app-ok")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run_dir,) = (deployment["work"] / "runs").iterdir()
    res = json.loads((run_dir / "results.json").read_text())
    assert res["status"] == "completed" and res["clients"] == list(HOSPITALS)
    (rec,) = res["history"]
    assert list(rec["clients"]) == list(HOSPITALS) and rec["failed"] == {}
    assert list(rec["rejected"]) == ["hospital-1"] and "NaN/Inf" in rec["rejected"]["hospital-1"]
    assert list(rec["influence"]["norms"]) == ["hospital-0"] and rec["skipped"] is None
    assert set(rec["eval"]) == set(HOSPITALS)
    assert res["privacy"]["epsilon"] > 0 and set(res["privacy"]["epsilon_per_client"]) == set(HOSPITALS)
    assert (run_dir / "global_adapter.safetensors").stat().st_size > 0
    for h in HOSPITALS:
        assert deployment["procs"][h].poll() is None  # the hospitals' nodes keep serving


def test_run_config_naming_a_data_path_fails_and_submit_exits_1(deployment):
    done = _submit(deployment, _config(data_root="/hospital/data"), "app-refused")
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "finished:failed" in done.stderr + done.stdout
    assert "data_root" in done.stderr + done.stdout
