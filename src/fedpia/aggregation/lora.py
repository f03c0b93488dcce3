r"""LoRA-specific federated aggregators on peft-named state dicts.

A LoRA module adds :math:`\Delta W = s\,B A` to a frozen weight :math:`W_0` (d_out x d_in), with
``<prefix>.lora_A[.<adapter>].weight`` = A (r x d_in) and ``<prefix>.lora_B[.<adapter>].weight``
= B (d_out x r), scaling :math:`s = \alpha / r`. Naively averaging A and B separately is *not*
the average of the products: :math:`\bar B \bar A \ne \sum_k p_k B_k A_k`. The methods here:

* FedIT (Zhang et al. 2023, https://arxiv.org/abs/2305.05644): FedAvg of A and B
  (:func:`fedit_aggregate`).
* FFA-LoRA (Sun et al. 2024, https://arxiv.org/abs/2403.12313): A frozen at its random init,
  only B trained and averaged, so :math:`\bar B A = \sum_k p_k B_k A` exactly
  (:func:`ffa_lora_trainable`, :func:`ffa_lora_aggregate`).
* FedSA-LoRA (Guo et al. 2024, https://arxiv.org/abs/2410.01463): A shared and averaged, B stays
  on the client (:func:`fedsa_lora_split`, :func:`fedsa_lora_aggregate`).
* FLoRA (Wang et al. 2024, https://arxiv.org/abs/2409.05976): stack the client factors
  (ranks may differ) so that :math:`B_{st} A_{st} = \sum_k p_k B_k A_k` exactly
  (:func:`flora_stack`); clients merge it into the frozen base weight
  (:func:`merge_lora_into_base`) and re-initialise LoRA for the next round.
* FedEx-LoRA (Singhal et al. 2024, https://arxiv.org/abs/2410.09432): FedAvg of A and B plus a
  residual :math:`\sum_k p_k B_k A_k - \bar B \bar A` added to the frozen base weight
  (:func:`fedex_lora_aggregate`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence

import torch

from ._common import State, check_finite, check_same_structure, normalize_weights, weighted_average

logger = logging.getLogger(__name__)

_LORA_KEY = re.compile(r"^(?P<prefix>.+)\.lora_(?P<ab>[AB])(?:\.(?P<name>[^.]+))?\.weight$")


def _parse(key: str) -> tuple[str, str] | None:
    """``(group name, "A"|"B")`` for a LoRA key, else None. Group = prefix[.adapter]."""
    match = _LORA_KEY.match(key)
    if match is None:
        return None
    group = match["prefix"] + (f".{match['name']}" if match["name"] else "")
    return group, match["ab"]


def is_lora_a(key: str) -> bool:
    """True for ``...lora_A[.<adapter>].weight`` keys."""
    parsed = _parse(key)
    return parsed is not None and parsed[1] == "A"


def is_lora_b(key: str) -> bool:
    """True for ``...lora_B[.<adapter>].weight`` keys."""
    parsed = _parse(key)
    return parsed is not None and parsed[1] == "B"


def lora_pairs(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[str, str]]:
    """Map each LoRA group name (``<prefix>[.<adapter>]``) to its ``(A key, B key)``.

    Non-LoRA keys are ignored. Raises ``ValueError`` naming the key when a pair is incomplete,
    a factor is not 2-D, or the ranks of A (rows) and B (columns) differ.
    """
    found: dict[str, dict[str, str]] = {}
    for key in state:
        parsed = _parse(key)
        if parsed is not None:
            group, ab = parsed
            if ab in found.setdefault(group, {}):
                raise ValueError(f"duplicate lora_{ab} for group {group!r}: {key!r}")
            found[group][ab] = key
    pairs: dict[str, tuple[str, str]] = {}
    for group, members in found.items():
        if "A" not in members or "B" not in members:
            present = next(iter(members.values()))
            other = "B" if "A" in members else "A"
            raise ValueError(f"incomplete LoRA pair: {present!r} has no matching lora_{other}")
        a_key, b_key = members["A"], members["B"]
        a, b = state[a_key], state[b_key]
        if a.ndim != 2 or b.ndim != 2:
            raise ValueError(
                f"LoRA factors must be 2-D: {a_key!r} {tuple(a.shape)}, {b_key!r} {tuple(b.shape)}"
            )
        if a.shape[0] != b.shape[1]:
            raise ValueError(
                f"rank mismatch: {a_key!r} has r={a.shape[0]} rows but {b_key!r} "
                f"has {b.shape[1]} columns"
            )
        pairs[group] = (a_key, b_key)
    return pairs


def fedit_aggregate(states: Sequence[Mapping[str, torch.Tensor]], weights) -> State:
    """FedIT: plain weighted FedAvg of every key, A and B averaged separately."""
    return weighted_average(states, weights)


def ffa_lora_trainable(key: str) -> bool:
    """FFA-LoRA trainability: False for ``lora_A`` keys (frozen at init), True otherwise."""
    return not is_lora_a(key)


def ffa_lora_aggregate(
    global_: Mapping[str, torch.Tensor],
    states: Sequence[Mapping[str, torch.Tensor]],
    weights,
) -> State:
    """FFA-LoRA server: every non-A key is FedAvg'd; every ``lora_A`` key is copied from
    ``global_`` (the shared random init), whatever the clients upload (a warning is logged when
    a client's A differs, which means the client trained it)."""
    states = list(states)
    check_same_structure(
        [global_, *states], names=["global_"] + [f"state[{k}]" for k in range(len(states))]
    )
    avg = weighted_average(states, weights)
    for key in avg:
        if is_lora_a(key):
            for k, s in enumerate(states):
                if not torch.equal(s[key], global_[key]):
                    logger.warning("FFA-LoRA: client %d changed frozen %s; ignored", k, key)
            avg[key] = global_[key].clone()
    return avg


def fedsa_lora_split(
    state: Mapping[str, torch.Tensor], *, share_non_lora: bool = False
) -> tuple[State, State]:
    """FedSA-LoRA split ``(shared, local)``: ``lora_A`` keys are shared; ``lora_B`` keys stay
    local, as do non-LoRA keys (heads, ...) unless ``share_non_lora=True``."""
    lora_pairs(state)  # validate pairing
    shared, local = {}, {}
    for key, t in state.items():
        if is_lora_a(key) or (share_non_lora and not is_lora_b(key)):
            shared[key] = t
        else:
            local[key] = t
    return shared, local


def fedsa_lora_aggregate(
    states: Sequence[Mapping[str, torch.Tensor]], weights, *, share_non_lora: bool = False
) -> State:
    """FedSA-LoRA server: FedAvg of the shared part (the A matrices) of each client state.
    A client then uses ``{**its_local, **result}``."""
    shared = [fedsa_lora_split(s, share_non_lora=share_non_lora)[0] for s in states]
    return weighted_average(shared, weights)


def flora_stack(
    states: Sequence[Mapping[str, torch.Tensor]],
    weights,
    *,
    scalings: Sequence[float] | None = None,
) -> tuple[State, State]:
    r"""FLoRA stacking, per LoRA group: ``A_st = cat_k A_k`` (:math:`\sum_k r_k` x d_in) and
    ``B_st = cat_k p_k s_k B_k`` (d_out x :math:`\sum_k r_k`), so that exactly
    :math:`B_{st} A_{st} = \sum_k p_k s_k B_k A_k` (``scalings`` :math:`s_k`, default 1, let
    clients with different ranks/alphas be mixed). Ranks may differ between clients; d_in/d_out
    may not. Non-LoRA keys are ignored (average them with :func:`weighted_average`).

    Returns ``(A_stacked, B_stacked)``, two dicts keyed by group name.
    """
    states = list(states)
    p = normalize_weights(weights, len(states))
    s = (
        torch.ones(len(states), dtype=torch.float64)
        if scalings is None
        else torch.as_tensor(scalings, dtype=torch.float64)
    )
    if s.numel() != len(states):
        raise ValueError(f"scalings has {s.numel()} entries but there are {len(states)} states")
    all_pairs = [lora_pairs(st) for st in states]
    groups = all_pairs[0]
    for k, pairs in enumerate(all_pairs[1:], start=1):
        if set(pairs) != set(groups):
            diff = sorted(set(pairs) ^ set(groups))
            raise ValueError(f"state[{k}] LoRA groups differ from state[0]: {diff[0]!r}")
    a_out, b_out = {}, {}
    for group in groups:
        a_list, b_list = [], []
        for k, (st, pairs) in enumerate(zip(states, all_pairs, strict=True)):
            a_key, b_key = pairs[group]
            a, b = st[a_key], st[b_key]
            ref_a, ref_b = states[0][groups[group][0]], states[0][groups[group][1]]
            if a.shape[1] != ref_a.shape[1] or b.shape[0] != ref_b.shape[0]:
                raise ValueError(f"state[{k}] {a_key!r}/{b_key!r}: d_in/d_out differ from state[0]")
            check_finite({a_key: a, b_key: b}, name=f"state[{k}]")
            a_list.append(a)
            b_list.append((b.double() * (p[k] * s[k])).to(b.dtype))
        a_out[group] = torch.cat(a_list, dim=0)
        b_out[group] = torch.cat(b_list, dim=1)
    return a_out, b_out


def merge_lora_into_base(
    base_weight: torch.Tensor, B: torch.Tensor, A: torch.Tensor, scaling: float = 1.0
) -> torch.Tensor:
    r"""Return :math:`W_0 + s\,B A` (new tensor, dtype of ``base_weight``); shapes
    ``base_weight`` d_out x d_in, ``B`` d_out x r, ``A`` r x d_in."""
    if base_weight.ndim != 2 or B.ndim != 2 or A.ndim != 2:
        raise ValueError("merge_lora_into_base expects 2-D base_weight, B and A")
    if B.shape[1] != A.shape[0] or (B.shape[0], A.shape[1]) != tuple(base_weight.shape):
        raise ValueError(
            f"shape mismatch: base {tuple(base_weight.shape)}, B {tuple(B.shape)}, "
            f"A {tuple(A.shape)}"
        )
    delta = (B.double() @ A.double()) * scaling
    return (base_weight.double() + delta).to(base_weight.dtype)


def fedex_lora_aggregate(
    states: Sequence[Mapping[str, torch.Tensor]], weights
) -> tuple[State, State]:
    r"""FedEx-LoRA: ``(avg_state, residuals)`` with ``avg_state`` the FedAvg of every key and,
    per LoRA group, the d_out x d_in residual
    :math:`R = \sum_k p_k B_k A_k - \bar B \bar A` so that :math:`\bar B\bar A + R` equals the
    average of the client products exactly. Clients add :math:`s R` to the frozen base weight
    (e.g. with ``merge_lora_into_base``-style arithmetic) and continue from :math:`\bar A,\bar B`.
    """
    states = list(states)
    avg = weighted_average(states, weights)
    p = normalize_weights(weights, len(states))
    residuals: State = {}
    for group, (a_key, b_key) in lora_pairs(avg).items():
        mean_prod = sum(
            pk * (st[b_key].double() @ st[a_key].double()) for pk, st in zip(p, states, strict=True)
        )
        prod_of_means = avg[b_key].double() @ avg[a_key].double()
        residuals[group] = (mean_prod - prod_of_means).to(avg[b_key].dtype)
    return avg, residuals
