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
MAG_EPS = 1e-12  # under |Y|^2 of a bin 120 dB below full scale: keeps the power's gradient finite


@register
class ReconLoss(keras.losses.Loss):
    """Per-frame reconstruction loss: "mse", "l1" or "snr", plus `spectral_weight` times the
    compressed-magnitude spectral distance in dB (:func:`spectral_db`) when that is non-zero.

    "snr" is the negative per-frame SNR in dB, so every frame counts the same whatever its level.
    Compiled models saved before the multi-resolution STFT term was retired carry
    `stft_weight` and `fft_sizes`: accepted so they still load, and the term is not applied.
    """

    def __init__(self, kind: str = "mse", name: str | None = None, *,
                 spectral_weight: float = 0.0, spectral_n_fft: int = 512,
                 spectral_power: float = 0.3,
                 stft_weight: float = 0.0, fft_sizes=None, **kwargs):
        if kind not in ("mse", "l1", "snr"):
            raise ValueError(f"unknown loss `{kind}`; use mse, l1 or snr")
        if spectral_weight < 0 or spectral_n_fft % 4 or not 0 < spectral_power <= 1:
            raise ValueError("spectral term: weight >= 0, n_fft a multiple of 4, 0 < power <= 1")
        if stft_weight:
            warnings.warn(f"ReconLoss: the STFT loss term (stft_weight {stft_weight}) was retired "
                          "and is ignored", stacklevel=2)
        del fft_sizes  # only the retired STFT term used it
        super().__init__(name=name or f"recon_{kind}", **kwargs)
        self.kind = kind
        self.spectral_weight = float(spectral_weight)
        self.spectral_n_fft = int(spectral_n_fft)
        self.spectral_power = float(spectral_power)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        loss = self._sample_loss(y_true, y_pred)
        if self.spectral_weight:
            loss = loss + self.spectral_weight * spectral_db(
                y_true, y_pred, self.spectral_n_fft, self.spectral_power)
        return loss

    def _sample_loss(self, y_true, y_pred):
        err = y_true - y_pred
        if self.kind == "mse":
            return ops.mean(ops.square(err), axis=(1, 2))
        if self.kind == "l1":
            return ops.mean(ops.abs(err), axis=(1, 2))
        return snr_loss(y_true, y_pred)

    def get_config(self):
        return {**super().get_config(), "kind": self.kind,
                "spectral_weight": self.spectral_weight, "spectral_n_fft": self.spectral_n_fft,
                "spectral_power": self.spectral_power}


def snr_loss(y_true, y_pred):
    """-10 log10(sum y^2 / (sum (y - y_hat)^2 + eps) + eps) per frame, shape (batch,)."""
    sig = ops.sum(ops.square(y_true), axis=(1, 2))
    noise = ops.sum(ops.square(y_true - y_pred), axis=(1, 2))
    return -10.0 * ops.log(sig / (noise + EPS) + EPS) / math.log(10.0)


def compressed_magnitude(y, n_fft: int, power: float):
    """|STFT(y)|^power of (batch, T, 1) frames (Hann, hop n_fft/4), shape (batch, frames, bins).

    The power is taken of |Y|^2 + MAG_EPS so that its gradient stays finite at zero magnitude.
    """
    re, im = ops.stft(ops.squeeze(y, axis=-1), sequence_length=n_fft, sequence_stride=n_fft // 4,
                      fft_length=n_fft, window="hann", center=True)
    return ops.power(ops.square(re) + ops.square(im) + MAG_EPS, power / 2.0)


def spectral_db(y_true, y_pred, n_fft: int = 512, power: float = 0.3):
    """10 log10(sum (C(y) - C(y_hat))^2 / sum C(y)^2) per frame, C = :func:`compressed_magnitude`.

    Scaling both signals by a scales every C by a^power, so the ratio, like the SNR loss, does
    not depend on the frame's level.
    """
    c_true = compressed_magnitude(y_true, n_fft, power)
    c_pred = compressed_magnitude(y_pred, n_fft, power)
    err = ops.sum(ops.square(c_true - c_pred), axis=(1, 2))
    ref = ops.sum(ops.square(c_true), axis=(1, 2))
    return 10.0 * ops.log(err / (ref + EPS) + EPS) / math.log(10.0)


def make_loss(train_cfg: TrainCfg) -> ReconLoss:
    """The loss named by `train_cfg`, with its spectral term when `train.spectral` is set."""
    sp = train_cfg.spectral
    if sp is None:
        return ReconLoss(kind=train_cfg.loss)
    return ReconLoss(kind=train_cfg.loss, spectral_weight=sp.weight, spectral_n_fft=sp.n_fft,
                     spectral_power=sp.power)


def make_optimizer(train_cfg: TrainCfg) -> keras.optimizers.Optimizer:
    return keras.optimizers.Adam(learning_rate=train_cfg.learning_rate)


def compile_model(model: keras.Model, train_cfg: TrainCfg):
    """Compile with the configured loss and Adam; returns the model for chaining."""
    model.compile(optimizer=make_optimizer(train_cfg), loss=make_loss(train_cfg),
                  jit_compile=train_cfg.jit_compile)
    return model
