"""train options: the cosine learning-rate schedule, Polyak (EMA) averaging, XLA."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

from pipeline.config import ModelCfg, TrainCfg
from pipeline.stages.train import fit

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


def test_cosine_counts_steps_not_seconds():
    """A wall-clock stop (exploration option) cuts the schedule short instead of bending it:
    the rate at each step is the step count's, so it is the same on a slow or a busy machine."""
    c, d = _pairs()
    cfg = TrainCfg(epochs=1000, batch_size=32, learning_rate=1e-3, loss="snr", lr_schedule="cosine",
                   max_seconds=2.0, patience=1000)
    _, hist = fit(TINY, cfg, (c, d), (c[:32], d[:32]), seed=0)
    lr = np.array(hist["learning_rate"])
    assert len(lr) < 1000  # stopped by the clock
    steps_per_epoch = len(c) // 32
    expected = 1e-3 * (0.05 + 0.95 * 0.5 * (1 + np.cos(
        np.pi * (np.arange(1, len(lr) + 1) * steps_per_epoch - 1) / (1000 * steps_per_epoch))))
    np.testing.assert_allclose(lr, expected, rtol=1e-4)


def test_cosine_and_plateau_halving_exclude_each_other():
    with pytest.raises(ValueError, match="lr_patience"):
        TrainCfg(lr_schedule="cosine", lr_patience=2)


def test_ema_weights_are_the_ones_validated_and_returned():
    c, d = _pairs()
    cfg = TrainCfg(epochs=3, batch_size=32, learning_rate=3e-3, loss="snr", ema_momentum=0.9,
                   patience=100)
    model, hist = fit(TINY, cfg, (c, d), (c[:32], d[:32]), seed=0)
    # The returned weights score exactly the best val_loss that EarlyStopping saw.
    assert model.evaluate(d[:32, :, None], c[:32, :, None], verbose=0) == pytest.approx(
        min(hist["val_loss"]), abs=1e-4)
    plain, _ = fit(TINY, cfg.model_copy(update={"ema_momentum": None}), (c, d), (c[:32], d[:32]),
                   seed=0)
    assert not np.allclose(plain.get_weights()[0], model.get_weights()[0])


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
    cfg = ModelCfg(arch="stft_mask", n_fft=64, depth=2, filters=8, global_context=True)
    tc = TrainCfg(epochs=1, batch_size=32, loss="snr")
    plain, h_plain = fit(cfg, tc, (c, d), (c[:32], d[:32]), seed=0)
    jit, h_jit = fit(cfg, tc.model_copy(update={"jit_compile": True}), (c, d), (c[:32], d[:32]),
                     seed=0)
    assert jit.jit_compile and not plain.jit_compile
    np.testing.assert_allclose(h_jit["val_loss"], h_plain["val_loss"], rtol=1e-3)
