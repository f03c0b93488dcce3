"""Named method variants for ``fedpia compare``: a strategy + knobs + PEFT method.

The paper's table rows are variants: "fedavg" keeps the preset's adapter (Houlsby), "fedavg-lora"
is LoRA + FedAvg, "fedpia-server-only" is the ablation without client PIA, and so on. The
controls of issue 14 isolate FedPIA's parts: the client λ-mix ("fedavg-mix",
"fedpia-server-mix"), the client permutation ("fedpia-client-only" vs "fedavg-mix"), its cost
("fedpia-client-weight"), the integration weights ("fedpia-gamma0", "fedpia-layer-distance",
"fedpia-paper-weights") and the server anchor ("fedpia-server-ref"). Any registered strategy
name is also accepted as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fedpia.experiments.config import ExperimentConfig


@dataclass(frozen=True)
class Variant:
    """``inherit``: knobs taken over from a base FedPIA config's options when the variant runs
    another strategy (the ``fedavg-mix`` control keeps the preset's λ, ``mix``)."""

    strategy: str
    options: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    inherit: tuple[str, ...] = ()


VARIANTS: dict[str, Variant] = {
    "fedpia": Variant("fedpia", {}, {}, "FedPIA: server + client PIA (activation cost)"),
    "fedpia-server-only": Variant("fedpia", {"client_pia": False}, {},
                                  "ablation: w/o client PIA (clients start from G: no permutation, no mix)"),
    "fedpia-server-mix": Variant("fedpia", {"client_permute": False}, {},
                                 "server PIA + the client λ-mix, no client permutation"),
    "fedpia-client-only": Variant("fedpia", {"server_pia": False}, {}, "ablation: w/o server PIA"),
    "fedpia-client-weight": Variant("fedpia", {"server_pia": False, "client_cost": "weight"}, {},
                                    "FedAvg server + client permutation by weight cost + mix"),
    "fedpia-weight-cost": Variant("fedpia", {"client_cost": "weight"}, {}, "ablation: weight-based client cost"),
    "fedpia-layer-distance": Variant("fedpia", {"distance": "layer"}, {},
                                     "integration weights from per-layer distances d_{k,g}"),
    "fedpia-gamma0": Variant("fedpia", {"gamma": 0.0}, {},
                             "server alignment with the FedAvg weights (γ=0): isolates w_k"),
    "fedpia-paper-client": Variant("fedpia", {"probe_samples": 0, "client_margin": 0.0}, {},
                                   "the paper's client step: probe of m = adapter-width samples, "
                                   "every optimal permutation applied"),
    "fedpia-recorded": Variant("fedpia", {"probe": "recorded"}, {},
                               "FedPIA with the client cost on adapter inputs recorded during "
                               "local training (no probe forward)"),
    "fedpia-margin": Variant("fedpia", {"client_margin": 0.3}, {},
                             "client permutation applied only if it cuts the cost by >= 30%"),
    "fedpia-paper-weights": Variant("fedpia", {"weighting": "paper"}, {},
                                    "the paper's literal (1/K) Σ e^{-γ d_k} W̃_k (weights need not sum to 1)"),
    "fedpia-server-ref": Variant("fedpia", {"client_pia": False, "anchor": "largest",
                                            "iterations": 2}, {},
                                 "server-only, aligned to the largest client (2 barycenter passes)"),
    "fedavg-mix": Variant("fedavg-mix", {}, {}, "control: FedAvg + the client λ-mix, no permutation",
                          inherit=("mix",)),
    "fedpia-parallel": Variant("fedpia", {"integration": "parallel"}, {}, "parallel integration on clients"),
    "fedavg": Variant("fedavg", {}, {}, "adapter (preset's PEFT, Houlsby) + FedAvg"),
    "fedavg-parallel": Variant("fedavg", {}, {"peft": "parallel"}, "Parallel adapter + FedAvg"),
    "fedavg-compacter": Variant("fedavg", {}, {"peft": "compacter"}, "Compacter + FedAvg"),
    "fedavg-lora": Variant("fedavg", {}, {"peft": "lora"}, "LoRA + FedAvg"),
    "fedavg-bias": Variant("fedavg", {}, {"peft": "bias"}, "Bias tuning + FedAvg"),
    "fedavg-layernorm": Variant("fedavg", {}, {"peft": "layernorm"}, "LayerNorm tuning + FedAvg"),
    "promptfl": Variant("fedavg", {}, {"peft": "prompt"}, "PromptFL: prompt tuning + FedAvg"),
    "classifier-only": Variant("fedavg", {}, {"peft": "classifier"}, "only heads trained"),
    "full-finetune": Variant("fedavg", {}, {"peft": "full"}, "full fine-tuning + FedAvg"),
    "local": Variant("local", {}, {}, "local training only, no federation"),
    "fedit": Variant("fedit", {}, {"peft": "lora"}, "FedIT: LoRA, A and B averaged"),
    "ffa-lora": Variant("ffa-lora", {}, {"peft": "lora"}, "FFA-LoRA: A frozen, B averaged"),
    "fedsa-lora": Variant("fedsa-lora", {}, {"peft": "lora"}, "FedSA-LoRA: A shared, B local"),
    "flora": Variant("flora", {}, {"peft": "lora"}, "FLoRA: stacked LoRA merged into the base"),
    "fedex-lora": Variant("fedex-lora", {}, {"peft": "lora"}, "FedEx-LoRA: exact aggregation residual"),
}


def apply_variant(base: ExperimentConfig, name: str) -> ExperimentConfig:
    """``base`` with the strategy, knobs and PEFT method of variant ``name``."""
    from fedpia.strategies import STRATEGIES

    if name == "centralized":
        v = Variant("centralized", {}, {}, "pooled data upper bound")
    elif name in VARIANTS:
        v = VARIANTS[name]
    elif name in STRATEGIES:
        v = Variant(name)
    else:
        allowed = sorted(set(VARIANTS) | set(STRATEGIES) | {"centralized"})
        raise ValueError(f"unknown method {name!r}; allowed: {allowed}")
    raw = base.to_dict()
    raw["name"] = f"{base.name}/{name}"
    raw["strategy"] = v.strategy
    raw["strategy_options"] = dict(v.options) if v.strategy != base.strategy or v.options else (
        dict(base.strategy_options)
    )
    if v.strategy == "fedpia" and base.strategy == "fedpia":
        raw["strategy_options"] = {**base.strategy_options, **v.options}
    elif base.strategy == "fedpia":
        kept = {k: base.strategy_options[k] for k in v.inherit if k in base.strategy_options}
        raw["strategy_options"] = {**kept, **raw["strategy_options"]}
    raw["model"] = {**base.model, **v.model}
    return ExperimentConfig.from_dict(raw)
