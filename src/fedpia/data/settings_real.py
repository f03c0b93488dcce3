"""Real-data task presets (T1-T5) registered into ``fedpia.data.settings.SETTINGS``.

``data_root`` is laid out like ``shared/data``: ``vqa_rad/``, ``medmnist/``,
``covid_chestxray_subset/`` (and ``mimic_cxr/`` for T4). The SLAKE + VQA-RAD settings
(``t1-medvqa``, ``t2-modality8``) are in :mod:`fedpia.data.settings_medvqa`. A missing folder raises
:class:`~fedpia.data.errors.DataError` naming it.
"""

from __future__ import annotations

from collections.abc import Sequence

from fedpia.data.covid import load_covid_cxr
from fedpia.data.medmnist_data import load_medmnist
from fedpia.data.partition import assign_like, dirichlet_partition, natural_partition
from fedpia.data.reports import load_mimic_cxr
from fedpia.data.schema import ClientSplit, FederatedData
from fedpia.data.settings import _cap, _rng, _root, _split_client, _take, register_setting
from fedpia.data.vqarad import load_vqa_rad

ORGANS = ("HEAD", "CHEST", "ABD")


def _vqarad_by_organ(data_root, seed: int, *, organs: Sequence[str], k0: int, val_fraction: float,
                     max_train, max_test, on_error: str, setting: str,
                     max_val: int | None = None) -> list[ClientSplit]:
    """One VQA-RAD client per entry of ``organs``: an organ (``"HEAD"``) or a ``+``-joined group
    (``"CHEST+ABD"``, client ``vqarad-chest-abd``). Official test split per client; val carved
    from train by image (``val_fraction``)."""
    ds = load_vqa_rad(_root(data_root, "vqa_rad", setting), on_error=on_error)
    clients = []
    for j, group in enumerate(organs):
        members = set(group.split("+"))
        if not members <= set(ORGANS):
            raise ValueError(f"{setting}: VQA-RAD organ group {group!r} must be '+'-joined {ORGANS}")
        train = [s for s in ds.split("train") if s.meta["organ"] in members]
        test = [s for s in ds.split("test") if s.meta["organ"] in members]
        clients.append(_split_client(f"vqarad-{group.lower().replace('+', '-')}", "vqa", train, test=test,
                                     seed=seed, k=k0 + j, val_fraction=val_fraction, group_key="image_name",
                                     max_train=max_train, max_val=max_val, max_test=max_test,
                                     meta={"dataset": "vqa_rad", "organ": group}))
    return clients


@register_setting("t1-vqarad")
def t1_vqarad(*, data_root=None, seed: int = 0, split_by: str = "organ", n_clients: int = 5,
              alpha: float = 0.5, min_size: int = 10, val_fraction: float = 0.1,
              max_train: int | None = None, max_test: int | None = None,
              on_error: str = "raise") -> FederatedData:
    """VQA-RAD official split; clients by organ (HEAD/CHEST/ABD) or Dirichlet(α) over answers
    (test samples follow each client's answer mix, :func:`assign_like`)."""
    if split_by == "organ":
        clients = _vqarad_by_organ(data_root, seed, organs=ORGANS, k0=0, val_fraction=val_fraction,
                                   max_train=max_train, max_test=max_test, on_error=on_error,
                                   setting="t1-vqarad")
    elif split_by == "dirichlet":
        ds = load_vqa_rad(_root(data_root, "vqa_rad", "t1-vqarad"), on_error=on_error)
        train, test = ds.split("train"), ds.split("test")
        y = [s.target for s in train]
        parts = dirichlet_partition(y, n_clients, alpha=alpha, rng=_rng(seed, 100), min_size=min_size)
        tparts = assign_like(y, parts, [s.target for s in test], rng=_rng(seed, 101))
        clients = [_split_client(f"vqarad-dir{k}", "vqa", _take(train, p), test=_take(test, tp),
                                 seed=seed, k=k, val_fraction=val_fraction, group_key="image_name",
                                 max_train=max_train, max_test=max_test, meta={"alpha": alpha})
                   for k, (p, tp) in enumerate(zip(parts, tparts, strict=True))]
    else:
        raise ValueError(f"t1-vqarad: split_by must be 'organ' or 'dirichlet', got {split_by!r}")
    return FederatedData(setting="t1-vqarad", clients=tuple(clients), metric="vqa_accuracy",
                         description=f"VQA-RAD official split, clients by {split_by}")


def _medmnist_client(data_root, flag: str, *, as_task: str, seed: int, k: int, setting: str,
                     max_train, max_val, max_test) -> ClientSplit:
    ds = load_medmnist(_root(data_root, "medmnist", setting), flag, as_task=as_task)
    rng = _rng(seed, k, 2)
    return ClientSplit(name=f"{flag}-{as_task}", task=as_task,
                       train=_cap(ds.split("train"), max_train, rng),
                       val=_cap(ds.split("val"), max_val, rng), test=_cap(ds.split("test"), max_test, rng),
                       meta={"dataset": flag, "modality": ds[0].meta["modality"]})


@register_setting("t2-modality")
def t2_modality(*, data_root=None, seed: int = 0, flags: Sequence[str] = ("breastmnist", "pneumoniamnist", "retinamnist"),
                include_vqarad: bool = True, max_train: int | None = 500, max_val: int | None = 100,
                max_test: int | None = 200) -> FederatedData:
    """MedMNIST as VQA (breast ultrasound, pneumonia x-ray, retina fundus) + VQA-RAD by organ
    (VQA-RAD has no modality column: organ is the proxy). Per-client caps keep runs small."""
    clients = [_medmnist_client(data_root, f, as_task="vqa", seed=seed, k=k, setting="t2-modality",
                                max_train=max_train, max_val=max_val, max_test=max_test)
               for k, f in enumerate(flags)]
    if include_vqarad:
        clients += _vqarad_by_organ(data_root, seed, organs=ORGANS, k0=len(flags), val_fraction=0.1,
                                    max_train=max_train, max_test=max_test, on_error="raise",
                                    setting="t2-modality")
    return FederatedData(setting="t2-modality", clients=tuple(clients), metric="vqa_accuracy",
                         description="modality-heterogeneous VQA (MedMNIST templated + VQA-RAD)")


@register_setting("t3-cxr-notes")
def t3_cxr_notes(*, data_root=None, seed: int = 0, sites: Sequence[str] = ("Spain", "Italy", "USA"),
                 test_fraction: float = 0.25, val_fraction: float = 0.1) -> FederatedData:
    """COVID-19 CXR + clinical notes, multi-label; clients = countries (``sites``) + "rest".
    Each client is split by patient into train/val/test (no patient in two splits)."""
    ds = load_covid_cxr(_root(data_root, "covid_chestxray_subset", "t3-cxr-notes"))
    parts = natural_partition([s.meta["site"] for s in ds], groups={s: [s] for s in sites}, rest="rest")
    clients = [_split_client(f"site-{name.lower().replace(' ', '_')}", "multilabel", _take(ds, idx),
                             seed=seed, k=k, val_fraction=val_fraction, test_fraction=test_fraction,
                             group_key="patient", meta={"site": name})
               for k, (name, idx) in enumerate(parts.items())]
    return FederatedData(setting="t3-cxr-notes", clients=tuple(clients), metric="f1",
                         description="COVID-19 CXR + clinical notes, multi-label, sites = countries")


@register_setting("t4-mimic")
def t4_mimic(*, data_root=None, seed: int = 0, n_clients: int = 10, alpha: float = 0.5,
             uncertain: str = "zeros", min_size: int = 1, max_train: int | None = None,
             max_test: int | None = None) -> FederatedData:
    """MIMIC-CXR (``data_root/mimic_cxr``), CheXpert-14 multi-label; Dirichlet(α) over each image's
    first positive label; official test split follows each client's label mix."""
    ds = load_mimic_cxr(_root(data_root, "mimic_cxr", "t4-mimic"), uncertain=uncertain)
    train = list(ds.split("train")) + list(ds.split("val"))
    test = ds.split("test")
    key = [s.target[0] if s.target else "none" for s in train]
    parts = dirichlet_partition(key, n_clients, alpha=alpha, rng=_rng(seed, 100), min_size=min_size)
    tparts = assign_like(key, parts, [s.target[0] if s.target else "none" for s in test], rng=_rng(seed, 101))
    clients = [_split_client(f"mimic-{k}", "multilabel", _take(train, p), test=_take(test, tp), seed=seed,
                             k=k, val_fraction=0.1, group_key="patient", max_train=max_train,
                             max_test=max_test, meta={"alpha": alpha})
               for k, (p, tp) in enumerate(zip(parts, tparts, strict=True))]
    return FederatedData(setting="t4-mimic", clients=tuple(clients), metric="f1",
                         description="MIMIC-CXR CheXpert labels, Dirichlet label skew")


@register_setting("t5-mixed")
def t5_mixed(*, data_root=None, seed: int = 0, vqarad_organs: Sequence[str] = ("HEAD", "CHEST"),
             flags: Sequence[str] = ("pneumoniamnist", "breastmnist"), max_train: int | None = 500,
             max_val: int | None = 100, max_test: int | None = 200) -> FederatedData:
    """Task-heterogeneous: VQA-RAD VQA clients + COVID CXR multi-label + MedMNIST multiclass."""
    clients = _vqarad_by_organ(data_root, seed, organs=vqarad_organs, k0=0, val_fraction=0.1,
                               max_train=max_train, max_test=max_test, on_error="raise", setting="t5-mixed")
    cxr = load_covid_cxr(_root(data_root, "covid_chestxray_subset", "t5-mixed"))
    clients.append(_split_client("covid-cxr", "multilabel", list(cxr), seed=seed, k=10, val_fraction=0.1,
                                 test_fraction=0.25, group_key="patient"))
    clients += [_medmnist_client(data_root, f, as_task="multiclass", seed=seed, k=20 + j, setting="t5-mixed",
                                 max_train=max_train, max_val=max_val, max_test=max_test)
                for j, f in enumerate(flags)]
    return FederatedData(setting="t5-mixed", clients=tuple(clients), metric="f1",
                         description="VQA + multi-label + multiclass clients (task-heterogeneous)")
