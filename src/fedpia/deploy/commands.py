"""The Flower 1.42 commands and CLI config for a TLS + SuperNode-auth deployment.

Checked against ``--help`` of the installed ``flower-superlink``, ``flower-supernode`` and
``flwr supernode register`` (Flower 1.42): the SuperLink serves the Control, Fleet and Runtime
APIs on one HTTPS endpoint (``--host/--port``); ``--enable-supernode-auth`` admits only SuperNodes
whose public key was registered with ``flwr supernode register <key.pub> <connection>``; a
SuperNode proves its identity with ``--auth-supernode-private-key`` and verifies the SuperLink
with ``--root-certificates``. ``flwr`` reads connections from ``$FLWR_HOME/config.toml``, where
``root-certificates`` MUST be an absolute path (a relative one is refused).
"""

from __future__ import annotations

import shlex
from pathlib import Path

from fedpia.deploy.certs import DeploymentFiles

CONNECTION = "fedpia-tls"


def flwr_config_toml(files: DeploymentFiles, *, address: str, connection: str = CONNECTION
                     ) -> str:
    """``$FLWR_HOME/config.toml`` text with one TLS connection to ``address`` (host:port)."""
    return (f'[superlink]\ndefault = "{connection}"\n\n[superlink.{connection}]\n'
            f'address = "{address}"\nroot-certificates = "{files.ca_cert}"\n')


def _q(x: object) -> str:
    return shlex.quote(str(x))


def superlink_command(files: DeploymentFiles, *, bind_host: str, port: int, database: Path
                      ) -> list[str]:
    """``flower-superlink`` with TLS, SuperNode auth and no runtime dependency installation."""
    return ["flower-superlink", "--host", bind_host, "--port", str(port),
            "--database", str(database),
            "--ssl-ca-certfile", str(files.ca_cert), "--ssl-certfile", str(files.server_cert),
            "--ssl-keyfile", str(files.server_key),
            "--enable-supernode-auth", "--disable-runtime-dependency-installation"]


def register_command(files: DeploymentFiles, node: str, *, connection: str = CONNECTION
                     ) -> list[str]:
    """``flwr supernode register`` for ``node``'s public key (run by the SuperLink operator)."""
    return ["flwr", "supernode", "register", str(files.node_keys[node][1]), connection,
            "--name", node]


def supernode_command(files: DeploymentFiles, node: str, *, superlink: str, port: int,
                      node_config: str) -> list[str]:
    """``flower-supernode`` for ``node``: TLS to ``superlink`` (host:port), its auth key, its
    local ClientAppIo port ``port`` and its ``--node-config``."""
    return ["flower-supernode", "--superlink", superlink,
            "--root-certificates", str(files.ca_cert),
            "--auth-supernode-private-key", str(files.node_keys[node][0]),
            "--port", str(port), "--node-config", node_config]


def deployment_script(files: DeploymentFiles, *, address: str, bind_host: str, app: Path,
                      node_configs: dict[str, str], first_node_port: int = 9094,
                      operator_config: Path | None = None) -> str:
    """Every command of the deployment, in order, as shell text (one block per machine).
    ``operator_config``: the server operator's file (``FEDPIA_SERVER_CONFIG``: output folder and
    the clients' public keys), exported in the SuperLink's environment."""
    port = int(address.rsplit(":", 1)[1])
    db = files.root / "superlink-state.db"
    op = operator_config or files.root / "server.toml"
    lines = ["# every machine", "export FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1 "
             "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1",
             "", "# 1. SuperLink machine (keep ca.key offline; server.key stays here). The "
             "operator's config fixes where results go and which key is which hospital:",
             f"export FEDPIA_SERVER_CONFIG={_q(op)}",
             " ".join(map(_q, superlink_command(files, bind_host=bind_host, port=port,
                                                 database=db))) + " &",
             "", "# 2. SuperLink operator: flwr connection (absolute CA path) and node registration",
             f"export FLWR_HOME={_q(files.root / 'flwr-home')}",
             f"mkdir -p \"$FLWR_HOME\" && cp {_q(files.root / 'flwr-config.toml')} "
             "\"$FLWR_HOME/config.toml\""]
    lines += [" ".join(map(_q, register_command(files, n))) for n in node_configs]
    lines += ["", "# 3. each hospital (copy ca.crt and ONLY its own nodes/<name>/supernode.key); "
              "its OWN data in --node-config,", "#    e.g. 'data-format=\"vqa_rad\" "
              "data-path=\"/data/vqa_rad\"' (docs/flower.md: data-format values)"]
    for k, (node, conf) in enumerate(node_configs.items()):
        cmd = supernode_command(files, node, superlink=address, port=first_node_port + k,
                                node_config=conf)
        lines.append(" ".join(map(_q, cmd)) + " &")
    lines += ["", "# 4. researcher (same FLWR_HOME / config.toml as in 2); exits 1 unless the run "
              "completed", f"python -m fedpia.flower.submit {_q(app)} {CONNECTION}"]
    return "\n".join(lines) + "\n"
