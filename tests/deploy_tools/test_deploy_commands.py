"""The printed deployment commands use only flags the installed Flower CLIs accept, with
absolute paths, and the flwr connection config is one Flower 1.42 parses."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fedpia.deploy import (
    CONNECTION,
    deployment_script,
    flwr_config_toml,
    register_command,
    superlink_command,
    supernode_command,
    write_deployment_keys,
)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_deployment_keys(tmp_path_factory.mktemp("keys"), nodes=["h0", "h1"])


def _help_flags(*cmd: str) -> set[str]:
    beside = Path(sys.executable).parent / cmd[0]  # the venv running the tests
    exe = str(beside) if beside.exists() else shutil.which(cmd[0])
    assert exe, f"{cmd[0]} not installed (pip install -e '.[flower]')"
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
           "COLUMNS": "200"}
    out = subprocess.run([exe, *cmd[1:], "--help"], capture_output=True, text=True, timeout=120,
                         env=env)
    text = out.stdout + out.stderr
    assert "usage" in text.lower(), text[-500:]
    return set(re.findall(r"--[a-z][a-z0-9-]+", text))


def _flags(cmd: list[str]) -> set[str]:
    return {a for a in cmd if a.startswith("--")}


def test_superlink_and_supernode_flags_exist_in_flower(files):
    sl = superlink_command(files, bind_host="127.0.0.1", port=8000, database=files.root / "s.db")
    assert _flags(sl) <= _help_flags("flower-superlink")
    assert "--enable-supernode-auth" in sl
    sn = supernode_command(files, "h0", superlink="127.0.0.1:8000", port=9094,
                           node_config="partition-id=0 num-partitions=2")
    assert _flags(sn) <= _help_flags("flower-supernode")
    assert _flags(register_command(files, "h0")) <= _help_flags("flwr", "supernode", "register")


def test_every_path_in_commands_is_absolute(files):
    for cmd in (superlink_command(files, bind_host="0.0.0.0", port=8000,
                                  database=files.root / "s.db"),
                supernode_command(files, "h1", superlink="a:1", port=1, node_config="x=1"),
                register_command(files, "h1")):
        paths = [a for a in cmd if "/" in a]
        assert paths and all(Path(p).is_absolute() for p in paths)


def test_flwr_config_parses_with_absolute_ca(files, tmp_path, monkeypatch):
    from flwr.cli.flower_config import read_superlink_connection

    home = tmp_path / "flwr-home"
    home.mkdir()
    (home / "config.toml").write_text(flwr_config_toml(files, address="127.0.0.1:8000"))
    monkeypatch.setenv("FLWR_HOME", str(home))
    conn = read_superlink_connection(CONNECTION)
    assert conn.address == "127.0.0.1:8000"
    assert conn.root_certificates == str(files.ca_cert) and not conn.insecure


def test_script_has_one_register_and_one_supernode_per_node(files):
    text = deployment_script(files, address="127.0.0.1:8000", bind_host="127.0.0.1",
                             app=Path("/app"), node_configs={"h0": "partition-id=0",
                                                             "h1": "partition-id=1"})
    assert text.count("flwr supernode register") == 2
    assert text.count("flower-supernode ") == 2 and "--port 9095" in text
    assert f"python -m fedpia.flower.submit /app {CONNECTION}" in text
    assert f"export FEDPIA_SERVER_CONFIG={files.root / 'server.toml'}" in text
