"""Classical DSP baselines and known-signal oracles that the networks are scored against.

A baseline maps degraded frames ``(n, T)`` to reconstructions ``(n, T)`` (float32). ``fit`` tunes
the few knobs each method has by minimising MSE on (clean, degraded) pairs, so every baseline is
given the same supervision budget as the model and a model that cannot beat them has learned
nothing a textbook method would not. Tuning uses a deterministic subset of about
``tune_samples`` samples: a handful of knobs does not need thousands of frames and fitting stays
fast. Nothing here is per-frame Python: all methods are vectorised over the frame axis, and
calls run in chunks of about ``_CHUNK_SAMPLES`` samples so long audio frames stay within memory.

``oracle`` uses knowledge of the signal family (a single sinusoid from a known dictionary) that no
real system has; it is an upper bound, and ``oracle_task_facts`` reports the degeneracies (atoms
invisible or confusable under the degradation) that bound any method.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, Protocol, runtime_checkable

import numpy as np
from scipy import interpolate, ndimage
from scipy import signal as sps

__all__ = [
    "Baseline",
    "BandlimitedInterp",
    "ClipRepair",
    "GapFill",
    "HoldInterp",
    "Identity",
    "Lowpass",
    "MedianLowpass",
    "SavitzkyGolay",
    "Wiener",
    "WienerSTFTDecisionDirected",
    "bandwidth_task_facts",
    "ideal_mask_bound",
    "classical_baselines",
    "oracle",
    "oracle_task_facts",
]


@runtime_checkable
class Baseline(Protocol):
    """What the evaluation stage needs from a baseline: a name, a fit and a call."""

    name: str

    def fit(self, clean: np.ndarray, degraded: np.ndarray) -> Baseline: ...

    def __call__(self, degraded: np.ndarray) -> np.ndarray: ...


# --------------------------------------------------------------------------------------------
# shared helpers


_CHUNK_SAMPLES = 1 << 20


def _frames(x: Any) -> tuple[np.ndarray, tuple[int, ...]]:
    """(…, T) -> (n, T) view in the input dtype plus the original shape (1-D = one frame)."""
    a = np.asarray(x)
    if a.ndim == 0:
        raise ValueError("frames need a time axis")
    return a.reshape(-1, a.shape[-1]), a.shape


def _chunked(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """Apply ``fn`` (float64 (m, T) -> (m, T)) over frame chunks into a float32 array.

    Bounds peak memory (spectra of thousands of long frames would not fit); each chunk is still
    fully vectorised.
    """
    out = np.empty(x.shape, dtype=np.float32)
    step = max(1, _CHUNK_SAMPLES // max(x.shape[-1], 1))
    for start in range(0, len(x), step):
        out[start : start + step] = fn(np.asarray(x[start : start + step], dtype=np.float64))
    return out


def _mean_power(
    transform: Callable[[np.ndarray], np.ndarray], x: np.ndarray, minus: np.ndarray | None = None
) -> np.ndarray:
    """Mean over frames of |transform(x - minus)|^2, accumulated over chunks."""
    total = None
    step = max(1, _CHUNK_SAMPLES // max(x.shape[-1], 1))
    for start in range(0, len(x), step):
        chunk = np.asarray(x[start : start + step], np.float64)
        if minus is not None:
            chunk = chunk - minus[start : start + step]
        p = np.sum(np.abs(transform(chunk)) ** 2, axis=0)
        total = p if total is None else total + p
    return total / len(x)


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a - b) ** 2))


def _subset(clean: np.ndarray, degraded: np.ndarray, samples: int) -> tuple[np.ndarray, ...]:
    """Deterministic evenly spaced float64 subset of about ``samples`` samples (>= 16 frames).

    Reproducible, and bounds tuning time independently of how many frames the caller passes.
    """
    n, t = clean.shape
    limit = max(16, samples // max(t, 1))
    idx = np.arange(n) if n <= limit else np.linspace(0, n - 1, limit).round().astype(int)
    return clean[idx].astype(np.float64), degraded[idx].astype(np.float64)


def _run_lengths(mask: np.ndarray) -> np.ndarray:
    """Length of the run of True values each element belongs to (0 where False), per row."""
    n, t = mask.shape
    padded = np.zeros((n, t + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)  # +1 at run start, -1 one past run end
    starts = np.flatnonzero(edges.ravel() == 1)
    ends = np.flatnonzero(edges.ravel() == -1)
    lengths = np.zeros(n * (t + 1), dtype=np.int64)
    run_len = ends - starts
    # mark each run by +len at start and -len at end; a cumulative sum spreads it over the run
    np.add.at(lengths, starts, run_len)
    np.add.at(lengths, ends, -run_len)
    out = np.cumsum(lengths.reshape(n, t + 1), axis=1)[:, :t]
    return np.where(mask, out, 0)


def _fill_runs(y: np.ndarray, mask: np.ndarray, method: str) -> np.ndarray:
    """Replace masked samples by interpolation from the nearest unmasked neighbours.

    ``linear`` joins the last good sample before a run to the first after it. ``cubic`` passes a
    cubic through two good samples on each side (Hermite-like, so slopes at the run ends are
    respected) and falls back to linear where those are missing. Runs touching a frame edge are
    held at the nearest good value because nothing constrains an extrapolation.
    """
    n, t = y.shape
    idx = np.arange(t)
    good = ~mask
    prev = np.maximum.accumulate(np.where(good, idx, -1), axis=1)
    nxt = np.minimum.accumulate(np.where(good, idx, t)[:, ::-1], axis=1)[:, ::-1]
    rows = np.arange(n)[:, None]
    has_p, has_q = prev >= 0, nxt < t
    p1, q1 = np.clip(prev, 0, t - 1), np.clip(nxt, 0, t - 1)
    yp1, yq1 = y[rows, p1], y[rows, q1]
    span = np.maximum(q1 - p1, 1)
    lin = yp1 + (idx - p1) / span * (yq1 - yp1)
    fill = np.where(has_p & has_q, lin, np.where(has_p, yp1, np.where(has_q, yq1, y)))
    if method == "cubic":
        p0, q2 = p1 - 1, q1 + 1
        ok = has_p & has_q & (p0 >= 0) & (q2 < t)
        p0c, q2c = np.clip(p0, 0, t - 1), np.clip(q2, 0, t - 1)
        ok &= good[rows, p0c] & good[rows, q2c]
        nodes = np.stack([p0, p1, q1, q2]).astype(np.float64)
        values = np.stack([y[rows, p0c], yp1, yq1, y[rows, q2c]])
        cubic = np.zeros_like(y)
        for i in range(4):  # Lagrange basis over the 4 nodes (fixed loop, vectorised inside)
            basis = np.ones_like(y)
            for j in range(4):
                if j != i:
                    denom = nodes[i] - nodes[j]
                    denom = np.where(denom == 0, 1.0, denom)
                    basis *= (idx - nodes[j]) / denom
            cubic += basis * values[i]
        fill = np.where(ok, cubic, fill)
    elif method != "linear":
        raise ValueError(f"unknown fill method {method!r}")
    return np.where(mask, fill, y)


class _Base:
    """Common plumbing: shape handling, float32 output, subset for tuning, ``params``."""

    name = "base"
    tune_samples = 1 << 19

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}

    def fit(self, clean: np.ndarray, degraded: np.ndarray) -> _Base:
        c, _ = _frames(clean)
        d, _ = _frames(degraded)
        if len(c) == 0:
            raise ValueError("fit needs at least one frame")
        if c.shape != d.shape:
            raise ValueError(f"clean {c.shape} and degraded {d.shape} differ")
        self._fit(c, d)
        return self

    def _fit(self, clean: np.ndarray, degraded: np.ndarray) -> None:
        """Default: nothing to tune."""

    def __call__(self, degraded: np.ndarray) -> np.ndarray:
        d, shape = _frames(degraded)
        return _chunked(self._apply, d).reshape(shape)

    def _apply(self, degraded: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, params={self.params})"


class Identity(_Base):
    """The degraded input itself: the floor every method must beat."""

    name = "identity"

    def _apply(self, degraded: np.ndarray) -> np.ndarray:
        return degraded


# --------------------------------------------------------------------------------------------
# low-pass family (noise, bit depth)


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
            err = _mse(_fft_lowpass(z, cutoff, "reflect"), clean)
            if err < best[2]:
                best = ("reflect", cutoff, err)
    return best


class Lowpass(_Base):
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
        c, d = _subset(clean, degraded, self.tune_samples)
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
        c, d = _subset(clean, degraded, self.tune_samples // 2)
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


class SavitzkyGolay(_Base):
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
        c, d = _subset(clean, degraded, self.tune_samples // 2)
        best = (_mse(d, c), 1, 0, "interp")  # window 1 == identity
        # window and order first with polynomial edges, then the edge mode for the winner
        for w, p in self._candidates(d.shape[-1]):
            err = _mse(sps.savgol_filter(d, w, p, axis=-1, mode="interp"), c)
            if err < best[0]:
                best = (err, w, p, "interp")
        if best[1] > 1:
            err = _mse(sps.savgol_filter(d, best[1], best[2], axis=-1, mode="wrap"), c)
            if err < best[0]:
                best = (err, best[1], best[2], "wrap")
        _, self.window, self.order, self.mode = best
        self.params = {"window": self.window, "polyorder": self.order, "mode": self.mode}

    def _apply(self, degraded: np.ndarray) -> np.ndarray:
        if self.window <= 1 or self.window > degraded.shape[-1]:
            return degraded
        return sps.savgol_filter(degraded, self.window, self.order, axis=-1, mode=self.mode)


# --------------------------------------------------------------------------------------------
# Wiener filters (noise)


def _noise_scale(power: np.ndarray, noise_psd: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """Per-frame multiplier of the average noise PSD from noise-dominated bins.

    Noise levels vary per frame (std or SNR drawn per frame), so one global PSD over- or
    under-suppresses; |Y|^2/N in bins where clean power is negligible is Exp(1)-distributed times
    the scale, whose median is ln 2 (the median is robust to stray signal and impulses).
    """
    ratio = power[:, bins] / noise_psd[bins]
    ratio = ratio.reshape(ratio.shape[0], -1)
    return np.maximum(np.median(ratio, axis=1) / math.log(2.0), 1e-12)


class Wiener(_Base):
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

        self.S = _mean_power(rfft, clean)
        self.N = _mean_power(rfft, degraded, minus=clean)
        inner = np.arange(1, max(len(self.S) - 1, 1))
        self.noise_bins = inner[self.S[inner] < 0.1 * self.N[inner]]
        c, d = _subset(clean, degraded, self.tune_samples)
        df = np.fft.rfft(d, axis=-1)
        options = [False] + ([True] if len(self.noise_bins) >= 8 else [])
        errs = [_mse(np.fft.irfft(df * self._gain(df, pf), n=d.shape[-1], axis=-1), c) for pf in options]
        self.per_frame = options[int(np.argmin(errs))]
        self.params = {"noise_scale": "per_frame" if self.per_frame else "global"}

    def _apply(self, degraded: np.ndarray) -> np.ndarray:
        t = degraded.shape[-1]
        if self.S is None or len(self.S) != t // 2 + 1:
            raise ValueError(f"{self.name} was fitted for another frame length (got T={t})")
        spec = np.fft.rfft(degraded, axis=-1)
        return np.fft.irfft(spec * self._gain(spec, self.per_frame), n=t, axis=-1)


class WienerSTFTDecisionDirected(_Base):
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
        power = np.abs(spec) ** 2
        lam = self.lam[None]  # (1, bins, windows)
        if per_frame:
            lam = lam * _noise_scale(power, self.lam, self.noise_bins)[:, None, None]
        lam = np.maximum(lam, 1e-20)
        out = np.empty_like(spec)
        prev_amp2 = None
        for m in range(spec.shape[-1]):
            gamma = power[..., m] / lam[..., m]
            ml = np.maximum(gamma - 1.0, 0.0)
            xi = ml if prev_amp2 is None else alpha * prev_amp2 / lam[..., m - 1] + (1 - alpha) * ml
            xi = np.maximum(xi, xi_min)
            gain = xi / (1.0 + xi)
            out[..., m] = gain * spec[..., m]
            prev_amp2 = gain**2 * power[..., m]
        return out

    def _fit(self, clean: np.ndarray, degraded: np.ndarray) -> None:
        self.length = t = clean.shape[-1]
        self.nperseg = int(min(self.nperseg_max, max(8, 2 ** int(math.log2(max(t // 2, 8))))))
        self.lam = _mean_power(self._stft, degraded, minus=clean)
        clean_psd = _mean_power(self._stft, clean)
        inner = np.arange(1, self.lam.shape[0] - 1)
        dominated = np.mean(clean_psd[inner], axis=1) < 0.1 * np.mean(self.lam[inner], axis=1)
        self.noise_bins = inner[dominated]
        c, d = _subset(clean, degraded, self.tune_samples // 2)
        spec = self._stft(d)
        best = None
        for alpha in self.alphas:
            for xi_db in self.xi_min_dbs:
                for pf in (False, True) if len(self.noise_bins) >= 4 else (False,):
                    est = self._istft(self._enhance(spec, alpha, 10 ** (xi_db / 10), pf), t)
                    err = _mse(est, c)
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


# --------------------------------------------------------------------------------------------
# interpolation from retained samples (sample-and-hold, bandwidth reduction)


class _RetainedSamples(_Base):
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
        c, d = _subset(clean, degraded, self.tune_samples)
        best = None
        for opt in self._options():
            for k, v in opt.items():
                setattr(self, k, v)
            for phase in range(min(self.factor, d.shape[-1])):
                err = _mse(self._interp(d, phase), c)
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


# --------------------------------------------------------------------------------------------
# clipping and dropout repair


class ClipRepair(_Base):
    """Re-interpolate clipped runs (|y| at the frame's peak) with a local cubic.

    The clip level is the frame's own peak, so clipped samples are those within a relative 1e-6
    of it. Repaired values are forced to keep the clipped sign and at least the clip magnitude,
    because the true signal must have exceeded the level there. Runs shorter than ``min_run``
    are left alone (a single sample at the peak is usually an unclipped maximum); ``min_run`` is
    tuned by MSE.
    """

    name = "cubic"
    min_runs = (1, 2, 3)

    def __init__(self) -> None:
        super().__init__()
        self.min_run = 2

    def _repair(self, y: np.ndarray, min_run: int) -> np.ndarray:
        level = np.max(np.abs(y), axis=1, keepdims=True)
        clipped = (np.abs(y) >= level * (1 - 1e-6)) & (level > 0)
        clipped &= _run_lengths(clipped) >= min_run
        filled = _fill_runs(y, clipped, "cubic")
        sign = np.where(y >= 0, 1.0, -1.0)
        repaired = sign * np.maximum(np.abs(filled) * (np.sign(filled) == sign), level)
        return np.where(clipped, repaired, y)

    def _fit(self, clean: np.ndarray, degraded: np.ndarray) -> None:
        c, d = _subset(clean, degraded, self.tune_samples)
        errs = [_mse(self._repair(d, r), c) for r in self.min_runs]
        self.min_run = self.min_runs[int(np.argmin(errs))]
        self.params = {"min_run": self.min_run}

    def _apply(self, degraded: np.ndarray) -> np.ndarray:
        return self._repair(degraded, self.min_run)


def _zero_runs(y: np.ndarray, min_run: int = 2) -> np.ndarray:
    """Runs of exact zeros of at least ``min_run`` samples: dropped packets, not zero crossings."""
    zero = y == 0.0
    return zero & (_run_lengths(zero) >= min_run)


class GapFill(_Base):
    """Fill dropout gaps (runs of >= 2 exact zeros) by linear or local cubic interpolation."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        if kind not in ("linear", "cubic"):
            raise ValueError(kind)
        self.name = kind

    def _apply(self, degraded: np.ndarray) -> np.ndarray:
        return _fill_runs(degraded, _zero_runs(degraded), self.name)


# --------------------------------------------------------------------------------------------
# factory


def classical_baselines(
    degradation: dict, sample_rate: int, frame_length: int | None = None
) -> list[Baseline]:
    """Unfitted baselines that make physical sense for ``degradation['kind']``.

    ``identity`` is always first. ``wiener_stft_dd`` needs enough samples for several STFT
    windows, so it is only offered when ``frame_length`` is unknown or >= 512. Unknown kinds get
    only ``identity`` so that a new degradation does not break evaluation.
    """
    kind = degradation.get("kind")
    out: list[Baseline] = [Identity()]
    if kind == "noise":
        out += [Lowpass(sample_rate), Wiener(), MedianLowpass(sample_rate), SavitzkyGolay()]
        if frame_length is None or frame_length >= 512:
            out.append(WienerSTFTDecisionDirected())
    elif kind in ("quantize", "bandwidth"):
        factor = int(degradation["factor"])
        out += [
            HoldInterp(factor, "linear"),
            HoldInterp(factor, "cubic"),
            BandlimitedInterp(factor),
        ]
    elif kind == "bitdepth":
        out += [Lowpass(sample_rate), SavitzkyGolay()]
    elif kind == "clip":
        out.append(ClipRepair())
    elif kind == "dropout":
        out += [GapFill("linear"), GapFill("cubic")]
    return out


# --------------------------------------------------------------------------------------------
# sine-dictionary oracle

_ORACLE_KINDS = ("noise", "quantize", "bitdepth", "clip", "dropout")


def _int_range(bounds) -> np.ndarray:
    lo, hi = bounds
    return np.arange(math.ceil(lo), math.floor(hi) + 1)


def _held_mask(t: int, factor: int) -> np.ndarray:
    return (np.arange(t) % max(int(factor), 1)) == 0


def _first_minimum(resid: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Index of the lowest-frequency atom whose residual ties the minimum.

    Aliased atoms (e.g. f and K - f seen only at held instants) fit equally well; rounding
    would otherwise pick one at random, while preferring the lowest frequency is the usual
    band-limited reading of ambiguous samples and makes the oracle deterministic.
    """
    tol = 1e-9 * energy + 1e-12
    return np.argmax(resid <= resid.min(axis=1, keepdims=True) + tol, axis=1)


class _SineOracle:
    """Masked least-squares fit of the known sine dictionary, vectorised over frames.

    For each atom the amplitude (zero phase) or the sin/cos pair (random phase) is fitted on the
    trusted samples only (all samples for noise and bit depth, the held instants for
    sample-and-hold, unclipped samples for clipping, non-gap samples for dropout), constrained to
    the known amplitude range, and the atom with the smallest masked residual wins. For noise the
    fit is refitted twice after masking samples with robust-outlier residuals (impulses).
    Amplitudes that no trusted sample constrains take their conditional mean: mid-range for a
    zero-phase atom, zero for a phase component that is invisible.
    """

    name = "oracle"

    def __init__(self, signal: dict, degradation: dict) -> None:
        self.freqs = _int_range(signal["f_range"])
        self.amp_lo, self.amp_hi = (float(a) for a in signal["amplitude"])
        self.random_phase = signal.get("phase", "zero") == "random"
        self.degradation = degradation

    def _weights(self, y: np.ndarray) -> np.ndarray:
        kind = self.degradation["kind"]
        t = y.shape[-1]
        if kind == "quantize":
            return np.broadcast_to(_held_mask(t, self.degradation["factor"]), y.shape)
        if kind == "clip":
            level = np.max(np.abs(y), axis=1, keepdims=True)
            return np.abs(y) < level * (1 - 1e-6)
        if kind == "dropout":
            return ~_zero_runs(y)
        return np.ones_like(y, dtype=bool)

    def _fit(self, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        t = y.shape[-1]
        phase = 2 * np.pi * np.outer(self.freqs, np.arange(t)) / t
        sin, cos = np.sin(phase), np.cos(phase)
        w = w.astype(np.float64)
        wy = w * y
        yy = np.sum(wy * y, axis=1, keepdims=True)
        tiny = 1e-9 * np.maximum(np.sum(w, axis=1, keepdims=True), 1.0)
        if not self.random_phase:
            num, den = wy @ sin.T, w @ (sin**2).T
            visible = den > tiny
            amp = np.where(visible, num / np.where(visible, den, 1.0), 0.5 * (self.amp_lo + self.amp_hi))
            amp = np.clip(amp, self.amp_lo, self.amp_hi)
            resid = yy - 2 * amp * num + amp**2 * den
            best = _first_minimum(resid, yy)
            rows = np.arange(len(y))
            return amp[rows, best][:, None] * sin[best]
        b = np.stack([wy @ sin.T, wy @ cos.T], axis=-1)  # (n, F, 2)
        gss, gcc, gsc = w @ (sin**2).T, w @ (cos**2).T, w @ (sin * cos).T
        gram = np.stack([np.stack([gss, gsc], -1), np.stack([gsc, gcc], -1)], -2)
        scale = np.maximum(gss + gcc, tiny)[..., None, None]
        coef = np.einsum(
            "nfij,nfj->nfi",
            np.linalg.pinv(gram / scale, rcond=1e-9, hermitian=True),
            b / scale[..., 0],
        )
        amp = np.linalg.norm(coef, axis=-1, keepdims=True)
        full_rank = (np.abs(gss * gcc - gsc**2) > 1e-9 * scale[..., 0, 0] ** 2)[..., None]
        target = np.clip(amp, self.amp_lo, self.amp_hi)
        target = np.where(full_rank | (amp > self.amp_hi), target, amp)
        coef = coef * np.where(amp > 0, target / np.where(amp > 0, amp, 1.0), 0.0)
        resid = yy - 2 * np.sum(coef * b, -1) + np.einsum("nfi,nfij,nfj->nf", coef, gram, coef)
        best = _first_minimum(resid, yy)
        c = coef[np.arange(len(y)), best]
        return c[:, :1] * sin[best] + c[:, 1:] * cos[best]

    def __call__(self, degraded: np.ndarray) -> np.ndarray:
        y, shape = _frames(degraded)
        return _chunked(self._estimate, y).reshape(shape)

    def _estimate(self, y: np.ndarray) -> np.ndarray:
        w = self._weights(y)
        est = self._fit(y, w)
        if self.degradation["kind"] == "noise":
            for _ in range(2):
                r = np.abs(y - est)
                sigma = 1.4826 * np.median(r, axis=1, keepdims=True)
                inlier = (r <= 4 * sigma) | (sigma == 0)
                est = self._fit(y, w & inlier)
        return est


def oracle(signal: dict, degradation: dict) -> Callable[[np.ndarray], np.ndarray] | None:
    """Known-dictionary oracle for the ``sine`` family, or None where no oracle is defined.

    Defined for noise, quantize (sample-and-hold), bitdepth, clip and dropout; not for bandwidth,
    whose anti-alias filter response would have to be modelled exactly.
    """
    if signal.get("family") != "sine" or degradation.get("kind") not in _ORACLE_KINDS:
        return None
    return _SineOracle(signal, degradation)


def oracle_task_facts(signal: dict, degradation: dict, frame_length: int) -> list[str]:
    """Degeneracies of the sine dictionary on the samples the degradation leaves trustworthy.

    Computed from the atoms restricted to the static trusted samples (the held instants for
    sample-and-hold, every sample for noise and bit depth): atoms with ~zero energy there are
    invisible, and pairs whose restricted atoms coincide or are opposite (zero phase), or span the
    same sin/cos plane (random phase), cannot be told apart by any method. Kinds whose trusted
    samples depend on the data (clip, dropout) or have no oracle yield no facts.
    """
    if signal.get("family") != "sine":
        return []
    kind = degradation.get("kind")
    t = int(frame_length)
    if kind == "quantize":
        factor = int(degradation["factor"])
        mask = _held_mask(t, factor)
        where = f"the {int(mask.sum())} held instants n = {factor}*m"
    elif kind in ("noise", "bitdepth"):
        mask = np.ones(t, dtype=bool)
        where = f"all {t} samples"
    else:
        return []
    freqs = _int_range(signal["f_range"])
    random_phase = signal.get("phase", "zero") == "random"
    n = np.arange(t)[mask]
    facts: list[str] = []
    if kind == "quantize":
        nyq = t / (2 * factor)
        above = [int(f) for f in freqs if f > nyq]
        facts.append(
            f"quantize K={factor}, T={t}: held-sample Nyquist is {nyq:g} cycles/frame"
            + (f"; atoms f={above} lie above it and alias" if above else "")
        )
    tol = 1e-9 * max(len(n), 1)
    amp_lo, amp_hi = signal["amplitude"]
    if not random_phase:
        atoms = np.sin(2 * np.pi * np.outer(freqs, n) / t)
        energy = np.sum(atoms**2, axis=1)
        visible = energy > tol
        for f in freqs[~visible]:
            facts.append(f"atom f={f} is zero at {where}: invisible, amplitude unobservable")
        unit = atoms / np.sqrt(np.where(visible, energy, 1.0))[:, None]
        cos_sim = unit @ unit.T
        for i, j in zip(*np.triu_indices(len(freqs), 1), strict=True):
            if not (visible[i] and visible[j]):
                continue
            fi, fj = int(freqs[i]), int(freqs[j])
            if cos_sim[i, j] > 1 - 1e-9:
                facts.append(f"atoms f={fi} and f={fj} are identical at {where}: indistinguishable")
            elif cos_sim[i, j] < -1 + 1e-9:
                sign_note = (
                    "the amplitude range is one-signed, so it resolves them"
                    if amp_lo * amp_hi > 0
                    else "the amplitude range allows both signs, so they are indistinguishable"
                )
                facts.append(
                    f"atoms f={fi} and f={fj} are equal up to sign at {where}: distinguishable "
                    f"only through the amplitude's sign ({sign_note})"
                )
        return facts
    # random phase: compare the sin/cos planes of each atom on the trusted samples
    projections, ranks = [], []
    for f in freqs:
        basis = np.stack([np.sin(2 * np.pi * f * n / t), np.cos(2 * np.pi * f * n / t)], axis=1)
        u, s, _ = np.linalg.svd(basis, full_matrices=False)
        rank = int(np.sum(s**2 > tol))
        ranks.append(rank)
        projections.append(u[:, :rank] @ u[:, :rank].T)
        if rank == 0:
            facts.append(f"atom f={f} is zero at {where}: invisible for every phase")
        elif rank == 1:
            facts.append(f"atom f={f} shows a single phase component at {where}: phase ambiguous")
    for i, j in zip(*np.triu_indices(len(freqs), 1), strict=True):
        if ranks[i] == 0 or ranks[i] != ranks[j]:
            continue
        if np.allclose(projections[i], projections[j], atol=1e-8):
            facts.append(
                f"atoms f={int(freqs[i])} and f={int(freqs[j])} span the same sin/cos plane at "
                f"{where}: indistinguishable (the random phase absorbs the difference)"
            )
    return facts


# ----------------------------------------------------------------------------- task facts and bounds
def bandwidth_task_facts(signal: dict, degradation: dict, sample_rate: int) -> list[str]:
    """What bandwidth reduction leaves predictable, for the report next to the bound's gain."""
    if degradation.get("kind") != "bandwidth":
        return []
    cutoff = sample_rate / (2 * int(degradation["factor"]))
    facts = [f"bandwidth factor {degradation['factor']} at {sample_rate} Hz: nothing above "
             f"{cutoff:g} Hz survives"]
    if signal.get("family") == "harmonic":
        facts.append(
            "the harmonic family draws each harmonic's phase independently, so harmonics above "
            f"{cutoff:g} Hz cannot be predicted from the band below; what a model can restore is "
            "the filter's transition band and what leaks across the cutoff within a frame"
        )
    return facts


def ideal_mask_bound(clean: np.ndarray, degraded: np.ndarray, nperseg: int = 512) -> np.ndarray:
    """Phase-sensitive ideal mask: the best any real-valued STFT gain can do, given the clean.

    Per bin, the real gain g in [0, 1] minimising |g D - S|^2 is Re(S D*) / |D|^2 (clipped).
    A real mask on this STFT (Hann, `nperseg`, hop nperseg/4) keeps the noisy phase, so its
    error is at least this one's: the ceiling for such masks (a mask on other frames, like the
    stft_mask net's, is bounded only approximately), and not a method itself.
    """
    c = np.asarray(clean, dtype=np.float64)
    d = np.asarray(degraded, dtype=np.float64)
    t = c.shape[-1]
    nperseg = int(min(nperseg, 2 ** int(math.log2(max(t // 2, 8)))))
    kw = {"nperseg": nperseg, "noverlap": 3 * nperseg // 4, "axis": -1}
    s, z = sps.stft(c, **kw)[2], sps.stft(d, **kw)[2]
    gain = np.clip(np.real(s * np.conj(z)) / (np.abs(z) ** 2 + 1e-20), 0.0, 1.0)
    y = sps.istft(gain * z, nperseg=nperseg, noverlap=3 * nperseg // 4)[1]
    return y[..., :t].astype(np.float32)
