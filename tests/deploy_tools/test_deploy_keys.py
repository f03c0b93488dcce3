"""Key material for a TLS + SuperNode-auth deployment: the chain verifies for every SAN host,
the node keys load with Flower's own loaders, private keys are 0600, misuse is refused."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_ssh_private_key
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from fedpia.deploy import write_deployment_keys


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    out = tmp_path_factory.mktemp("keys")
    return write_deployment_keys(out, nodes=["hospital-a", "hospital-b"],
                                 hosts=["superlink.example.org", "10.1.2.3"], days=30)


def _verify(files, subject):
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    leaf = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    verifier = PolicyBuilder().store(Store([ca])).time(dt.datetime.now(dt.UTC)) \
        .build_server_verifier(subject)
    return verifier.verify(leaf, [])


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "superlink.example.org",
                                  "10.1.2.3"])
def test_server_certificate_chain_verifies_for_every_san_host(files, host):
    try:
        subject = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        subject = x509.DNSName(host)
    chain = _verify(files, subject)
    assert len(chain) == 2  # leaf + our CA


def test_server_certificate_is_refused_for_another_host(files):
    with pytest.raises(VerificationError):
        _verify(files, x509.DNSName("evil.example.org"))


def test_node_keys_load_with_flowers_loaders(files):
    from flwr.cli.supernode.register import try_load_public_key

    for name, (priv, pub) in files.node_keys.items():
        key = load_ssh_private_key(priv.read_bytes(), None)  # what flower-supernode does
        assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1"
        assert priv.parent.name == name
        registered = try_load_public_key(pub)                 # what flwr supernode register does
        assert isinstance(registered, bytes) and registered


def test_private_keys_are_owner_only_and_paths_absolute(files):
    privates = [files.ca_key, files.server_key, *(p for p, _ in files.node_keys.values())]
    for p in privates:
        assert p.is_absolute() and stat.S_IMODE(p.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.ca_cert.stat().st_mode) == 0o644


def test_node_keys_differ(files):
    pubs = {pub.read_bytes() for _, pub in files.node_keys.values()}
    assert len(pubs) == 2


def test_existing_ca_is_not_overwritten_silently(files):
    before = files.ca_cert.read_bytes()
    with pytest.raises(FileExistsError, match="already holds a CA"):
        write_deployment_keys(files.root, nodes=["x"])
    assert files.ca_cert.read_bytes() == before


@pytest.mark.parametrize("nodes, match", [([], "one or more distinct"), (["a", "a"], "distinct"),
                                          (["../etc"], "node name")])
def test_bad_node_names_are_refused(tmp_path, nodes, match):
    with pytest.raises(ValueError, match=match):
        write_deployment_keys(tmp_path / "k", nodes=nodes)
