"""Align one named state (source) to another (reference), group by group ("layerwise")."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from fedpia.align.checks import check_acts, check_choice, check_states
from fedpia.align.groups import UnitGroup, unit_groups
from fedpia.align.transport import (
    SOLVERS,
    GroupPlan,
    activation_costs,
    cost_matrix,
    map_member,
    transport_plan,
    weight_features,
)

log = logging.getLogger(__name__)
State = dict[str, torch.Tensor]
COSTS = ("weight", "activation")


@dataclass(frozen=True)
class AlignResult:
    """``state``: the source expressed in the reference's units (keys in no group shared with the
    source); ``plans``: the applied :class:`~fedpia.align.transport.GroupPlan` per group name;
    ``proposed``: the optimal plans before the ``margin`` test (equal to ``plans`` except for the
    groups in ``rejected``, whose applied plan is the identity)."""

    state: State
    plans: dict[str, GroupPlan] = field(default_factory=dict)
    proposed: dict[str, GroupPlan] = field(default_factory=dict)
    rejected: tuple[str, ...] = ()


def group_cost(
    source: Mapping[str, torch.Tensor],
    reference: Mapping[str, torch.Tensor],
    src_group: UnitGroup,
    ref_group: UnitGroup,
    *,
    cost: str = "weight",
    squared: bool = False,
    include_outgoing: bool = False,
    source_acts: Mapping[str, torch.Tensor] | None = None,
    reference_acts: Mapping[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Cost matrix ``[n, m]`` (float64) between the units of one source and one reference group.

    ``weight``: support point = the unit's incoming weights and bias, flattened (plus its outgoing
    weights with ``include_outgoing``). ``activation``: the unit's activations over the caller's
    ``n_samples`` inputs (``acts[group name]: [n_samples, width]``).
    """
    if cost == "weight":
        x = weight_features(source, src_group, include_outgoing=include_outgoing)
        y = weight_features(reference, ref_group, include_outgoing=include_outgoing)
        return cost_matrix(x, y, squared=squared)
    assert source_acts is not None and reference_acts is not None
    return activation_costs(source_acts[src_group.name], reference_acts[ref_group.name],
                            squared=squared)


def apply_plans(
    source: Mapping[str, torch.Tensor], groups: list[UnitGroup], plans: Mapping[str, GroupPlan]
) -> State:
    """Map every group of ``source`` with its plan; keys in no group are shared, not copied."""
    out = dict(source)
    for g in groups:
        for m in g.members:
            out[m.key] = map_member(source[m.key], m, g.width, plans[g.name])
    return out


def align(
    source: Mapping[str, torch.Tensor],
    reference: Mapping[str, torch.Tensor],
    *,
    cost: str = "weight",
    solver: str = "exact",
    squared: bool = False,
    include_outgoing: bool = False,
    reg: float = 0.05,
    source_acts: Mapping[str, torch.Tensor] | None = None,
    reference_acts: Mapping[str, torch.Tensor] | None = None,
    margin: float = 0.0,
) -> AlignResult:
    """Express ``source`` in the unit order (and width) of ``reference``, each group on its own.

    For each unit group: cost ``C`` (``[n, m]``, see :func:`group_cost`), plan ``T`` with uniform
    marginals (``exact``: linear assignment for ``n == m`` else ``ot.emd``; ``sinkhorn``: entropic,
    ``reg`` relative to ``max C``), then the OTFusion map of :mod:`fedpia.align.transport`. Keys
    in no group are returned unchanged (shared with ``source``).

    ``margin`` in ``[0, 1)``: a group of equal widths keeps its units in place (identity plan)
    unless the plan lowers the transport cost by at least that share of the identity's cost,
    ``1 − <T, C> / <I/n, C> >= margin``. ``margin=0`` always applies the optimal plan.

    Raises ``ValueError`` (naming the key / group) for mismatched keys, shapes off the unit axis,
    dtypes, NaN/Inf, missing or mis-shaped activations, unknown ``cost``/``solver``, a margin
    outside ``[0, 1)``.
    """
    check_choice("cost", cost, COSTS)
    check_choice("solver", solver, SOLVERS)
    if not 0.0 <= margin < 1.0:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    groups = check_states([source, reference], labels=["source", "reference"], same_width=False)
    ref_groups = {g.name: g for g in unit_groups(reference)}
    s_acts = r_acts = None
    if cost == "activation":
        s_acts = check_acts(source_acts, groups, what="source_acts")
        r_acts = check_acts(reference_acts, list(ref_groups.values()), what="reference_acts")
        for g in groups:
            if s_acts[g.name].shape[0] != r_acts[g.name].shape[0]:
                raise ValueError(f"activations of group {g.name!r}: source has "
                                 f"{s_acts[g.name].shape[0]} samples, reference "
                                 f"{r_acts[g.name].shape[0]}; they must be the same inputs")
    proposed: dict[str, GroupPlan] = {}
    for g in groups:
        c = group_cost(source, reference, g, ref_groups[g.name], cost=cost, squared=squared,
                       include_outgoing=include_outgoing, source_acts=s_acts,
                       reference_acts=r_acts)
        proposed[g.name] = transport_plan(c, solver=solver, reg=reg)
    rejected = tuple(name for name, gp in proposed.items()
                     if margin > 0 and gp.identity_cost is not None and not gp.gain >= margin)
    plans = {name: gp.identity() if name in rejected else gp for name, gp in proposed.items()}
    log.debug("aligned %d groups (cost=%s, solver=%s, %d kept by margin %s)", len(groups), cost,
              solver, len(rejected), margin)
    return AlignResult(state=apply_plans(source, groups, plans), plans=plans, proposed=proposed,
                       rejected=rejected)
