"""The server operator's config: the public keys it lists compare equal to what Flower stores
for a registered node, and every malformed config is refused with the reason."""

from __future__ import annotations

import pytest

from fedpia.deploy import write_deployment_keys
from fedpia.deploy.operator import (
    ENV,
    load_operator_config,
    operator_config_from_env,
    operator_toml,
    public_key_pem,
)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_deployment_keys(tmp_path_factory.mktemp("keys"), nodes=["h0", "h1"])


def test_listed_key_equals_the_bytes_flower_registers(files):
    from flwr.cli.supernode.register import (
        try_load_public_key,  # what `flwr supernode register` sends
    )

    for name, (_, pub) in files.node_keys.items():
        assert public_key_pem(pub) == try_load_public_key(pub), name
    assert public_key_pem(files.node_keys["h0"][1]) != public_key_pem(files.node_keys["h1"][1])


def test_operator_toml_roundtrip_and_run_dir(files, tmp_path):
    path = tmp_path / "server.toml"
    path.write_text(operator_toml(tmp_path / "runs", {n: k[1] for n, k in files.node_keys.items()}))
    op = load_operator_config(path)
    assert op.deployment and [c.name for c in op.clients] == ["h0", "h1"]
    assert op.clients[1].public_key == public_key_pem(files.node_keys["h1"][1])
    assert op.run_dir(42) == tmp_path / "runs" / "42"
    sim = tmp_path / "sim.toml"
    sim.write_text(operator_toml(tmp_path / "runs"))
    assert not load_operator_config(sim).deployment


@pytest.mark.parametrize("text, needle", [
    ('output_dir = "runs"', "absolute"),
    ('output_dir = "/r"\nextra = 1', "unknown key"),
    ('output_dir = "/r"\n[[clients]]\nname = "a"', "exactly name and public_key"),
    ('output_dir = "/r"\n[[clients]]\nname = "a b"\npublic_key = "K0"', "letters, digits"),
    ('output_dir = "/r"\n[[clients]]\nname = "a"\npublic_key = "K0"\n'
     '[[clients]]\nname = "a"\npublic_key = "K1"', "share a name"),
    ('output_dir = "/r"\n[[clients]]\nname = "a"\npublic_key = "K0"\n'
     '[[clients]]\nname = "b"\npublic_key = "K0"', "share a public_key"),
    ('output_dir = "/r"\n[[clients]]\nname = "a"\npublic_key = "CA"', "not a public key"),
    ("output_dir = ", "server operator config"),
])
def test_malformed_operator_configs_are_refused(files, tmp_path, text, needle):
    keys = {"K0": files.node_keys["h0"][1], "K1": files.node_keys["h1"][1], "CA": files.ca_cert}
    for k, v in keys.items():
        text = text.replace(f'"{k}"', f'"{v}"')
    path = tmp_path / "server.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=needle):
        load_operator_config(path)


def test_unset_environment_is_refused(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(ValueError, match=f"{ENV} is not set"):
        operator_config_from_env()
