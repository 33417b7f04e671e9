"""Wiener filters for additive noise: per-bin DFT gain and the decision-directed STFT gain."""

from __future__ import annotations

import math

import numpy as np
from scipy import signal as sps

from pipeline.dsp.baselines.base import BaselineBase, mean_power, mse, tuning_subset

__all__ = ["Wiener", "WienerSTFTDecisionDirected", "WienerSTFTNoiseTracking"]


def _noise_scale(power: np.ndarray, noise_psd: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """Per-frame multiplier of the average noise PSD from noise-dominated bins.

    Noise levels vary per frame (std or SNR drawn per frame), so one global PSD over- or
    under-suppresses; |Y|^2/N in bins where clean power is negligible is Exp(1)-distributed times
    the scale, whose median is ln 2 (the median is robust to stray signal and impulses).
    """
    ratio = power[:, bins] / noise_psd[bins]
    ratio = ratio.reshape(ratio.shape[0], -1)
    return np.maximum(np.median(ratio, axis=1) / math.log(2.0), 1e-12)


def _decision_directed(spec: np.ndarray, lam: np.ndarray, alpha: float, xi_min: float) -> np.ndarray:
    """Ephraim-Malah decision-directed Wiener gain applied to `spec` (n, bins, windows).

    `lam` is the noise PSD, broadcastable to (n, bins, windows) or to (n, bins, 1) for one PSD
    per clip. Loops run over STFT windows only (vectorised over clips and bins).
    """
    power = np.abs(spec) ** 2
    lam = np.maximum(lam, 1e-20)
    last = lam.shape[-1] - 1
    out = np.empty_like(spec)
    prev_amp2 = None
    for m in range(spec.shape[-1]):
        lam_m = lam[..., min(m, last)]
        ml = np.maximum(power[..., m] / lam_m - 1.0, 0.0)
        xi = ml if prev_amp2 is None else (alpha * prev_amp2 / lam[..., min(m - 1, last)]
                                           + (1 - alpha) * ml)
        xi = np.maximum(xi, xi_min)
        gain = xi / (1.0 + xi)
        out[..., m] = gain * spec[..., m]
        prev_amp2 = gain**2 * power[..., m]
    return out


class Wiener(BaselineBase):
    """DFT-domain Wiener filter with per-bin clean/noise spectra from the fitted pairs.

    Gain S/(S + s*N) per rfft bin, where S and N are mean clean and noise (degraded - clean)
    powers and s is 1 (``global``) or a per-frame noise scale estimated from noise-dominated bins
    (``per_frame``); the choice is tuned by MSE. Spectra are tied to the fitted frame length.
    """

    name = "wiener"

    def __init__(self) -> None:
        super().__init__()
        self.S: np.ndarray | None = None
        self.N: np.ndarray | None = None
        self.noise_bins = np.zeros(0, dtype=int)
        self.per_frame = False

    def _gain(self, spec: np.ndarray, per_frame: bool) -> np.ndarray:
        noise = self.N[None, :]
        if per_frame:
            noise = noise * _noise_scale(np.abs(spec) ** 2, self.N, self.noise_bins)[:, None]
        return self.S / np.maximum(self.S + noise, 1e-300)

    def _fit(self, clean: np.ndarray, degraded: np.ndarray) -> None:
        def rfft(x: np.ndarray) -> np.ndarray:
            return np.fft.rfft(x, axis=-1)

        self.S = mean_power(rfft, clean)
        self.N = mean_power(rfft, degraded, minus=clean)
        inner = np.arange(1, max(len(self.S) - 1, 1))
        self.noise_bins = inner[self.S[inner] < 0.1 * self.N[inner]]
        c, d = tuning_subset(clean, degraded, self.tune_samples)
        df = np.fft.rfft(d, axis=-1)
        options = [False] + ([True] if len(self.noise_bins) >= 8 else [])
        errs = [mse(np.fft.irfft(df * self._gain(df, pf), n=d.shape[-1], axis=-1), c) for pf in options]
        self.per_frame = options[int(np.argmin(errs))]
        self.params = {"noise_scale": "per_frame" if self.per_frame else "global"}

    def _apply(self, degraded: np.ndarray) -> np.ndarray:
        t = degraded.shape[-1]
        if self.S is None or len(self.S) != t // 2 + 1:
            raise ValueError(f"{self.name} was fitted for another frame length (got T={t})")
        spec = np.fft.rfft(degraded, axis=-1)
        return np.fft.irfft(spec * self._gain(spec, self.per_frame), n=t, axis=-1)


class WienerSTFTDecisionDirected(BaselineBase):
    """STFT-domain Wiener gain with Ephraim-Malah decision-directed a priori SNR.

    xi_m = alpha |A_{m-1}|^2 / lambda_{m-1} + (1 - alpha) max(gamma_m - 1, 0), floored at
    xi_min, gain xi/(1+xi). The noise PSD lambda comes from the fitted pairs' noise
    (degraded - clean) per STFT window position, optionally rescaled per frame as in ``Wiener``.
    Smoothing across windows trades musical noise against onset smearing; alpha, xi_min and the
    noise scaling are tuned by MSE. Loops run over STFT windows only (vectorised over frames and
    bins).
    """

    name = "wiener_stft_dd"
    alphas = (0.9, 0.98)
    xi_min_dbs = (-25.0, -15.0)

    def __init__(self, nperseg: int = 256) -> None:
        super().__init__()
        self.nperseg_max = nperseg
        self.nperseg = nperseg
        self.alpha, self.xi_min, self.per_frame = 0.98, 10 ** (-2.5), False
        self.lam: np.ndarray | None = None
        self.noise_bins = np.zeros(0, dtype=int)
        self.length = 0

    def _stft(self, x: np.ndarray) -> np.ndarray:
        return sps.stft(x, nperseg=self.nperseg, noverlap=3 * self.nperseg // 4, axis=-1)[2]

    def _istft(self, z: np.ndarray, length: int) -> np.ndarray:
        x = sps.istft(z, nperseg=self.nperseg, noverlap=3 * self.nperseg // 4)[1]
        return x[:, :length]

    def _enhance(self, spec, alpha, xi_min, per_frame) -> np.ndarray:
        lam = self.lam[None]  # (1, bins, windows)
        if per_frame:
            lam = lam * _noise_scale(np.abs(spec) ** 2, self.lam, self.noise_bins)[:, None, None]
        return _decision_directed(spec, lam, alpha, xi_min)

    def _frame_for(self, t: int) -> None:
        """STFT window for frames of `t` samples: nperseg_max, or fewer for short frames."""
        self.length = t
        self.nperseg = int(min(self.nperseg_max, max(8, 2 ** int(math.log2(max(t // 2, 8))))))

    def _fit(self, clean: np.ndarray, degraded: np.ndarray) -> None:
        self._frame_for(t := clean.shape[-1])
        self.lam = mean_power(self._stft, degraded, minus=clean)
        clean_psd = mean_power(self._stft, clean)
        inner = np.arange(1, self.lam.shape[0] - 1)
        dominated = np.mean(clean_psd[inner], axis=1) < 0.1 * np.mean(self.lam[inner], axis=1)
        self.noise_bins = inner[dominated]
        c, d = tuning_subset(clean, degraded, self.tune_samples // 2)
        spec = self._stft(d)
        best = None
        for alpha in self.alphas:
            for xi_db in self.xi_min_dbs:
                for pf in (False, True) if len(self.noise_bins) >= 4 else (False,):
                    est = self._istft(self._enhance(spec, alpha, 10 ** (xi_db / 10), pf), t)
                    err = mse(est, c)
                    if best is None or err < best[0]:
                        best = (err, alpha, xi_db, pf)
        _, self.alpha, xi_db, self.per_frame = best
        self.xi_min = 10 ** (xi_db / 10)
        self.params = {
            "alpha": self.alpha,
            "xi_min_db": xi_db,
            "noise_scale": "per_frame" if self.per_frame else "global",
            "nperseg": self.nperseg,
        }

    def _apply(self, degraded: np.ndarray) -> np.ndarray:
        t = degraded.shape[-1]
        if self.lam is None or t != self.length:
            raise ValueError(f"{self.name} was fitted for another frame length (got T={t})")
        spec = self._enhance(self._stft(degraded), self.alpha, self.xi_min, self.per_frame)
        return self._istft(spec, t)


class WienerSTFTNoiseTracking(WienerSTFTDecisionDirected):
    """The decision-directed STFT Wiener gain with the noise PSD estimated from each clip itself.

    Real recordings bring their own noise, so a PSD averaged over training pairs (the parent
    class) fits none of them. Here each clip's noise PSD per bin is the mean power of its quietest
    `quantile` of STFT windows (ranked by total power: the pauses, as minimum-statistics trackers
    use), times a bias; the quantile, bias, alpha and xi_min are chosen by MSE on the fitted
    pairs. It assumes the noise is stationary within a clip (a 2 s frame).
    """

    name = "wiener_dd_tracking"
    quantiles = (0.1, 0.25)
    biases_db = (0.0, 3.0, 6.0)

    def __init__(self, nperseg: int = 256) -> None:
        super().__init__(nperseg)
        self.quantile, self.bias = 0.1, 1.0

    def _noise_psd(self, power: np.ndarray, quantile: float) -> np.ndarray:
        """(n, bins, 1): mean power per bin over each clip's quietest windows."""
        k = max(1, int(round(quantile * power.shape[-1])))
        quiet = np.argsort(power.sum(axis=1), axis=-1)[:, :k]  # (n, k) window indices
        picked = np.take_along_axis(power, quiet[:, None, :], axis=-1)
        return picked.mean(axis=-1, keepdims=True)

    def _fit(self, clean: np.ndarray, degraded: np.ndarray) -> None:
        self._frame_for(t := clean.shape[-1])
        c, d = tuning_subset(clean, degraded, self.tune_samples // 2)
        spec = self._stft(d)
        power = np.abs(spec) ** 2
        best = None
        for q in self.quantiles:
            lam_q = self._noise_psd(power, q)
            for b_db in self.biases_db:
                for alpha in self.alphas:
                    for xi_db in self.xi_min_dbs:
                        est = self._istft(_decision_directed(spec, lam_q * 10 ** (b_db / 10), alpha,
                                                          10 ** (xi_db / 10)), t)
                        err = mse(est, c)
                        if best is None or err < best[0]:
                            best = (err, q, b_db, alpha, xi_db)
        _, self.quantile, b_db, self.alpha, xi_db = best
        self.bias, self.xi_min = 10 ** (b_db / 10), 10 ** (xi_db / 10)
        self.params = {"quantile": self.quantile, "bias_db": b_db, "alpha": self.alpha,
                       "xi_min_db": xi_db, "nperseg": self.nperseg}

    def _apply(self, degraded: np.ndarray) -> np.ndarray:
        if not self.length:
            raise ValueError(f"{self.name} is not fitted")
        t = degraded.shape[-1]
        spec = self._stft(degraded)
        lam = self._noise_psd(np.abs(spec) ** 2, self.quantile) * self.bias
        return self._istft(_decision_directed(spec, lam, self.alpha, self.xi_min), t)
