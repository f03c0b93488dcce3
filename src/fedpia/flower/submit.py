"""Submit a run with ``flwr run``, follow it, and exit with its final status.

``flwr run <app> <connection> --stream`` exits 0 whatever happens to the run (Flower 1.42:
``flwr/cli/run/run.py`` returns once the log stream ends). This wrapper uses only the public
``flwr`` CLI — ``flwr run --format json`` (run id), ``flwr log <id> --stream`` (until the run
finishes), ``flwr ls --run-id <id> --format json`` (status) — and exits non-zero unless the run
is ``finished:completed`` (a ServerApp that raised, e.g. because every round was skipped, is
``finished:failed``)::

    python -m fedpia.flower.submit examples/flower_app fedpia-tls \\
        -c "sim.rounds=3" [--federation-config "num-supernodes=3 ..."] [--timeout 3600]

:func:`run_and_wait` is the same as a function (``fedpia run --engine flower`` uses it through
:func:`fedpia.flower.run_flower_simulation`).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)
COMPLETED = "finished:completed"


class FlowerRunFailed(RuntimeError):
    """A run that did not finish as ``finished:completed`` (``status``, ``details``)."""

    def __init__(self, message: str, *, run_id: int | None = None, status: str = "",
                 details: str = "") -> None:
        super().__init__(message)
        self.run_id, self.status, self.details = run_id, status, details
        self.result: object | None = None  # what the ServerApp wrote, when the caller reads it


def flwr_executable() -> str:
    """``flwr`` next to this Python (a venv's bin/), else the one on PATH."""
    here = Path(sys.executable).with_name("flwr")
    found = str(here) if here.exists() else shutil.which("flwr")
    if not found:
        raise FileNotFoundError("the flwr CLI is not installed (pip install 'flwr[simulation]')")
    return found


def _json_tail(text: str) -> dict:
    """The JSON object flwr prints with ``--format json`` (possibly indented, after other
    output): the last ``{`` at the start of a line that parses."""
    decoder = json.JSONDecoder()
    starts = [i for i in range(len(text)) if text[i] == "{" and (i == 0 or text[i - 1] == "\n")]
    for i in reversed(starts):
        try:
            return decoder.raw_decode(text, i)[0]
        except json.JSONDecodeError:
            continue
    raise ValueError(f"no JSON in flwr output: {text[-500:]!r}")


def submit(app: str | Path, connection: str, *, run_config: Sequence[str] = (),
           federation_config: str | None = None, env: Mapping[str, str] | None = None,
           timeout: float = 600.0) -> int:
    """``flwr run`` (no streaming); returns the run id or raises FlowerRunFailed."""
    cmd = [flwr_executable(), "run", str(app), connection, "--format", "json"]
    for item in run_config:
        cmd += ["--run-config", item]
    if federation_config:
        cmd += ["--federation-config", federation_config]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    try:
        out = _json_tail(done.stdout)
    except ValueError as exc:
        raise FlowerRunFailed(f"flwr run failed (exit {done.returncode}): {done.stderr[-2000:]}"
                              f"{done.stdout[-2000:]}") from exc
    if not out.get("success") or not out.get("run-id"):
        raise FlowerRunFailed(f"flwr run did not start a run: {out}")
    return int(out["run-id"])


def follow(run_id: int, connection: str, *, env: Mapping[str, str] | None = None,
           stream: IO[str] | None = None, timeout: float | None = None) -> None:
    """``flwr log <id> --stream``: returns when the run has finished (its logs go to
    ``stream``, e.g. a file; None: this process's stdout)."""
    cmd = [flwr_executable(), "log", str(run_id), connection, "--stream"]
    subprocess.run(cmd, stdout=stream, stderr=subprocess.STDOUT, env=env, timeout=timeout,
                   check=False)


def status(run_id: int, connection: str, *, env: Mapping[str, str] | None = None
           ) -> tuple[str, str]:
    """``(status, details)`` of a run from ``flwr ls --run-id <id> --format json``."""
    cmd = [flwr_executable(), "ls", connection, "--run-id", str(run_id), "--format", "json"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    runs = _json_tail(done.stdout).get("runs") or []
    if not runs:
        raise FlowerRunFailed(f"flwr ls knows no run {run_id}: {done.stdout[-1000:]}", run_id=run_id)
    return str(runs[0]["status"]), str(runs[0].get("status-details") or "")


def run_and_wait(app: str | Path, connection: str, *, run_config: Sequence[str] = (),
                 federation_config: str | None = None, env: Mapping[str, str] | None = None,
                 stream: IO[str] | None = None, timeout: float | None = None) -> int:
    """Submit, follow until finished, check the status; returns the run id of a completed run,
    raises :class:`FlowerRunFailed` otherwise."""
    run_id = submit(app, connection, run_config=run_config, federation_config=federation_config,
                    env=env)
    log.info("flwr run %d submitted to %s", run_id, connection)
    try:
        follow(run_id, connection, env=env, stream=stream, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise FlowerRunFailed(f"run {run_id} did not finish within {timeout} s",
                              run_id=run_id) from exc
    state, details = status(run_id, connection, env=env)
    if state != COMPLETED:
        raise FlowerRunFailed(f"run {run_id} ended as {state}: {details}", run_id=run_id,
                              status=state, details=details)
    return run_id


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fedpia.flower.submit",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("app", help="Flower app folder (e.g. examples/flower_app)")
    ap.add_argument("connection", help="SuperLink connection name in $FLWR_HOME/config.toml")
    ap.add_argument("-c", "--run-config", action="append", default=[],
                    help="run config override, as for flwr run (repeatable)")
    ap.add_argument("--federation-config", default=None)
    ap.add_argument("--timeout", type=float, default=None, help="seconds to wait for the run")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        run_id = run_and_wait(args.app, args.connection, run_config=args.run_config,
                              federation_config=args.federation_config, timeout=args.timeout)
    except FlowerRunFailed as exc:
        log.error("FAILED: %s", exc)
        return 1
    log.info("run %d: %s", run_id, COMPLETED)
    return 0


if __name__ == "__main__":
    sys.exit(main())
