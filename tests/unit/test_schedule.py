"""train.lr_schedule: the cosine schedule follows epochs or the wall-clock budget."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

from pipeline.config import ModelCfg, TrainCfg
from pipeline.train import fit

TINY = ModelCfg(arch="unet", depth=2, filters=4, kernel_size=5)


def _pairs(n: int = 128, t: int = 64):
    rng = np.random.default_rng(0)
    clean = rng.normal(size=(n, t)).astype(np.float32)
    return clean, (clean + 0.1 * rng.normal(size=clean.shape)).astype(np.float32)


def test_cosine_decays_over_the_epochs_to_its_floor():
    c, d = _pairs()
    cfg = TrainCfg(epochs=4, batch_size=32, learning_rate=1e-3, loss="snr", lr_schedule="cosine")
    _, hist = fit(TINY, cfg, (c, d), (c[:32], d[:32]), seed=0)
    lr = np.array(hist["learning_rate"])
    assert np.all(np.diff(lr) < 0) and lr[0] < 1e-3
    # The last epoch's last step sits at progress 15/16 of the cosine: just above the 5% floor.
    expected = 1e-3 * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * 15 / 16)))
    np.testing.assert_allclose(lr[-1], expected, rtol=1e-4)


def test_cosine_follows_the_time_budget_when_it_ends_first():
    c, d = _pairs()
    cfg = TrainCfg(epochs=1000, batch_size=32, learning_rate=1e-3, loss="snr", lr_schedule="cosine",
                   max_seconds=3.0, patience=1000)
    _, hist = fit(TINY, cfg, (c, d), (c[:32], d[:32]), seed=0)
    assert len(hist["learning_rate"]) < 1000  # stopped by the clock
    assert hist["learning_rate"][-1] == pytest.approx(5e-5, rel=0.2)  # at the floor by then


def test_cosine_and_plateau_halving_exclude_each_other():
    with pytest.raises(ValueError, match="lr_patience"):
        TrainCfg(lr_schedule="cosine", lr_patience=2)
