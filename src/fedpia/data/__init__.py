"""fedpia.data: sample schema, loaders, synthetic generator, partitioners and task settings.

Contract (docs/architecture.md)::

    fd = get_setting("synthetic", data_root=None, seed=0)   # -> FederatedData
    fd.clients: tuple[ClientSplit(name, task, train, val, test, meta)]
    space = LabelSpace.from_samples(client.train)           # encode -> int (-1 unseen) / multi-hot
"""

from fedpia.data import settings_medvqa as _settings_medvqa  # noqa: F401 - registers SLAKE presets
from fedpia.data import settings_real as _settings_real  # noqa: F401 - registers real presets
from fedpia.data.covid import load_covid_cxr
from fedpia.data.errors import DataError, LoadReport
from fedpia.data.hf import HUB_IDS, load_hf
from fedpia.data.medmnist_data import load_medmnist, read_npz
from fedpia.data.partition import (
    assign_like,
    dirichlet_partition,
    iid_partition,
    natural_partition,
    partition_report,
    task_partition,
    train_val_split,
)
from fedpia.data.reports import CHEXPERT_LABELS, load_mimic_cxr, load_openi
from fedpia.data.schema import (
    METRIC_FOR_TASK,
    METRICS,
    TASKS,
    ClientSplit,
    FederatedData,
    LabelSpace,
    Sample,
    SampleSet,
    load_image,
    normalize_answer,
)
from fedpia.data.settings import SETTINGS, describe, get_setting, register_setting
from fedpia.data.slake import load_slake
from fedpia.data.synthetic import KINDS, LOCATIONS, MODALITIES, SyntheticSpec, generate
from fedpia.data.vqa_formats import (
    load_omnimedvqa,
    load_pathvqa,
    load_pathvqa_parquet,
    load_vqa_med,
)
from fedpia.data.vqarad import load_vqa_rad

__all__ = [
    "CHEXPERT_LABELS", "HUB_IDS", "KINDS", "LOCATIONS", "METRICS", "METRIC_FOR_TASK", "MODALITIES",
    "SETTINGS", "TASKS", "ClientSplit", "DataError", "FederatedData", "LabelSpace", "LoadReport",
    "Sample", "SampleSet", "SyntheticSpec", "assign_like", "describe", "dirichlet_partition",
    "generate", "get_setting", "iid_partition", "load_covid_cxr", "load_hf", "load_image",
    "load_medmnist", "load_mimic_cxr", "load_omnimedvqa", "load_openi", "load_pathvqa",
    "load_pathvqa_parquet", "load_slake", "load_vqa_med", "load_vqa_rad", "natural_partition",
    "normalize_answer", "partition_report", "read_npz", "register_setting", "task_partition",
    "train_val_split",
]
