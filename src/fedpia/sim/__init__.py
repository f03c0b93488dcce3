"""In-process simulator (the embedded default engine) and atomic checkpoints.

``SimConfig``, ``RoundFailed``, ``derive_seed`` and ``state_bytes`` live in the round layer
(``fedpia.rounds``) and are re-exported here for existing callers.
"""

from fedpia.rounds import RoundFailed, SimConfig, derive_seed, state_bytes
from fedpia.sim.checkpoint import load_checkpoint, save_checkpoint
from fedpia.sim.simulator import SimState, Simulator

__all__ = [
    "RoundFailed",
    "SimConfig",
    "SimState",
    "Simulator",
    "derive_seed",
    "load_checkpoint",
    "save_checkpoint",
    "state_bytes",
]
