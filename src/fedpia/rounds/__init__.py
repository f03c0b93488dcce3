"""The engine-neutral round layer: the ONLY home of every decision both engines must agree on.

* one run config (:class:`ExperimentConfig` with its ``sim`` / ``train`` / ``robust`` /
  ``flower`` sections; Flower's flat run_config is :func:`to_run_config` of it);
* one run assembly (:func:`build_run` -> :class:`Run`: model, data, strategy with derived knobs,
  probe size, client runtimes with their head seeds);
* the protocol: client sampling, simulated failures and injected faults, the client step,
  screening, bounded influence, the aggregation call, the failure policy, the round record,
  evaluation views, named seed streams;
* differential privacy (:mod:`fedpia.rounds.privacy`): σ resolution, local DP in the client
  step, central DP in the server step, the privacy ledger.

The in-process simulator (``fedpia.sim``) and the Flower apps (``fedpia.flower``) are transports
around these functions. See docs/engine.md.
"""

from fedpia.rounds.build import (
    RoundRules,
    Run,
    build_model_for,
    build_run,
    check_min_clients,
    client_runtime,
    strategy_knobs,
)
from fedpia.rounds.client import (
    client_context,
    client_step,
    evaluate_client,
    global_view,
    initial_client_state,
    simulated_failure,
)
from fedpia.rounds.config import (
    ENGINES,
    FAILURE_POLICIES,
    LOGGING_BACKENDS,
    NORM_BOUNDS,
    ExperimentConfig,
    FlowerConfig,
    LoggingConfig,
    RobustConfig,
    SimConfig,
)
from fedpia.rounds.faults import KINDS as FAULT_KINDS
from fedpia.rounds.faults import ClientFailure, Fault, apply_fault, faults_for, parse_faults
from fedpia.rounds.flat import from_run_config, to_run_config
from fedpia.rounds.privacy import SEEDED_NOISE, new_ledger, resolve_dp
from fedpia.rounds.seeds import STREAMS, derive_seed, seed_for
from fedpia.rounds.server import (
    RECORD_KEYS,
    RoundFailed,
    RoundOutcome,
    new_record,
    run_failure,
    sample_clients,
    server_step,
    state_bytes,
)

__all__ = [
    "ENGINES",
    "FAILURE_POLICIES",
    "FAULT_KINDS",
    "LOGGING_BACKENDS",
    "NORM_BOUNDS",
    "RECORD_KEYS",
    "STREAMS",
    "ClientFailure",
    "ExperimentConfig",
    "Fault",
    "FlowerConfig",
    "LoggingConfig",
    "RobustConfig",
    "RoundFailed",
    "RoundOutcome",
    "RoundRules",
    "Run",
    "SEEDED_NOISE",
    "SimConfig",
    "apply_fault",
    "build_model_for",
    "build_run",
    "check_min_clients",
    "client_context",
    "client_runtime",
    "client_step",
    "derive_seed",
    "evaluate_client",
    "faults_for",
    "from_run_config",
    "global_view",
    "initial_client_state",
    "new_ledger",
    "new_record",
    "parse_faults",
    "resolve_dp",
    "run_failure",
    "sample_clients",
    "seed_for",
    "server_step",
    "simulated_failure",
    "state_bytes",
    "strategy_knobs",
    "to_run_config",
]
