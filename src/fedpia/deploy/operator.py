"""The server operator's config: where the ServerApp writes and which nodes are which client.

Decided by whoever runs the SuperLink, NOT by whoever submits a run: a TOML file named by the
environment variable ``FEDPIA_SERVER_CONFIG`` in the SuperLink's environment (the ServerApp
process inherits it)::

    output_dir = "/srv/fedpia/runs"      # absolute; a run's results go to <output_dir>/<run id>/

    [[clients]]                          # client index 0, 1, ... in this order
    name = "hospital-a"
    public_key = "/srv/fedpia-keys/nodes/hospital-a/supernode.pub"   # the key registered with
                                                                     # `flwr supernode register`
    [[clients]]
    name = "hospital-b"
    public_key = "/srv/fedpia-keys/nodes/hospital-b/supernode.pub"

With ``[[clients]]`` (deployment) a node is the client whose public key it authenticated with
(Flower's ``NodeInfo.public_key`` on the SuperLink); a node whose key is not listed is ignored,
so a rogue node cannot take an offline hospital's place. Without it (simulation) nodes name their
partition themselves (``partition-id``), which is only safe when one party runs every node.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

ENV = "FEDPIA_SERVER_CONFIG"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


@dataclass(frozen=True)
class ExpectedClient:
    """Client ``name`` is served by the node holding the private key of ``public_key`` (PEM
    SubjectPublicKeyInfo bytes, the form Flower stores)."""

    name: str
    public_key: bytes


@dataclass(frozen=True)
class OperatorConfig:
    output_dir: Path
    clients: tuple[ExpectedClient, ...] = ()

    @property
    def deployment(self) -> bool:
        """True when nodes are identified by their keys (``[[clients]]`` given)."""
        return bool(self.clients)

    def run_dir(self, run_id: int | str) -> Path:
        """``<output_dir>/<run id>`` (the only folder a run writes to)."""
        return self.output_dir / str(int(run_id))


def public_key_pem(path: str | Path) -> bytes:
    """The public key in ``path`` (OpenSSH ``ecdsa-sha2-...`` line or PEM) as PEM
    SubjectPublicKeyInfo bytes, comparable with Flower's ``NodeInfo.public_key``."""
    from cryptography.hazmat.primitives import serialization

    raw = Path(path).expanduser().read_bytes()
    try:
        key = (serialization.load_pem_public_key(raw) if raw.lstrip().startswith(b"-----")
               else serialization.load_ssh_public_key(raw))
    except ValueError as exc:
        raise ValueError(f"{path}: not a public key ({exc})") from exc
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def load_operator_config(path: str | Path) -> OperatorConfig:
    """Read and check the operator's TOML file (ValueError naming the problem)."""
    path = Path(path).expanduser()
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"server operator config {path}: {exc}") from exc
    unknown = set(raw) - {"output_dir", "clients"}
    if unknown:
        raise ValueError(f"server operator config {path}: unknown key(s) {sorted(unknown)}")
    out = Path(str(raw.get("output_dir", ""))).expanduser()
    if not out.is_absolute():
        raise ValueError(f"server operator config {path}: output_dir must be an absolute path, "
                         f"got {raw.get('output_dir')!r}")
    clients = []
    for i, entry in enumerate(raw.get("clients", [])):
        if not isinstance(entry, dict) or set(entry) != {"name", "public_key"}:
            raise ValueError(f"server operator config {path}: clients[{i}] needs exactly name "
                             f"and public_key, got {entry!r}")
        if not _NAME.match(str(entry["name"])):
            raise ValueError(f"server operator config {path}: clients[{i}].name "
                             f"{entry['name']!r}: use letters, digits, '_', '.', '-'")
        clients.append(ExpectedClient(str(entry["name"]), public_key_pem(entry["public_key"])))
    for what, values in (("name", [c.name for c in clients]),
                         ("public_key", [c.public_key for c in clients])):
        if len(set(values)) != len(values):
            raise ValueError(f"server operator config {path}: two clients share a {what}")
    return OperatorConfig(out, tuple(clients))


def operator_config_from_env() -> OperatorConfig:
    """The config named by ``$FEDPIA_SERVER_CONFIG`` (ValueError when unset)."""
    path = os.environ.get(ENV)
    if not path:
        raise ValueError(f"{ENV} is not set: the ServerApp writes only under the folder the "
                         f"server operator fixes. Set {ENV}=/path/server.toml in the SuperLink's "
                         "environment (docs/flower.md)")
    return load_operator_config(path)


def operator_toml(output_dir: str | Path, clients: dict[str, str | Path] | None = None) -> str:
    """The text of an operator config (``clients``: name -> public key file, in index order)."""
    lines = [f"output_dir = {_q(Path(output_dir).expanduser().resolve())}"]
    for name, key in (clients or {}).items():
        lines += ["", "[[clients]]", f"name = {_q(name)}",
                  f"public_key = {_q(Path(key).expanduser().resolve())}"]
    return "\n".join(lines) + "\n"


def _q(x: object) -> str:
    return '"' + str(x).replace("\\", "\\\\").replace('"', '\\"') + '"'
