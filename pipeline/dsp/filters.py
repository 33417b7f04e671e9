"""Filters designed from training data (numpy only, no TensorFlow): inputs the models build on."""

from __future__ import annotations

import math

import numpy as np

_CHUNK_SAMPLES = 1 << 20


def wiener_fir(clean: np.ndarray, degraded: np.ndarray, taps: int, max_gain_db: float = 30.0) -> np.ndarray:
    """Zero-phase FIR from the training set's Wiener transfer H = Sxy / Syy, for frame interiors.

    Spectra come from Hann-tapered frames, so the estimate sees the degradation's response
    inside frames rather than the broadband junk at their edges (which would otherwise dominate
    the degraded power wherever the degradation removed most of the signal). |H| is capped at
    `max_gain_db`, the response is cut to `taps` (odd) lags under a Hann window. For `bandwidth`
    this is the steep boost that undoes the anti-alias filter's transition band (up to ~40 dB
    near the decimated Nyquist), which a network would need thousands of steps to learn from
    the few percent of energy there; given as an input channel it costs nothing. Returns
    convolution taps, centred: ``np.convolve(x, h, "same")`` applies it.
    """
    if taps < 1 or taps % 2 == 0:
        raise ValueError(f"taps must be odd and positive (got {taps})")
    clean, degraded = np.asarray(clean), np.asarray(degraded)
    t = clean.shape[-1]
    n_fft = 1 << int(math.ceil(math.log2(max(2 * t, taps + 1))))
    taper = np.hanning(t)
    cross = np.zeros(n_fft // 2 + 1, np.complex128)
    power = np.zeros(n_fft // 2 + 1, np.float64)
    step = max(1, _CHUNK_SAMPLES // n_fft)
    for i in range(0, clean.shape[0], step):
        c = np.fft.rfft(np.asarray(clean[i : i + step], np.float64) * taper, n_fft, axis=-1)
        d = np.fft.rfft(np.asarray(degraded[i : i + step], np.float64) * taper, n_fft, axis=-1)
        cross += (c * np.conj(d)).sum(0)
        power += (np.abs(d) ** 2).sum(0)
    response = cross / np.maximum(power, 1e-12 * power.max() + 1e-30)
    cap = 10.0 ** (max_gain_db / 20.0)
    magnitude = np.abs(response)
    response = np.where(magnitude > cap, response * (cap / np.maximum(magnitude, 1e-30)), response)
    impulse = np.fft.irfft(response, n_fft)  # lag k at index k mod n_fft
    half = taps // 2
    h = np.concatenate([impulse[n_fft - half :], impulse[: half + 1]])
    return (h * np.hanning(taps + 2)[1:-1]).astype(np.float32)
