"""Generate the key material of a TLS + SuperNode-auth Flower deployment and print its commands.

    python examples/flower_app/make_deployment.py OUT_DIR --nodes hospital-a,hospital-b \
        [--host superlink.example.org] [--address 127.0.0.1:8000] [--bind-host 127.0.0.1]

Writes into OUT_DIR: ca.crt/ca.key, server.pem/server.key (SAN 127.0.0.1, localhost, ::1 and
every --host), nodes/<name>/supernode.{key,pub}, flwr-config.toml (the flwr connection
``fedpia-tls`` with the ABSOLUTE CA path), server.toml (the server operator's config,
``FEDPIA_SERVER_CONFIG``: results under OUT_DIR/runs/<run id>/, node k = the k-th --nodes name,
identified by its public key) and commands.sh (every command, in order; also printed). Each
SuperNode's --node-config names demo data (``data-format="synthetic:<modality>"``): a hospital
replaces it with its own folder (``data-format="vqa_rad" data-path="/data/vqa_rad"``, ...).
Refuses an OUT_DIR that already holds a CA unless --overwrite.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from fedpia.deploy import deployment_script, flwr_config_toml, write_deployment_keys
from fedpia.deploy.operator import operator_toml

APP = Path(__file__).resolve().parent
DEMO = ("x-ray", "ct", "fundus", "mri", "ultrasound")  # modalities of the demo site data


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--nodes", required=True, help="comma-separated SuperNode names")
    ap.add_argument("--host", action="append", default=[],
                    help="extra SuperLink host name / IP for the certificate (repeatable)")
    ap.add_argument("--address", default="127.0.0.1:8000",
                    help="host:port the SuperNodes and flwr use to reach the SuperLink")
    ap.add_argument("--bind-host", default="127.0.0.1", help="flower-superlink --host")
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    nodes = [n.strip() for n in args.nodes.split(",") if n.strip()]
    host = args.address.rsplit(":", 1)[0]
    files = write_deployment_keys(args.out, nodes=nodes, hosts=[host, *args.host],
                                  days=args.days, overwrite=args.overwrite)
    (files.root / "flwr-config.toml").write_text(flwr_config_toml(files, address=args.address))
    (files.root / "server.toml").write_text(
        operator_toml(files.root / "runs", {n: files.node_keys[n][1] for n in nodes}))
    confs = {n: f'data-format="synthetic:{DEMO[k % len(DEMO)]}"' for k, n in enumerate(nodes)}
    script = deployment_script(files, address=args.address, bind_host=args.bind_host, app=APP,
                               node_configs=confs, operator_config=files.root / "server.toml")
    (files.root / "commands.sh").write_text(script)
    print(script, end="")
    return script


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
