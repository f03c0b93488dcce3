"""The *-paper presets: the paper's schedule and client counts where our data allows."""

from __future__ import annotations

import pytest

from fedpia.data import get_setting
from fedpia.experiments import get_preset
from fedpia.experiments.presets import PRESETS

PAPER = ["t1-vqarad-paper", "t2-modality-paper", "t3-cxr-notes-paper", "t4-mimic-paper",
         "t5-mixed-paper"]


@pytest.mark.parametrize("name", PAPER)
def test_paper_schedule(name):
    cfg = get_preset(name)
    cfg.validate()
    assert name in PRESETS and PRESETS[name].needs_data
    assert cfg.sim.rounds == 30
    t = cfg.train
    assert (t.lr, t.batch_size, t.weight_decay, t.warmup_frac) == (1e-4, 16, 0.01, 0.1)
    base = get_preset(name.removesuffix("-paper"))
    assert cfg.model == base.model and cfg.strategy_options == base.strategy_options
    if name == "t4-mimic-paper":  # no data here: the knobs are what we can check
        assert cfg.setting_options == {"n_clients": 10, "alpha": 0.5}


@pytest.mark.parametrize(("name", "clients"), [("t1-vqarad-paper", 5), ("t2-modality-paper", 6),
                                               ("t3-cxr-notes-paper", 4), ("t5-mixed-paper", 5)])
def test_paper_client_counts_on_shared_data(shared_data, name, clients):
    cfg = get_preset(name)
    fd = get_setting(cfg.setting, data_root=shared_data, seed=0, **cfg.setting_options)
    assert len(fd.clients) == clients
    if name == "t1-vqarad-paper":  # Dirichlet(0.5) over answers, the official test split kept
        assert all(c.meta["alpha"] == 0.5 for c in fd.clients)
        assert sum(len(c.test) for c in fd.clients) == 451
