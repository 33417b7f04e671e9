"""Smoothers for broadband errors (noise, bit depth): ideal low-pass, median + low-pass, Savitzky-Golay."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage
from scipy import signal as sps

from pipeline.dsp.baselines.base import BaselineBase, mse, tuning_subset

__all__ = ["Lowpass", "MedianLowpass", "SavitzkyGolay"]


def _fft_lowpass(x: np.ndarray, cutoff: float, mode: str) -> np.ndarray:
    """Ideal zero-phase low-pass keeping frequencies <= cutoff (cycles/sample).

    ``periodic`` filters the frame as one period (exact for integer-cycle content); ``reflect``
    mirrors half a frame onto each side first so non-periodic frames do not ring at the seam.
    """
    t = x.shape[-1]
    left = 0
    if mode == "reflect" and t >= 2:
        left = t // 2
        x = np.pad(x, ((0, 0), (left, t - left)), mode="reflect")
    length = x.shape[-1]
    spec = np.fft.rfft(x, axis=-1)
    spec[:, np.arange(spec.shape[-1]) / length > cutoff] = 0.0
    return np.fft.irfft(spec, n=length, axis=-1)[:, left : left + t]


def _tune_lowpass(z: np.ndarray, clean: np.ndarray) -> tuple[str, float, float]:
    """Best (mode, cutoff, mse) for low-passing ``z`` towards ``clean``.

    Periodic mode is scored for every integer cutoff bin at once via Parseval (cumulative sums of
    per-bin errors); reflect mode is then scored explicitly around that optimum.
    """
    t = z.shape[-1]
    zf, cf = np.fft.rfft(z, axis=-1), np.fft.rfft(clean, axis=-1)
    weight = np.full(zf.shape[-1], 2.0)
    weight[0] = 1.0
    if t % 2 == 0:
        weight[-1] = 1.0
    keep_err = weight * np.sum(np.abs(zf - cf) ** 2, axis=0)
    drop_err = weight * np.sum(np.abs(cf) ** 2, axis=0)
    mse_per_bin = (np.cumsum(keep_err) + drop_err.sum() - np.cumsum(drop_err)) / (z.size * t)
    best_bin = int(np.argmin(mse_per_bin))
    best = ("periodic", (best_bin + 0.5) / t, float(mse_per_bin[best_bin]))
    if t >= 2:
        bins = np.unique(np.round(max(best_bin, 1) * np.geomspace(0.5, 2.0, 9)))
        for b in bins[(bins >= 0) & (bins <= t // 2)]:
            cutoff = (b + 0.5) / t
            err = mse(_fft_lowpass(z, cutoff, "reflect"), clean)
            if err < best[2]:
                best = ("reflect", cutoff, err)
    return best


class Lowpass(BaselineBase):
    """Ideal zero-phase FFT low-pass with cutoff and edge handling tuned by MSE."""

    name = "lowpass"

    def __init__(self, sample_rate: int | None = None) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.mode, self.cutoff = "periodic", 0.5

    def _set(self, mode: str, cutoff: float, **extra: Any) -> None:
        self.mode, self.cutoff = mode, cutoff
        self.params = {"mode": mode, "cutoff_cycles_per_sample": cutoff, **extra}
        if self.sample_rate:
            self.params["cutoff_hz"] = cutoff * self.sample_rate

    def _fit(self, clean: np.ndarray, degraded: np.ndarray) -> None:
        c, d = tuning_subset(clean, degraded, self.tune_samples)
        mode, cutoff, _ = _tune_lowpass(d, c)
        self._set(mode, cutoff)

    def _apply(self, degraded: np.ndarray) -> np.ndarray:
        return _fft_lowpass(degraded, self.cutoff, self.mode)


class MedianLowpass(Lowpass):
    """Median filter over time (removes sparse impulses) followed by the tuned low-pass."""

    name = "median_lowpass"
    widths = (1, 3, 5, 7, 9)

    def __init__(self, sample_rate: int | None = None) -> None:
        super().__init__(sample_rate)
        self.width = 1

    @staticmethod
    def _median(x: np.ndarray, width: int) -> np.ndarray:
        if width <= 1:
            return x
        return ndimage.median_filter(x, size=(1, width), mode="reflect")

    def _fit(self, clean: np.ndarray, degraded: np.ndarray) -> None:
        c, d = tuning_subset(clean, degraded, self.tune_samples // 2)
        best = None
        for width in self.widths:
            if width > d.shape[-1]:
                continue
            mode, cutoff, err = _tune_lowpass(self._median(d, width), c)
            if best is None or err < best[0]:
                best = (err, width, mode, cutoff)
        _, self.width, mode, cutoff = best
        self._set(mode, cutoff, median_width=self.width)

    def _apply(self, degraded: np.ndarray) -> np.ndarray:
        return _fft_lowpass(self._median(degraded, self.width), self.cutoff, self.mode)


class SavitzkyGolay(BaselineBase):
    """Savitzky-Golay smoothing; window, polynomial order and edge mode tuned by MSE.

    Local polynomial fits keep peaks sharper than a brick-wall low-pass at the same noise
    reduction, which matters for clipped-looking or bit-reduced waveforms.
    """

    name = "savgol"
    orders = (2, 4)
    n_windows = 10
    max_window = 257

    def __init__(self) -> None:
        super().__init__()
        self.window, self.order, self.mode = 1, 0, "interp"

    def _candidates(self, t: int) -> list[tuple[int, int]]:
        top = min(self.max_window, t if t % 2 else t - 1)
        if top < 5:
            return []
        windows = np.unique(np.geomspace(5, top, self.n_windows).astype(int) // 2 * 2 + 1)
        return [(int(w), p) for w in windows[windows <= top] for p in self.orders if p < w]

    def _fit(self, clean: np.ndarray, degraded: np.ndarray) -> None:
        c, d = tuning_subset(clean, degraded, self.tune_samples // 2)
        best = (mse(d, c), 1, 0, "interp")  # window 1 == identity
        # window and order first with polynomial edges, then the edge mode for the winner
        for w, p in self._candidates(d.shape[-1]):
            err = mse(sps.savgol_filter(d, w, p, axis=-1, mode="interp"), c)
            if err < best[0]:
                best = (err, w, p, "interp")
        if best[1] > 1:
            err = mse(sps.savgol_filter(d, best[1], best[2], axis=-1, mode="wrap"), c)
            if err < best[0]:
                best = (err, best[1], best[2], "wrap")
        _, self.window, self.order, self.mode = best
        self.params = {"window": self.window, "polyorder": self.order, "mode": self.mode}

    def _apply(self, degraded: np.ndarray) -> np.ndarray:
        if self.window <= 1 or self.window > degraded.shape[-1]:
            return degraded
        return sps.savgol_filter(degraded, self.window, self.order, axis=-1, mode=self.mode)
