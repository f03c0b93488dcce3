"""Start and stop the Flower processes fedpia launches itself (SuperLink, SuperNodes), by PID.

Each process starts in its own session (``start_new_session``), so it leads a process group
that holds what it spawns (Flower's ServerApp / ClientApp subprocesses); :func:`stop` signals
that whole group — SIGTERM, then SIGKILL after a grace period — plus the descendants it noted
before (Flower detaches some helpers into new sessions), and nothing else. Ports come from the OS (:func:`free_port`), so concurrent runs on one
machine do not collide.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(cmd: Sequence[str], *, log: Path, env: Mapping[str, str] | None = None,
          cwd: Path | None = None) -> subprocess.Popen:
    """``cmd`` in a new session (its own process group), stdout+stderr appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        return subprocess.Popen(list(cmd), stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True)


def wait_port(port: int, *, proc: subprocess.Popen | None = None, timeout: float = 120.0,
              log: Path | None = None) -> None:
    """Wait until something accepts connections on 127.0.0.1:``port``; RuntimeError when
    ``proc`` exits first or after ``timeout`` seconds (the log's tail in the message)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before listening on "
                               f"{port}: {_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.3)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s: {_tail(log)}")


def descendants(pid: int) -> list[int]:
    """PIDs of every live descendant of ``pid`` (Linux ``/proc``; [] elsewhere). Flower starts
    some helpers in new sessions (``flower-superexec``), outside the leader's process group."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = entry.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def stop(proc: subprocess.Popen, *, grace: float = 10.0) -> int | None:
    """Stop ``proc`` and everything it started: note its descendants' PIDs, SIGTERM its
    process group (its PID), wait up to ``grace`` seconds for it, then SIGKILL what is left of
    the group and of the noted descendants. Returns the leader's exit code."""
    tree = descendants(proc.pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # children that outlived the leader, or the leader
    for pid in tree:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5.0)
    return proc.poll()


@contextlib.contextmanager
def running(cmd: Sequence[str], *, log: Path, port: int | None = None,
            env: Mapping[str, str] | None = None, timeout: float = 120.0
            ) -> Iterator[subprocess.Popen]:
    """Start ``cmd`` (waiting for ``port`` when given) and stop its group on exit, also on
    errors."""
    proc = start(cmd, log=log, env=env)
    try:
        if port is not None:
            wait_port(port, proc=proc, timeout=timeout, log=log)
        yield proc
    finally:
        stop(proc)


def _tail(log: Path | None, n: int = 2000) -> str:
    if log is None or not log.exists():
        return ""
    return log.read_text(errors="replace")[-n:]
