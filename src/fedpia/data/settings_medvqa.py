"""SLAKE + VQA-RAD settings: ``t1-medvqa`` (the paper's T1 shape) and ``t2-modality8`` (T2, 8 clients).

The paper's T1 federates five clients that each hold a different MedVQA dataset (SLAKE, VQA-RAD,
VQA-Med 2019 / 2020 / 2021). We hold two of them (``data_root/slake``, ``data_root/vqa_rad``), so
``t1-medvqa`` keeps "clients differ by dataset" and makes up the count inside each dataset:

* SLAKE by image modality: ``slake-ct``, ``slake-mri``, ``slake-xray`` (one modality per image;
  CT is mostly abdomen/chest, MRI mostly brain, X-ray chest). Official train / validate / test
  split, English only, filtered by modality: the three clients never share an image.
* VQA-RAD in two by organ group: ``vqarad-head`` (neuro: HEAD) and ``vqarad-chest-abd`` (body:
  CHEST + ABD). VQA-RAD has no modality column (and only 135 of its 314 images have a
  MODALITY-type question), so organ is the only usable split. Official test split per client; val =
  10% of the client's train images (VQA-RAD has no official val).

Like the paper's three VQA-Med years (one source, close distributions) next to SLAKE and VQA-RAD,
three of our clients share a source and two share another. What differs: two datasets instead of
five; within-dataset clients differ by modality/organ, not by release year; every client keeps its
own answer space (built from its training answers).

``t2-modality8``: MedMNIST breast (ultrasound), pneumonia (x-ray), retina (fundus) as templated VQA
+ SLAKE CT / MRI / X-ray + the two VQA-RAD organ-group clients = 8 clients, as in the paper's T2.
The paper's eight clients are eight modalities from 41 datasets; ours are five modalities (x-ray
twice: MedMNIST pneumonia and SLAKE; the VQA-RAD clients mix CT, MRI and x-ray).
"""

from __future__ import annotations

from collections.abc import Sequence

from fedpia.data.schema import ClientSplit, FederatedData
from fedpia.data.settings import _cap, _rng, _root, register_setting
from fedpia.data.settings_real import _medmnist_client, _vqarad_by_organ
from fedpia.data.slake import MODALITIES, load_slake

SLAKE_MODALITIES = ("ct", "mri", "x-ray")
VQARAD_GROUPS = ("HEAD", "CHEST+ABD")
T1_DIFFERS = ("paper T1: 5 datasets (SLAKE, VQA-RAD, VQA-Med 2019/20/21); here 2 datasets, "
              "SLAKE split by modality, VQA-RAD by organ group")


def slake_by_modality(data_root, seed: int, *, modalities: Sequence[str], k0: int, setting: str,
                      max_train: int | None, max_val: int | None, max_test: int | None) -> list[ClientSplit]:
    """One client per SLAKE modality (``"ct"``, ``"mri"``, ``"x-ray"``) holding that modality's
    English QA of the official train / validate / test splits; caps subsample QA records at random
    (Generator ``[seed, k0 + j, 2]``)."""
    bad = [m for m in modalities if m not in MODALITIES]
    if bad:
        raise ValueError(f"{setting}: SLAKE modalities {bad} not in {sorted(MODALITIES)}")
    ds = load_slake(_root(data_root, "slake", setting))
    clients = []
    for j, mod in enumerate(modalities):
        rng = _rng(seed, k0 + j, 2)
        part = {split: [s for s in ds.split(split) if s.meta["modality"] == mod]
                for split in ("train", "val", "test")}
        clients.append(ClientSplit(
            name=f"slake-{mod.replace('-', '')}", task="vqa", train=_cap(part["train"], max_train, rng),
            val=_cap(part["val"], max_val, rng), test=_cap(part["test"], max_test, rng),
            meta={"dataset": "slake", "modality": mod}))
    return clients


@register_setting("t1-medvqa")
def t1_medvqa(*, data_root=None, seed: int = 0, slake_modalities: Sequence[str] = SLAKE_MODALITIES,
              vqarad_groups: Sequence[str] = VQARAD_GROUPS, val_fraction: float = 0.1,
              max_train: int | None = None, max_val: int | None = None,
              max_test: int | None = None) -> FederatedData:
    """T1 MedVQA, 5 clients from two datasets: SLAKE by modality (official splits, English) +
    VQA-RAD by organ group (``"CHEST+ABD"`` joins organs; official test). Uncapped by default
    (train 2366 / 1129 / 1423 / 533 / 1080 QA at seed 0)."""
    clients = slake_by_modality(data_root, seed, modalities=slake_modalities, k0=0, setting="t1-medvqa",
                                max_train=max_train, max_val=max_val, max_test=max_test)
    clients += _vqarad_by_organ(data_root, seed, organs=vqarad_groups, k0=len(clients),
                                val_fraction=val_fraction, max_train=max_train, max_val=max_val,
                                max_test=max_test, on_error="raise", setting="t1-medvqa")
    return FederatedData(setting="t1-medvqa", clients=tuple(clients), metric="vqa_accuracy",
                         description=f"T1 MedVQA: SLAKE by modality + VQA-RAD by organ group ({T1_DIFFERS})")


@register_setting("t2-modality8")
def t2_modality8(*, data_root=None, seed: int = 0,
                 flags: Sequence[str] = ("breastmnist", "pneumoniamnist", "retinamnist"),
                 slake_modalities: Sequence[str] = SLAKE_MODALITIES, vqarad_groups: Sequence[str] = VQARAD_GROUPS,
                 max_train: int | None = 500, max_val: int | None = 100,
                 max_test: int | None = 200) -> FederatedData:
    """T2 modality VQA, 8 clients: MedMNIST breast / pneumonia / retina (templated VQA) + SLAKE
    CT / MRI / X-ray + VQA-RAD by organ group. Caps as ``t2-modality`` (500 / 100 / 200 per client)."""
    clients = [_medmnist_client(data_root, f, as_task="vqa", seed=seed, k=k, setting="t2-modality8",
                                max_train=max_train, max_val=max_val, max_test=max_test)
               for k, f in enumerate(flags)]
    clients += slake_by_modality(data_root, seed, modalities=slake_modalities, k0=len(clients),
                                 setting="t2-modality8", max_train=max_train, max_val=max_val,
                                 max_test=max_test)
    clients += _vqarad_by_organ(data_root, seed, organs=vqarad_groups, k0=len(clients), val_fraction=0.1,
                                max_train=max_train, max_val=max_val, max_test=max_test, on_error="raise",
                                setting="t2-modality8")
    return FederatedData(setting="t2-modality8", clients=tuple(clients), metric="vqa_accuracy",
                         description="T2 modality VQA, 8 clients: MedMNIST ultrasound/x-ray/fundus + SLAKE "
                                     "CT/MRI/x-ray + VQA-RAD by organ group (paper: 8 modalities from 41 "
                                     "datasets; here 5 modalities, x-ray twice, VQA-RAD mixed)")
