"""Baseline strategies, wired from the pure math in ``fedpia.aggregation``.

FedAvg (paired with any PEFT method), local-only, FedProx, Ditto, SCAFFOLD, FedOpt (FedAdam,
FedYogi, FedAdagrad, FedAvgM), LoRA-specific FedIT / FFA-LoRA / FedSA-LoRA / FLoRA /
FedEx-LoRA, and FedDAT.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch

from fedpia.aggregation import (
    FedOptState,
    fedex_lora_aggregate,
    fedit_aggregate,
    fedopt_step,
    fedsa_lora_aggregate,
    fedsa_lora_split,
    ffa_lora_aggregate,
    ffa_lora_trainable,
    flora_stack,
    is_lora_a,
    is_lora_b,
    lora_pairs,
    prox_term,
    scaffold_client_control,
    scaffold_corrected_grad,
    scaffold_server,
)
from fedpia.align import fedavg
from fedpia.strategies.base import (
    ActivationProbe,
    ClientState,
    ClientUpdate,
    LocalHooks,
    RoundContext,
    ServerState,
    State,
    Strategy,
)
from fedpia.strategies.registry import register_strategy


@register_strategy("fedavg")
@dataclass
class FedAvg(Strategy):
    """FedAvg (McMahan et al. 2017): weighted by example counts. Paired with any PEFT method
    (Houlsby/Parallel/Compacter/LoRA/Bias/LayerNorm/prompt/classifier-only/full fine-tuning)."""


@register_strategy("local")
@dataclass
class LocalOnly(Strategy):
    """No federation: every client keeps training its own adapter; the server state is unused."""

    def client_start(
        self,
        payload: Mapping[str, State],
        client: ClientState,
        ctx: RoundContext,
        *,
        probe: ActivationProbe | None = None,
    ) -> tuple[State, LocalHooks]:
        own = client.adapter if client.adapter is not None else payload["adapter"]
        return {k: v.clone() for k, v in own.items()}, LocalHooks()

    def aggregate(
        self, server: ServerState, updates: list[ClientUpdate], ctx: RoundContext
    ) -> tuple[ServerState, dict[str, Any]]:
        return replace(server, round=ctx.round), {}


def _clone(state: Mapping[str, Any]) -> State:
    return {k: v.clone() for k, v in state.items()}


def _weights(updates: list[ClientUpdate]) -> list[float]:
    return [float(u.num_examples) for u in updates]


@register_strategy("fedprox")
@dataclass
class FedProx(Strategy):
    """FedProx (Li et al. 2020, arXiv:1812.06127): FedAvg + (μ/2)||w - w_global||² locally.
    μ = 0 is exactly FedAvg."""

    mu: float = 0.01

    def __post_init__(self) -> None:
        if self.mu < 0:
            raise ValueError(f"fedprox.mu must be >= 0, got {self.mu}")

    def client_start(self, payload, client, ctx, *, probe=None):
        glob = payload["adapter"]
        ref = _clone(glob)
        return _clone(glob), LocalHooks(extra_loss=lambda named: prox_term(named, ref, self.mu))


@register_strategy("ditto")
@dataclass
class Ditto(Strategy):
    """Ditto (Li et al. 2021, arXiv:2012.04221): the global adapter is trained as in FedAvg
    (first pass, uploaded); a personal adapter v_k (kept on the client, evaluated as the
    personalised model) is trained in a second pass with (λ/2)||v_k - w_global||²."""

    lam: float = 0.1

    def __post_init__(self) -> None:
        if self.lam < 0:
            raise ValueError(f"ditto.lam must be >= 0, got {self.lam}")

    def second_pass(self, trained, payload, client, ctx):
        glob = _clone(payload["adapter"])
        personal = client.extra.get("personal", glob)
        return _clone(personal), LocalHooks(extra_loss=lambda named: prox_term(named, glob, self.lam))

    def client_finish(self, trained, payload, client, ctx, *, second=None):
        update = ClientUpdate(client=ctx.client, state=trained, num_examples=ctx.num_examples)
        extra = {**client.extra, "personal": second}
        return update, replace(client, adapter=second, extra=extra, rounds_trained=client.rounds_trained + 1)


@register_strategy("scaffold")
@dataclass
class Scaffold(Strategy):
    """SCAFFOLD (Karimireddy et al. 2020, arXiv:1910.06378), option II control variates.
    Local gradients are corrected g - c_i + c before the (AdamW) step; the update rules of the
    control variates assume SGD, so with AdamW this is the common practical variant."""

    lr_global: float = 1.0

    def server_init(self, adapter: State) -> ServerState:
        server = super().server_init(adapter)
        server.extra["c"] = {k: torch.zeros_like(v) for k, v in adapter.items()}
        return server

    def client_payload(self, server: ServerState) -> dict[str, State]:
        return {"adapter": server.adapter, "c": server.extra["c"]}

    def client_start(self, payload, client, ctx, *, probe=None):
        c = payload["c"]
        c_i = client.extra.get("c_i") or {k: torch.zeros_like(v) for k, v in c.items()}
        return _clone(payload["adapter"]), LocalHooks(
            grad_correction=lambda name, g: scaffold_corrected_grad(g, c[name], c_i[name])
        )

    def client_finish(self, trained, payload, client, ctx, *, second=None):
        c, x = payload["c"], payload["adapter"]
        c_i = client.extra.get("c_i") or {k: torch.zeros_like(v) for k, v in c.items()}
        c_new = scaffold_client_control(c_i, c, x, trained, steps=max(ctx.local_steps, 1), lr=ctx.lr)
        delta_c = {k: c_new[k] - c_i[k] for k in c_new}
        update = ClientUpdate(ctx.client, trained, ctx.num_examples, extra={"delta_c": delta_c})
        new = replace(client, adapter=trained, extra={**client.extra, "c_i": c_new},
                      rounds_trained=client.rounds_trained + 1)
        return update, new

    def aggregate(self, server, updates, ctx):
        x = server.adapter
        dy = [{k: u.state[k] - x[k] for k in x} for u in updates]
        dc = [u.extra["delta_c"] for u in updates]
        total = max(ctx.num_clients, len(updates))
        x_new, c_new = scaffold_server(x, server.extra["c"], dy, dc, _weights(updates),
                                       lr_global=self.lr_global, total_clients=total)
        return replace(server, adapter=x_new, extra={**server.extra, "c": c_new}, round=ctx.round), {}


@dataclass
class _FedOpt(Strategy):
    """FedOpt (Reddi et al. 2021, arXiv:2003.00295): the FedAvg average is a pseudo-gradient
    for a server optimizer (``fedpia.aggregation.fedopt_step``)."""

    server_lr: float = 1e-2
    beta1: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-3
    kind = "adam"

    def aggregate(self, server, updates, ctx):
        avg = fedavg([u.state for u in updates], _weights(updates))
        t = int(server.extra["t"]["t"]) if "t" in server.extra else 0
        st = FedOptState(m=server.extra.get("m", {}), v=server.extra.get("v", {}), t=t)
        new, st = fedopt_step(server.adapter, avg, st, kind=self.kind, lr=self.server_lr,
                              beta1=self.beta1, beta2=self.beta2, tau=self.tau)
        extra = {**server.extra, "m": st.m, "v": st.v, "t": {"t": torch.tensor(st.t)}}
        return replace(server, adapter=new, extra=extra, round=ctx.round), {}


@register_strategy("fedadam")
@dataclass
class FedAdam(_FedOpt):
    """FedOpt with a server Adam step on the FedAvg pseudo-gradient."""

    kind = "adam"


@register_strategy("fedyogi")
@dataclass
class FedYogi(_FedOpt):
    """FedOpt with a server Yogi step (additive second-moment update)."""

    kind = "yogi"


@register_strategy("fedadagrad")
@dataclass
class FedAdagrad(_FedOpt):
    """FedOpt with a server Adagrad step (accumulated second moment)."""

    kind = "adagrad"


@register_strategy("fedavgm")
@dataclass
class FedAvgM(_FedOpt):
    """FedAvg with server momentum (FedOpt, SGD with momentum beta1, server_lr 1.0)."""

    server_lr: float = 1.0
    kind = "avgm"


def _require_lora(state: State, name: str) -> None:
    if not lora_pairs(state):
        raise ValueError(f"strategy {name!r} needs LoRA adapters (set model.peft=lora)")


@register_strategy("fedit")
@dataclass
class FedIT(Strategy):
    """FedIT (Zhang et al. 2023, arXiv:2305.05644): LoRA + FedAvg of A and B separately."""

    def server_init(self, adapter: State) -> ServerState:
        _require_lora(adapter, self.name)
        return super().server_init(adapter)

    def aggregate(self, server, updates, ctx):
        avg = fedit_aggregate([u.state for u in updates], _weights(updates))
        return replace(server, adapter=avg, round=ctx.round), {}


@register_strategy("ffa-lora")
@dataclass
class FFALoRA(FedIT):
    """FFA-LoRA (Sun et al. 2024, arXiv:2403.12313): A frozen at its random init, only B is
    trained and averaged."""

    def client_start(self, payload, client, ctx, *, probe=None):
        return _clone(payload["adapter"]), LocalHooks(trainable=ffa_lora_trainable)

    def aggregate(self, server, updates, ctx):
        avg = ffa_lora_aggregate(server.adapter, [u.state for u in updates], _weights(updates))
        return replace(server, adapter=avg, round=ctx.round), {}


@register_strategy("fedsa-lora")
@dataclass
class FedSALoRA(FedIT):
    """FedSA-LoRA (Guo et al. 2024, arXiv:2410.01463): A matrices shared and averaged, B stays
    on each client (the client starts from its own B with the global A)."""

    def client_start(self, payload, client, ctx, *, probe=None):
        glob = payload["adapter"]
        own = client.adapter if client.adapter is not None else glob
        shared, _ = fedsa_lora_split(glob)
        return {**_clone(own), **_clone(shared)}, LocalHooks()

    def aggregate(self, server, updates, ctx):
        shared = fedsa_lora_aggregate([u.state for u in updates], _weights(updates))
        return replace(server, adapter={**server.adapter, **shared}, round=ctx.round), {}


@register_strategy("feddat")
@dataclass
class FedDAT(Strategy):
    """FedDAT (Chen et al. 2024, arXiv:2308.12305): dual-adapter teacher + mutual distillation.

    Each client keeps a local teacher adapter. Pass 1 trains the teacher from its own state with
    task loss + KD towards the received shared adapter; pass 2 trains the shared adapter from the
    global one with task loss + KD towards the updated teacher. Only the shared adapter is
    uploaded and averaged. KD targets are the other adapter's predictions computed once per pass
    (alternating form of the paper's simultaneous mutual distillation)."""

    distill_weight: float = 1.0
    temperature: float = 2.0

    def client_start(self, payload, client, ctx, *, probe=None):
        glob = payload["adapter"]
        teacher = client.extra.get("teacher", glob)
        return _clone(teacher), self._hooks(glob)

    def second_pass(self, trained, payload, client, ctx):
        return _clone(payload["adapter"]), self._hooks(trained)

    def _hooks(self, teacher: State) -> LocalHooks:
        return LocalHooks(distill_teacher=teacher, distill_weight=self.distill_weight,
                          distill_temperature=self.temperature)

    def client_finish(self, trained, payload, client, ctx, *, second=None):
        update = ClientUpdate(client=ctx.client, state=second, num_examples=ctx.num_examples)
        extra = {**client.extra, "teacher": trained}
        return update, replace(client, adapter=second, extra=extra, rounds_trained=client.rounds_trained + 1)


def _module_prefix(a_key: str) -> str:
    """``<prefix>.lora_A[.<name>].weight`` -> ``<prefix>`` (the wrapped layer's module path)."""
    return a_key.split(".lora_A", 1)[0]


@dataclass
class _BaseDeltaLoRA(FedIT):
    """LoRA strategies that fold part of the aggregate into the frozen base weights.

    ``server.extra["base_delta"]`` accumulates ``{layer prefix: d_out x d_in}``; it is sent with
    the adapter, added to the base weights while the client trains and evaluates, and kept by the
    client (``extra["base_delta"]``) for its personalised evaluation. ``lora_scaling`` must equal
    the model's ``lora_alpha / lora_rank`` (the runner sets it from the model config).
    """

    lora_scaling: float = 2.0

    def server_init(self, adapter: State) -> ServerState:
        server = super().server_init(adapter)
        server.extra["base_delta"] = {}
        return server

    def client_payload(self, server: ServerState) -> dict[str, State]:
        return {"adapter": server.adapter, "base_delta": server.extra.get("base_delta", {})}

    def client_start(self, payload, client, ctx, *, probe=None):
        return _clone(payload["adapter"]), LocalHooks(base_delta=payload.get("base_delta") or None)

    def client_finish(self, trained, payload, client, ctx, *, second=None):
        update, new = super().client_finish(trained, payload, client, ctx)
        return update, replace(new, extra={**new.extra, "base_delta": dict(payload.get("base_delta", {}))})

    def _accumulate(self, server: ServerState, deltas: dict[str, torch.Tensor]) -> State:
        old = server.extra.get("base_delta", {})
        return {p: old.get(p, torch.zeros_like(d)) + d for p, d in deltas.items()}


@register_strategy("fedex-lora")
@dataclass
class FedExLoRA(_BaseDeltaLoRA):
    """FedEx-LoRA (Singhal et al. 2024, arXiv:2410.09432): A and B averaged, and the residual
    s·(Σ p_k B_k A_k − B̄ Ā) added to the frozen base weight, so the global model's effective
    weight update equals the average of the clients' updates exactly."""

    def aggregate(self, server, updates, ctx):
        avg, residuals = fedex_lora_aggregate([u.state for u in updates], _weights(updates))
        pairs = lora_pairs(avg)
        deltas = {_module_prefix(pairs[g][0]): self.lora_scaling * r for g, r in residuals.items()}
        extra = {**server.extra, "base_delta": self._accumulate(server, deltas)}
        return replace(server, adapter=avg, extra=extra, round=ctx.round), {}


@register_strategy("flora")
@dataclass
class FLoRA(_BaseDeltaLoRA):
    """FLoRA (Wang et al. 2024, arXiv:2409.05976): the clients' LoRA modules are stacked
    (B_st A_st = Σ p_k B_k A_k, ranks may differ), the product s·B_st A_st is merged into the
    frozen base weights, and every client restarts from a fresh LoRA (the initial A, B = 0)."""

    def server_init(self, adapter: State) -> ServerState:
        server = super().server_init(adapter)
        server.extra["init"] = _clone(adapter)
        return server

    def aggregate(self, server, updates, ctx):
        states = [u.state for u in updates]
        a_st, b_st = flora_stack(states, _weights(updates))
        pairs = lora_pairs(states[0])
        deltas = {_module_prefix(pairs[g][0]): self.lora_scaling * (b_st[g] @ a_st[g]) for g in a_st}
        fresh = _clone(server.extra["init"])
        non_lora = [k for k in fresh if not (is_lora_a(k) or is_lora_b(k))]
        if non_lora:  # anything besides LoRA factors (none for peft=lora) is plainly averaged
            avg = fedavg([{k: s[k] for k in non_lora} for s in states], _weights(updates))
            fresh.update(avg)
        extra = {**server.extra, "base_delta": self._accumulate(server, deltas)}
        return replace(server, adapter=fresh, extra=extra, round=ctx.round), {}
