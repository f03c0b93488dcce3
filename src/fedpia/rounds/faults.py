"""Fault injection: corrupt chosen clients' uploads to test the server's defences.

A fault is a mapping ``{client, round, kind}`` in ``sim.faults`` (TOML:
``sim.faults = [{client = "ct", round = 2, kind = "scale:1000"}]``):

* ``client``: the client's name or its index in the setting;
* ``round``: a 1-based round, or omitted / ``None`` for every round;
* ``kind``: what the client does to its upload after training normally:

| kind | effect on the upload |
|---|---|
| ``nan``, ``inf`` | the first value of the first tensor (sorted keys) becomes NaN / +Inf |
| ``fill:X`` | every value of the first tensor becomes X (e.g. ``fill:1e30``) |
| ``scale:X`` | the update is multiplied: ``G + X·(W − G)`` (G = the global the client received) |
| ``count:X`` | the reported example count becomes X (``-5``, ``nan``, ``inf``, ``none``, ``1e15``) |
| ``drop`` | the client fails (raises :class:`ClientFailure`): nothing is uploaded |
| ``missing_key`` | the first tensor is removed |
| ``wrong_shape`` | the first tensor gets one extra column |

Faults are applied inside the client step (:func:`fedpia.rounds.client_step`), which both engines
run, so they travel over Flower exactly like a misbehaving hospital's upload would. The client's
own state is never corrupted: only what it sends. The round record lists what was injected
(``faults``) beside what the server did (``failed``, ``rejected``, ``influence``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from fedpia.strategies.base import ClientUpdate, State

KINDS = ("nan", "inf", "fill", "scale", "count", "drop", "missing_key", "wrong_shape")
_WITH_ARG = ("fill", "scale", "count")


class ClientFailure(RuntimeError):
    """A simulated client crash (``sim.failure_prob``) or an injected ``drop`` fault."""


@dataclass(frozen=True)
class Fault:
    """One parsed entry of ``sim.faults``; ``arg`` is X of ``kind:X`` (None = no argument or
    ``count:none``); ``label`` is the kind as written (``"scale:1000"``)."""

    client: int | str
    round: int | None
    kind: str
    arg: float | None = None
    label: str = ""

    def matches(self, round_: int, index: int, name: str) -> bool:
        who = self.client == index if isinstance(self.client, int) else self.client == name
        return who and (self.round is None or self.round == round_)


def parse_fault(raw: Mapping[str, Any], where: str = "sim.faults[0]") -> Fault:
    """A :class:`Fault` from ``{client, round, kind}``; ValueError naming ``where`` otherwise."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where} must be a table {{client, round, kind}}, got {raw!r}")
    unknown = sorted(set(raw) - {"client", "round", "kind"})
    if unknown or "client" not in raw or "kind" not in raw:
        raise ValueError(f"{where}: needs keys client and kind (round optional), got {sorted(raw)}")
    client, rnd, kind = raw["client"], raw.get("round"), raw["kind"]
    if isinstance(client, bool) or not isinstance(client, int | str) or client == "":
        raise ValueError(f"{where}.client must be a client name or index, got {client!r}")
    if isinstance(client, int) and client < 0:
        raise ValueError(f"{where}.client must be >= 0, got {client}")
    if rnd is not None and (isinstance(rnd, bool) or not isinstance(rnd, int) or rnd < 1):
        raise ValueError(f"{where}.round must be an integer >= 1 (or omitted), got {rnd!r}")
    if not isinstance(kind, str):
        raise ValueError(f"{where}.kind must be a string, got {kind!r}")
    name, _, text = kind.partition(":")
    if name not in KINDS or bool(text) != (name in _WITH_ARG):
        raise ValueError(f"{where}.kind={kind!r}; allowed: nan, inf, fill:X, scale:X, count:X, "
                         "drop, missing_key, wrong_shape")
    arg = None
    if text:
        try:
            arg = None if (name == "count" and text.lower() == "none") else float(text)
        except ValueError:
            raise ValueError(f"{where}.kind={kind!r}: X must be a number") from None
    return Fault(client, rnd, name, arg, kind)


def parse_faults(raw: Sequence[Mapping[str, Any]]) -> tuple[Fault, ...]:
    return tuple(parse_fault(f, f"sim.faults[{i}]") for i, f in enumerate(raw))


def faults_for(faults: Sequence[Fault], round_: int, index: int, name: str) -> list[Fault]:
    """The faults of client ``index`` / ``name`` in ``round_``, in config order."""
    return [f for f in faults if f.matches(round_, index, name)]


def apply_fault(fault: Fault, update: ClientUpdate, glob: State) -> ClientUpdate:
    """``update`` with ``fault`` applied (a new object; tensors of ``update`` are not modified).

    ``glob``: the global adapter the client received (the origin of ``scale:X``)."""
    if fault.kind == "drop":
        raise ClientFailure("injected fault: drop")
    if fault.kind == "count":
        return replace(update, num_examples=fault.arg)
    state = dict(update.state)
    if not state:
        return update
    first = sorted(state)[0]
    t = state[first]
    if fault.kind in ("nan", "inf"):
        t = t.clone()
        t.view(-1)[0] = float(fault.kind)
    elif fault.kind == "fill":
        t = torch.full_like(t, fault.arg)
    elif fault.kind == "scale":
        state = {k: glob[k] + fault.arg * (v - glob[k]) if k in glob else v for k, v in state.items()}
        return replace(update, state=state)
    elif fault.kind == "missing_key":
        del state[first]
        return replace(update, state=state)
    elif fault.kind == "wrong_shape":
        t = torch.zeros(*t.shape[:-1], t.shape[-1] + 1, dtype=t.dtype) if t.dim() else t.reshape(1, 1)
    state[first] = t
    return replace(update, state=state)
