"""Deployment tooling for a secure Flower federation (no flwr import): CA, SuperLink TLS
certificate and SuperNode auth keys (:mod:`fedpia.deploy.certs`), and the exact Flower 1.42
commands / CLI config that use them (:mod:`fedpia.deploy.commands`). See docs/flower.md."""

from fedpia.deploy.certs import DEFAULT_HOSTS, DeploymentFiles, write_deployment_keys
from fedpia.deploy.commands import (
    CONNECTION,
    deployment_script,
    flwr_config_toml,
    register_command,
    superlink_command,
    supernode_command,
)

__all__ = [
    "CONNECTION",
    "DEFAULT_HOSTS",
    "DeploymentFiles",
    "deployment_script",
    "flwr_config_toml",
    "register_command",
    "superlink_command",
    "supernode_command",
    "write_deployment_keys",
]
