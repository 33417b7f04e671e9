"""train options: the plateau learning-rate schedule and XLA."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

from pipeline.config.model import StftMaskCfg, TrainCfg, UnetCfg
from pipeline.stages.train import fit

TINY = UnetCfg(depth=2, filters=4, kernel_size=5)


def _pairs(n: int = 128, t: int = 64):
    rng = np.random.default_rng(0)
    clean = rng.normal(size=(n, t)).astype(np.float32)
    return clean, (clean + 0.1 * rng.normal(size=clean.shape)).astype(np.float32)


def test_plateau_halves_the_rate_after_lr_patience_epochs():
    c, d = _pairs()
    cfg = TrainCfg(epochs=4, batch_size=32, learning_rate=1e-3, loss="snr", lr_patience=1,
                   patience=100)
    _, hist = fit(TINY, cfg, (c, d), (c[:32], d[:32]), seed=0)
    lr = np.array(hist["learning_rate"])
    assert lr[0] == pytest.approx(1e-3) and len(lr) == 4
    # Each epoch keeps the previous rate or halves it: no other schedule acts.
    ratios = lr[1:] / lr[:-1]
    assert all(r == pytest.approx(1.0) or r == pytest.approx(0.5) for r in ratios), lr


@pytest.fixture
def no_op_determinism():
    """Keras compiles without XLA while op determinism is on (a train stage run earlier in
    this process turns it on), so switch it off for the test and restore it afterwards."""
    from tensorflow.python.framework import config as tf_config

    was_on = tf_config.is_op_determinism_enabled()
    tf_config.disable_op_determinism()
    yield
    if was_on:
        tf_config.enable_op_determinism()


def test_jit_compiled_training_matches_the_plain_step(no_op_determinism):
    # XLA changes the kernels, not the maths: one epoch from the same start agrees closely.
    c, d = _pairs(64, 256)
    cfg = StftMaskCfg(n_fft=64, depth=2, filters=8, phase_features=True)
    tc = TrainCfg(epochs=1, batch_size=32, loss="snr")
    plain, h_plain = fit(cfg, tc, (c, d), (c[:32], d[:32]), seed=0)
    jit, h_jit = fit(cfg, tc.model_copy(update={"jit_compile": True}), (c, d), (c[:32], d[:32]),
                     seed=0)
    assert jit.jit_compile and not plain.jit_compile
    np.testing.assert_allclose(h_jit["val_loss"], h_plain["val_loss"], rtol=1e-3)
