"""Pure optimal-transport alignment core on named state dicts ``dict[str, torch.Tensor]``.

Unit groups are derived from key names (:func:`unit_groups`); :func:`align` expresses one state
in another's unit order (OTFusion map for unequal widths); :func:`fedavg`, :func:`fedpia_server`
and :func:`fedpia_client` are the aggregation / merge steps of FedPIA (Saha et al., AAAI 2025,
https://arxiv.org/abs/2412.14424). No ``torch.nn``; see docs/align.md for the mathematics.
"""

from fedpia.align.fuse import (
    ClientStep,
    fedavg,
    fedpia_client,
    fedpia_client_step,
    mix_states,
    weighted_sum,
)
from fedpia.align.groups import Member, UnitGroup, permute_units, unit_groups
from fedpia.align.pairwise import COSTS, AlignResult, align, apply_plans, group_cost
from fedpia.align.server import (
    ANCHORS,
    DISTANCES,
    WEIGHTINGS,
    GroupStats,
    ServerResult,
    fedpia_server,
)
from fedpia.align.transport import (
    SOLVERS,
    GroupPlan,
    activation_costs,
    assignment,
    assignments,
    cost_matrix,
    transport_plan,
    unit_maps,
    weight_features,
)

__all__ = [
    "ANCHORS",
    "COSTS",
    "DISTANCES",
    "SOLVERS",
    "WEIGHTINGS",
    "AlignResult",
    "ClientStep",
    "GroupPlan",
    "GroupStats",
    "Member",
    "ServerResult",
    "UnitGroup",
    "activation_costs",
    "align",
    "apply_plans",
    "assignment",
    "assignments",
    "cost_matrix",
    "fedavg",
    "fedpia_client",
    "fedpia_client_step",
    "fedpia_server",
    "group_cost",
    "mix_states",
    "permute_units",
    "transport_plan",
    "unit_groups",
    "unit_maps",
    "weight_features",
    "weighted_sum",
]
