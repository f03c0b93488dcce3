"""Server-side pure aggregation functions for the baseline federated strategies.

Everything works on named state dicts ``dict[str, torch.Tensor]`` with explicit state in and
out (no ``torch.nn`` modules, no Flower, no training loops). See docs/baselines.md.
"""

from ._common import (
    AggregationError,
    check_finite,
    check_same_structure,
    normalize_weights,
    weighted_average,
)
from .feddat import DISTILL_KINDS, mutual_distillation_loss
from .fedopt import FEDOPT_KINDS, FedOptState, fedopt_step
from .heads import average_heads_by_task
from .influence import (
    BOUND_MODES,
    Bounded,
    bound_updates,
    coordinate_median,
    lower_median,
    trimmed_mean,
    update_norms,
)
from .lora import (
    fedex_lora_aggregate,
    fedit_aggregate,
    fedsa_lora_aggregate,
    fedsa_lora_split,
    ffa_lora_aggregate,
    ffa_lora_trainable,
    flora_stack,
    is_lora_a,
    is_lora_b,
    lora_pairs,
    merge_lora_into_base,
)
from .prox import prox_term
from .robust import (
    check_count,
    check_tensor,
    filter_updates,
    screen_upload,
    validate_extra,
    validate_update,
)
from .scaffold import scaffold_client_control, scaffold_corrected_grad, scaffold_server

__all__ = [
    "BOUND_MODES",
    "DISTILL_KINDS",
    "FEDOPT_KINDS",
    "AggregationError",
    "Bounded",
    "FedOptState",
    "average_heads_by_task",
    "bound_updates",
    "check_count",
    "check_finite",
    "check_same_structure",
    "check_tensor",
    "coordinate_median",
    "fedex_lora_aggregate",
    "fedit_aggregate",
    "fedopt_step",
    "fedsa_lora_aggregate",
    "fedsa_lora_split",
    "ffa_lora_aggregate",
    "ffa_lora_trainable",
    "filter_updates",
    "flora_stack",
    "is_lora_a",
    "is_lora_b",
    "lower_median",
    "lora_pairs",
    "merge_lora_into_base",
    "mutual_distillation_loss",
    "normalize_weights",
    "prox_term",
    "scaffold_client_control",
    "scaffold_corrected_grad",
    "scaffold_server",
    "screen_upload",
    "trimmed_mean",
    "update_norms",
    "validate_extra",
    "validate_update",
    "weighted_average",
]
