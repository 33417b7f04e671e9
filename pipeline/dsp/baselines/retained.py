"""Interpolation from the samples that survive sample-and-hold (quantize) and decimation (bandwidth)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from scipy import interpolate
from scipy import signal as sps

from pipeline.dsp.baselines.base import BaselineBase, mse, tuning_subset

__all__ = ["BandlimitedInterp", "HoldInterp"]


class _RetainedSamples(BaselineBase):
    """Reconstruct from every K-th sample; the retained-sample phase is tuned by MSE.

    Sample-and-hold y[n] = x[K floor(n/K)] keeps x exactly at n = K m (the start of each hold,
    not its centre), and decimation keeps x_lp[K m]; phase 0 is right for both, but tuning it
    guards against a different convention in the degradation code.
    """

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.factor = int(factor)
        self.phase = 0

    def _positions(self, t: int, phase: int) -> np.ndarray:
        return np.arange(phase, t, self.factor)

    def _interp(self, y: np.ndarray, phase: int) -> np.ndarray:
        raise NotImplementedError

    def _options(self) -> Iterable[dict[str, Any]]:
        return [{}]

    def _fit(self, clean: np.ndarray, degraded: np.ndarray) -> None:
        c, d = tuning_subset(clean, degraded, self.tune_samples)
        best = None
        for opt in self._options():
            for k, v in opt.items():
                setattr(self, k, v)
            for phase in range(min(self.factor, d.shape[-1])):
                err = mse(self._interp(d, phase), c)
                if best is None or err < best[0]:
                    best = (err, phase, opt)
        _, self.phase, opt = best
        for k, v in opt.items():
            setattr(self, k, v)
        self.params = {"factor": self.factor, "phase": self.phase, **opt}

    def _apply(self, degraded: np.ndarray) -> np.ndarray:
        if self.factor <= 1:
            return degraded
        return self._interp(degraded, self.phase)


class HoldInterp(_RetainedSamples):
    """Linear or cubic-spline (not-a-knot) interpolation through the retained samples."""

    def __init__(self, factor: int, kind: str) -> None:
        super().__init__(factor)
        if kind not in ("linear", "cubic"):
            raise ValueError(kind)
        self.name = kind

    def _interp(self, y: np.ndarray, phase: int) -> np.ndarray:
        t = y.shape[-1]
        pos = self._positions(t, phase)
        if len(pos) < 2:
            return np.repeat(y[:, pos[:1]], t, axis=1)
        k = 1 if self.name == "linear" or len(pos) < 4 else 3
        spline = interpolate.make_interp_spline(pos, y[:, pos], k=k, axis=1)
        return spline(np.arange(t))


class BandlimitedInterp(_RetainedSamples):
    """Band-limited (sinc) interpolation from the retained samples.

    ``periodic``: least-squares fit of a T-periodic trigonometric polynomial with as many terms as
    retained samples (the FFT resampler, but exact for any T, not only multiples of K; for long
    frames that are not a multiple of K it falls back to FFT resampling with period M*K);
    ``poly``: scipy's polyphase FIR ``resample_poly`` with linear edge padding, for frames that
    are not periodic. The variant is tuned by MSE.
    """

    name = "bandlimited"
    max_lstsq = 512  # retained samples up to which the exact T-periodic fit is used

    def __init__(self, factor: int) -> None:
        super().__init__(factor)
        self.kind = "periodic"
        self._cache: dict[tuple[int, int], np.ndarray] = {}

    def _options(self) -> Iterable[dict[str, Any]]:
        return [{"kind": "periodic"}, {"kind": "poly"}]

    def _matrix(self, t: int, phase: int) -> np.ndarray:
        key = (t, phase)
        if key not in self._cache:
            pos = self._positions(t, phase)
            m = len(pos)
            freqs = np.arange(m // 2 + 1)
            n = (np.arange(t) - phase)[:, None]  # keep the Nyquist term aligned with the samples
            cos = np.cos(2 * np.pi * n * freqs / t)
            sin = np.sin(2 * np.pi * n * freqs[1 : (m + 1) // 2] / t)
            basis = np.concatenate([cos, sin], axis=1)[:, :m]  # (t, m)
            self._cache[key] = basis @ np.linalg.pinv(basis[pos], rcond=1e-10)
        return self._cache[key]

    def _interp(self, y: np.ndarray, phase: int) -> np.ndarray:
        t = y.shape[-1]
        pos = self._positions(t, phase)
        if self.kind == "periodic":
            if t % self.factor == 0:  # uniform samples over the period: plain FFT resampling
                return np.roll(sps.resample(y[:, pos], t, axis=1), phase, axis=1)
            if len(pos) <= self.max_lstsq:
                return y[:, pos] @ self._matrix(t, phase).T
            # long frames: assume period len(pos)*K instead of T (cost of an exact fit is O(T^3))
            up = sps.resample(y[:, pos], len(pos) * self.factor, axis=1)
            return up[:, (np.arange(t) - phase) % up.shape[1]]
        if len(pos) < 2:
            return np.repeat(y[:, pos[:1]], t, axis=1)
        up = sps.resample_poly(y[:, pos], self.factor, 1, axis=1, padtype="line")
        return up[:, np.clip(np.arange(t) - phase, 0, up.shape[1] - 1)]
