"""The training loss, the optimizer and compilation: what `fit` needs beyond the network."""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

import keras
from keras import ops

from pipeline.nn.layers import register

if TYPE_CHECKING:
    from pipeline.config import TrainCfg

EPS = 1e-8


@register
class ReconLoss(keras.losses.Loss):
    """Per-frame reconstruction loss: "mse", "l1" or "snr".

    "snr" is the negative per-frame SNR in dB, so every frame counts the same whatever its level.
    Compiled models saved before the multi-resolution STFT term was retired carry
    `stft_weight` and `fft_sizes`: accepted so they still load, and the term is not applied.
    """

    def __init__(self, kind: str = "mse", name: str | None = None, *,
                 stft_weight: float = 0.0, fft_sizes=None, **kwargs):
        if kind not in ("mse", "l1", "snr"):
            raise ValueError(f"unknown loss `{kind}`; use mse, l1 or snr")
        if stft_weight:
            warnings.warn(f"ReconLoss: the STFT loss term (stft_weight {stft_weight}) was retired "
                          "and is ignored", stacklevel=2)
        del fft_sizes  # only the retired STFT term used it
        super().__init__(name=name or f"recon_{kind}", **kwargs)
        self.kind = kind

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        err = y_true - y_pred
        if self.kind == "mse":
            return ops.mean(ops.square(err), axis=(1, 2))
        if self.kind == "l1":
            return ops.mean(ops.abs(err), axis=(1, 2))
        return snr_loss(y_true, y_pred)

    def get_config(self):
        return {**super().get_config(), "kind": self.kind}


def snr_loss(y_true, y_pred):
    """-10 log10(sum y^2 / (sum (y - y_hat)^2 + eps) + eps) per frame, shape (batch,)."""
    sig = ops.sum(ops.square(y_true), axis=(1, 2))
    noise = ops.sum(ops.square(y_true - y_pred), axis=(1, 2))
    return -10.0 * ops.log(sig / (noise + EPS) + EPS) / math.log(10.0)


def make_loss(train_cfg: TrainCfg) -> ReconLoss:
    """The loss named by `train_cfg`."""
    return ReconLoss(kind=train_cfg.loss)


def make_optimizer(train_cfg: TrainCfg) -> keras.optimizers.Optimizer:
    return keras.optimizers.Adam(learning_rate=train_cfg.learning_rate)


def compile_model(model: keras.Model, train_cfg: TrainCfg):
    """Compile with the configured loss and Adam; returns the model for chaining."""
    model.compile(optimizer=make_optimizer(train_cfg), loss=make_loss(train_cfg),
                  jit_compile=train_cfg.jit_compile)
    return model
