"""The run config lives in the round layer (``fedpia.rounds.config``), shared by both engines;
re-exported here so ``fedpia.experiments.ExperimentConfig`` keeps working."""

from fedpia.rounds.config import ENGINES, ExperimentConfig, FlowerConfig, RobustConfig, SimConfig

__all__ = ["ENGINES", "ExperimentConfig", "FlowerConfig", "RobustConfig", "SimConfig"]
