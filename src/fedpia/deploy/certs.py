"""Key material for a Flower 1.42 deployment: a CA, the SuperLink's TLS certificate, and one
SuperNode authentication key pair per hospital, written with the ``cryptography`` package.

Layout written under ``out`` (private keys mode 0600)::

    ca.crt  ca.key                     self-signed CA (keep ca.key offline after signing)
    server.pem  server.key             SuperLink TLS certificate (SAN: 127.0.0.1, localhost,
                                       ::1 and every extra host given) and its key
    nodes/<name>/supernode.key         the SuperNode's private key (OpenSSH format, EC P-384):
                                       flower-supernode --auth-supernode-private-key
    nodes/<name>/supernode.pub         its public key (OpenSSH format):
                                       flwr supernode register <this file> <connection>

Formats are the ones Flower 1.42 reads: ``flower-superlink --ssl-*`` take PEM files;
``flower-supernode`` loads the private key with ``load_ssh_private_key`` and ``flwr supernode
register`` the public key with ``load_ssh_public_key`` and requires a NIST EC curve.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("127.0.0.1", "localhost", "::1")
_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


@dataclass(frozen=True)
class DeploymentFiles:
    """Absolute paths of everything :func:`write_deployment_keys` wrote."""

    root: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    node_keys: dict[str, tuple[Path, Path]]  # name -> (private key, public key)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fedpia deployment"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _san(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    return x509.SubjectAlternativeName(names)


def make_ca(*, days: int) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA certificate (CA:true, pathlen 0, keyCertSign) and its EC P-384 key."""
    key = ec.generate_private_key(ec.SECP384R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(_name("fedpia CA")).issuer_name(_name("fedpia CA"))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA384())
    )
    return cert, key


def make_server_cert(ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, *,
                     hosts: list[str], days: int
                     ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A TLS server certificate for ``hosts`` (IPs and DNS names in the SAN) signed by the CA."""
    if not hosts:
        raise ValueError("the server certificate needs at least one host")
    key = ec.generate_private_key(ec.SECP384R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(_name(hosts[0])).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA384())
    )
    return cert, key


def _write(path: Path, data: bytes, *, private: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return path.resolve()


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def write_node_keys(out: Path, name: str) -> tuple[Path, Path]:
    """An EC P-384 key pair for SuperNode ``name`` in OpenSSH formats (private, public)."""
    if not _NODE_NAME.match(name):
        raise ValueError(f"node name {name!r}: use letters, digits, '_', '.', '-' (max 63)")
    key = ec.generate_private_key(ec.SECP384R1())
    priv = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                             serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                        serialization.PublicFormat.OpenSSH)
    d = out / "nodes" / name
    return (_write(d / "supernode.key", priv, private=True),
            _write(d / "supernode.pub", pub + b"\n", private=False))


def write_deployment_keys(out: str | Path, *, nodes: list[str], hosts: list[str] = (),
                          days: int = 365, overwrite: bool = False) -> DeploymentFiles:
    """Write the CA, the SuperLink certificate (SAN = DEFAULT_HOSTS + ``hosts``) and one key
    pair per node name into ``out``. Refuses an ``out`` that already holds a ``ca.key`` unless
    ``overwrite`` (re-issuing a CA invalidates every certificate and key handed out)."""
    out = Path(out).expanduser().resolve()
    if len(set(nodes)) != len(nodes) or not nodes:
        raise ValueError(f"need one or more distinct node names, got {nodes}")
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    if (out / "ca.key").exists() and not overwrite:
        raise FileExistsError(f"{out} already holds a CA (ca.key); pass overwrite to replace it")
    all_hosts = list(dict.fromkeys([*DEFAULT_HOSTS, *hosts]))
    ca_cert, ca_key = make_ca(days=days)
    srv_cert, srv_key = make_server_cert(ca_cert, ca_key, hosts=all_hosts, days=days)
    pem = serialization.Encoding.PEM
    return DeploymentFiles(
        root=out,
        ca_cert=_write(out / "ca.crt", ca_cert.public_bytes(pem), private=False),
        ca_key=_write(out / "ca.key", _pem_key(ca_key), private=True),
        server_cert=_write(out / "server.pem", srv_cert.public_bytes(pem), private=False),
        server_key=_write(out / "server.key", _pem_key(srv_key), private=True),
        node_keys={n: write_node_keys(out, n) for n in nodes},
    )
