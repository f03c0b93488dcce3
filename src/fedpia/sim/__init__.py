"""In-process simulator (the embedded default engine) and atomic checkpoints."""

from fedpia.sim.checkpoint import load_checkpoint, save_checkpoint
from fedpia.sim.simulator import (
    RoundFailed,
    SimConfig,
    SimState,
    Simulator,
    derive_seed,
    state_bytes,
)

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
