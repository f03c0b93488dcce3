"""Run a fedpia experiment on Flower's simulation runtime (Ray) through ``flwr run``.

Flower 1.42 deprecates ``flwr.simulation.run_simulation``; its replacement is ``flwr run <app>
<connection> --federation-config "num-supernodes=N ..."`` against a SuperLink started with
``--simulation``. :func:`run_flower_simulation` does exactly that, in a private work folder:

1. writes a Flower app whose ``[tool.flwr.app.config]`` is the run config
   (:func:`fedpia.rounds.to_run_config`) and a server operator config (``FEDPIA_SERVER_CONFIG``:
   results under ``<work>/out/<run id>/``);
2. starts ``flower-superlink --insecure --simulation`` on a free port of 127.0.0.1 in its own
   process group (private ``FLWR_HOME``; not Flower's shared ``:local:`` SuperLink, whose fixed
   port another user's run may hold);
3. ``flwr run`` + ``flwr log --stream`` + ``flwr ls`` (:mod:`fedpia.flower.submit`): one
   virtual SuperNode per client (``partition-id`` k = client k), one CPU per client actor;
4. stops the SuperLink's whole process group by its PID, also on errors;
5. reads ``results.json`` and the final global adapter back.

A run Flower reports as failed (the ServerApp raised: every round skipped, a refused config)
raises :class:`fedpia.flower.submit.FlowerRunFailed` with the ServerApp's reason; its
``result`` is the :class:`FlowerResult` the ServerApp wrote before raising (None if it wrote
none).
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fedpia.deploy.operator import ENV as OPERATOR_ENV
from fedpia.deploy.operator import operator_toml
from fedpia.deploy.processes import free_port, running
from fedpia.flower.env import DEFAULTS

CONNECTION = "fedpia-sim"


@dataclass
class FlowerResult:
    """A finished Flower run: ``history`` (round records), ``server`` (final ServerState:
    global adapter, rounds), ``results`` (the ServerApp's results.json), ``path`` (its folder)."""

    run_id: int
    history: list[dict[str, Any]]
    server: Any
    results: dict[str, Any]
    path: Path


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, int | float):
        return repr(v)
    return json.dumps(str(v))  # a JSON string is a valid TOML basic string


def write_app(folder: Path, cfg: Any) -> Path:
    """A Flower app folder running fedpia's apps with ``cfg`` as its run config."""
    from fedpia.rounds import to_run_config

    folder.mkdir(parents=True, exist_ok=True)
    lines = ['[build-system]', 'requires = ["hatchling"]', 'build-backend = "hatchling.build"', "",
             "[project]", 'name = "fedpia-simulation"', 'version = "0.1.0"', "dependencies = []",
             "", "[tool.hatch.build.targets.wheel]", 'packages = ["."]', "",
             "[tool.flwr.app]", 'publisher = "fedpia"', "", "[tool.flwr.app.components]",
             'serverapp = "fedpia.flower.server_app:app"',
             'clientapp = "fedpia.flower.client_app:app"', "", "[tool.flwr.app.config]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in to_run_config(cfg).items()]
    (folder / "pyproject.toml").write_text("\n".join(lines) + "\n")
    return folder


def _environment(work: Path, home: Path) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)  # Flower starts flower-superexec etc. from PATH
    env = {**os.environ, **DEFAULTS, "FLWR_HOME": str(home), OPERATOR_ENV: str(work / "server.toml"),
           "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")])}
    (work / "server.toml").write_text(operator_toml(work / "out"))
    return env


def run_flower_simulation(config: Any, *, num_supernodes: int | None = None,
                          work_dir: str | Path | None = None, num_cpus: int | None = None,
                          timeout: float | None = None) -> FlowerResult:
    """Run ``config`` (a :class:`~fedpia.rounds.ExperimentConfig`) on Flower's simulation
    runtime (module docstring). ``num_supernodes`` must equal the setting's clients;
    ``num_cpus``: Ray's CPUs (default: the core count; one per client actor)."""
    from fedpia.flower.server_app import check_flower_config
    from fedpia.flower.submit import FlowerRunFailed, flwr_executable, run_and_wait
    from fedpia.rounds import build_run

    check_flower_config(config)
    n = build_run(config).num_clients
    if num_supernodes is not None and num_supernodes != n:
        raise ValueError(f"num_supernodes={num_supernodes} but setting {config.setting!r} has {n} "
                         "clients (one SuperNode per client: partition-id k serves client k)")
    cfg = replace(config, flower=replace(config.flower, num_clients=n))
    work = Path(work_dir or tempfile.mkdtemp(prefix="fedpia-flower-sim-")).resolve()
    home = work / "flwr-home"
    home.mkdir(parents=True, exist_ok=True)
    env = _environment(work, home)
    app = write_app(work / "app", cfg)
    port = free_port()
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n'
        f'address = "127.0.0.1:{port}"\ninsecure = true\n')
    superlink = [str(Path(flwr_executable()).with_name("flower-superlink")), "--insecure",
                 "--simulation", "--isolation", "subprocess", "--host", "127.0.0.1",
                 "--port", str(port), "--database", str(work / "state.db")]
    fed = (f"num-supernodes={n} client-resources-num-cpus=1 client-resources-num-gpus=0.0 "
           f"init-args-num-cpus={num_cpus or os.cpu_count() or 1} init-args-num-gpus=0")
    with running(superlink, log=work / "superlink.log", port=port, env=env), \
            open(work / "run.log", "w") as stream:
        try:
            run_id = run_and_wait(app, CONNECTION, federation_config=fed, env=env, stream=stream,
                                  timeout=timeout)
        except FlowerRunFailed as exc:  # the ServerApp may have written its failed results
            folder = work / "out" / str(exc.run_id)
            if exc.run_id is not None and (folder / "results.json").is_file():
                exc.result = read_result(folder, exc.run_id)
            raise
    return read_result(work / "out" / str(run_id), run_id)


def read_result(folder: Path, run_id: int) -> FlowerResult:
    """The :class:`FlowerResult` the ServerApp wrote into ``folder``."""
    from safetensors.torch import load_file

    from fedpia.strategies.base import ServerState

    results = json.loads((folder / "results.json").read_text())
    tensors = load_file(str(folder / "global_adapter.safetensors"))
    adapter = {k: tensors[k] for k in results.get("adapter_keys", sorted(tensors))}
    history = results["history"]
    server = ServerState(adapter=adapter, round=history[-1]["round"] if history else 0)
    return FlowerResult(run_id, history, server, results, folder)
