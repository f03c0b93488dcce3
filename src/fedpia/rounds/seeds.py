"""Named seed streams: every random choice of a run derives from ``(run seed, stream, indices)``.

``seed_for(seed, "sample", r)`` is the seed of round r's client sampling, ``seed_for(seed,
"client", r, k)`` the seed of client k's local training in round r, and so on (``STREAMS``). A
stream name is hashed to a fixed integer (CRC-32, stable across processes, platforms and
engines), so two streams never share a seed by accident (the old positional scheme
``derive_seed(seed, r, 1)`` for sampling and ``derive_seed(seed, 0, k, 7)`` for heads could
collide), and a run resumed from a checkpoint or replayed on Flower draws the same numbers.

| stream | indices | used for |
|---|---|---|
| ``sample`` | round | which clients train (``sim.fraction_fit``) |
| ``failure`` | round, client | simulated client crashes (``sim.failure_prob``) |
| ``client`` | round, client | local training: batch order and dropout (``RoundContext.seed``) |
| ``second`` | round, client | the optional second local pass (Ditto, FedDAT) |
| ``probe`` | round, client | the activation-probe samples of client-side PIA |
| ``head`` | client | the client's task-head initialisation |
| ``server`` | round | the server hook's ``RoundContext.seed`` |
| ``independent`` | client (, 1) | independently initialised client adapters and their training before round 1 (``sim.independent_epochs``) |
"""

from __future__ import annotations

import zlib

import numpy as np

STREAMS = ("sample", "failure", "client", "second", "probe", "head", "server", "independent")
_IDS = {name: zlib.crc32(name.encode()) for name in STREAMS}


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers (stable across runs, processes and engines)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> 1)


def seed_for(seed: int, stream: str, *parts: int) -> int:
    """The seed of ``stream`` (one of ``STREAMS``) at ``parts`` (round and/or client index).

    Raises ValueError for an unknown stream name (a typo must not silently open a new stream).
    """
    if stream not in _IDS:
        raise ValueError(f"unknown seed stream {stream!r}; allowed: {list(STREAMS)}")
    return derive_seed(seed, _IDS[stream], *parts)
