"""Atomic, self-describing checkpoints: tensors in safetensors, everything else in JSON (no pickle).

Layout of ``<dir>/checkpoint/``: ``tensors.safetensors`` (flat names such as
``server/adapter/<key>``, ``client/<name>/head/<key>``) and ``meta.json`` (round, history,
privacy ledger, each head's task and labels, and the structure needed to rebuild the states; the
run's config is ``config.json`` beside the checkpoints, written by the runner). A checkpoint is written into a fresh
temporary folder and swapped in with renames, so a kill at any moment leaves either the previous
or the new checkpoint complete.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from fedpia.strategies.base import ClientState, ServerState, State

_NAME = "checkpoint"


def _flatten(prefix: str, state: State, out: dict[str, torch.Tensor]) -> list[str]:
    seen = {t.data_ptr() for t in out.values()}
    for k, v in state.items():
        t = v.detach().contiguous().cpu()
        # safetensors refuses tensors sharing storage (e.g. Ditto's adapter is its personal model)
        out[f"{prefix}/{k}"] = t.clone() if t.data_ptr() in seen else t
        seen.add(out[f"{prefix}/{k}"].data_ptr())
    return list(state)


def save_checkpoint(
    root: Path,
    *,
    server: ServerState,
    clients: dict[str, ClientState],
    round_: int,
    meta: dict[str, Any],
) -> Path:
    """Write server and client states plus ``meta`` (JSON-able) atomically under ``root``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    layout: dict[str, Any] = {
        "server": {
            "adapter": _flatten("server/adapter", server.adapter, tensors),
            "extra": {
                n: _flatten(f"server/extra/{n}", s, tensors) for n, s in server.extra.items()
            },
            "round": server.round,
        },
        "clients": {},
    }
    for name, c in clients.items():
        layout["clients"][name] = {
            "adapter": None
            if c.adapter is None
            else _flatten(f"client/{name}/adapter", c.adapter, tensors),
            "head": None if c.head is None else _flatten(f"client/{name}/head", c.head, tensors),
            "extra": {
                n: _flatten(f"client/{name}/extra/{n}", s, tensors) for n, s in c.extra.items()
            },
            "rounds_trained": c.rounds_trained,
        }
    tmp = root / f".{_NAME}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file(tensors, str(tmp / "tensors.safetensors"))
    (tmp / "meta.json").write_text(
        json.dumps({"round": round_, "layout": layout, **meta}, indent=1)
    )
    final, old = root / _NAME, root / f"{_NAME}.old"
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(root: Path) -> tuple[ServerState, dict[str, ClientState], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint` (falls back to the previous one if a
    kill happened between the two renames)."""
    root = Path(root)
    folder = root / _NAME if (root / _NAME).exists() else root / f"{_NAME}.old"
    if not (folder / "meta.json").exists():
        raise FileNotFoundError(f"no checkpoint under {root}")
    meta = json.loads((folder / "meta.json").read_text())
    tensors = load_file(str(folder / "tensors.safetensors"))

    def take(prefix: str, keys: list[str] | None) -> State | None:
        return None if keys is None else {k: tensors[f"{prefix}/{k}"] for k in keys}

    lay = meta.pop("layout")
    s = lay["server"]
    server = ServerState(
        adapter=take("server/adapter", s["adapter"]),
        round=s["round"],
        extra={n: take(f"server/extra/{n}", ks) for n, ks in s["extra"].items()},
    )
    clients = {
        name: ClientState(
            adapter=take(f"client/{name}/adapter", c["adapter"]),
            head=take(f"client/{name}/head", c["head"]),
            extra={n: take(f"client/{name}/extra/{n}", ks) for n, ks in c["extra"].items()},
            rounds_trained=c["rounds_trained"],
        )
        for name, c in lay["clients"].items()
    }
    return server, clients, meta
