"""Reconstruction metrics on batches of frames (numpy only).

Every per-frame metric takes arrays of shape ``(..., T)`` (typically ``(n, T)``; ``(T,)`` is one
frame) and returns one value per frame with shape ``(...)``, so a single frame yields a 0-d array.
All arithmetic is done in float64 so float32 inputs do not lose precision in energy sums.
Decibel metrics are clipped to ``[-cap, cap]`` so that perfect reconstructions (zero error) and
degenerate references give finite numbers that can be averaged and logged.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "SNR_BUCKETS",
    "SNR_BUCKET_LABELS",
    "SNR_CAP_DB",
    "SPEECH_SNR_CENTRES",
    "aggregate_snr_db",
    "lsd",
    "si_sdr_db",
    "snr_bucket",
    "snr_db",
    "speech_snr_bucket",
    "summarize",
]

# Bucket edges for grouping frames by the SNR of their degraded input; a value equal to an
# interior edge belongs to the bucket on its right (left-closed intervals).
SNR_BUCKETS: tuple[float, ...] = (-np.inf, 0.0, 10.0, 20.0, np.inf)
SNR_BUCKET_LABELS: tuple[str, ...] = ("<0", "0-10", "10-20", ">20")

SNR_CAP_DB = 100.0  # evaluation's cap of every dB figure (the functions' default)

# Speech tables group frames in 5 dB buckets centred on these input SNRs: [c - 2.5, c + 2.5).
SPEECH_SNR_CENTRES: tuple[float, ...] = (-5.0, 0.0, 5.0, 10.0, 15.0, 20.0)
SPEECH_SNR_WIDTH = 5.0

_LOG_POWER_FLOOR = 1e-10


def _pair(estimate, reference) -> tuple[np.ndarray, np.ndarray]:
    est = np.asarray(estimate, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if est.shape != ref.shape:
        raise ValueError(f"shape mismatch: estimate {est.shape} vs reference {ref.shape}")
    if est.ndim == 0:
        raise ValueError("frames must have at least one (time) axis")
    return est, ref


def _ratio_db(signal_energy: np.ndarray, error_energy: np.ndarray, cap: float) -> np.ndarray:
    """10*log10(signal/error) clipped to [-cap, cap].

    Zero error means a perfect estimate, so it maps to +cap even when the signal is silent; zero
    signal with non-zero error maps to -cap.
    """
    tiny = np.finfo(np.float64).tiny
    with np.errstate(divide="ignore", invalid="ignore"):
        db = 10.0 * (np.log10(np.maximum(signal_energy, tiny)) - np.log10(error_energy))
    db = np.where(error_energy <= 0.0, cap, db)
    return np.clip(db, -cap, cap)


def snr_db(estimate, reference, cap: float = 100.0) -> np.ndarray:
    """Per-frame SNR in dB: 10*log10(sum ref^2 / sum (est - ref)^2), clipped to [-cap, cap].

    An exactly correct frame gives ``cap`` (also for an all-zero reference); an all-zero
    reference with any error gives ``-cap``. Clipping keeps means finite for logging.
    """
    est, ref = _pair(estimate, reference)
    return _ratio_db(np.sum(ref**2, axis=-1), np.sum((est - ref) ** 2, axis=-1), cap)


def aggregate_snr_db(estimate, reference, cap: float = 100.0) -> float:
    """SNR of the whole set (total reference energy / total error energy), in dB.

    Unlike the mean of per-frame SNRs this weights loud frames more, matching an MSE objective.
    """
    est, ref = _pair(estimate, reference)
    return float(_ratio_db(np.sum(ref**2), np.sum((est - ref) ** 2), cap))


def si_sdr_db(estimate, reference, cap: float = 100.0) -> np.ndarray:
    """Per-frame scale-invariant SDR in dB, clipped to [-cap, cap].

    The reference is scaled by the least-squares gain alpha = <est, ref>/<ref, ref> (which may be
    negative, so a sign-flipped estimate is perfect) and SI-SDR = 10*log10(|alpha ref|^2 /
    |est - alpha ref|^2). No zero-mean is applied: the DC offset is part of the signal here
    because frames are short and a DC error is a real reconstruction error. An estimate that is
    orthogonal to (or a zero) reference carries no target and gives ``-cap``.
    """
    est, ref = _pair(estimate, reference)
    ref_energy = np.sum(ref**2, axis=-1)
    dot = np.sum(est * ref, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(ref_energy > 0.0, dot / ref_energy, 0.0)
    target = alpha[..., None] * ref
    target_energy = np.sum(target**2, axis=-1)
    noise_energy = np.sum((est - target) ** 2, axis=-1)
    db = _ratio_db(target_energy, noise_energy, cap)
    return np.where(target_energy > 0.0, db, -cap)


def _log_power_spectrogram(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """log10 power of a Hann-windowed framed rfft, shape (..., n_windows, n_fft // 2 + 1).

    The tail is zero-padded so that every sample is covered by at least one window.
    """
    length = x.shape[-1]
    n_windows = 1 + int(np.ceil(max(length - n_fft, 0) / hop))
    pad = (n_windows - 1) * hop + n_fft - length
    if pad:
        x = np.concatenate([x, np.zeros(x.shape[:-1] + (pad,))], axis=-1)
    windows = np.lib.stride_tricks.sliding_window_view(x, n_fft, axis=-1)[..., ::hop, :]
    # Periodic Hann (as scipy.signal.get_window("hann", n_fft)).
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)
    power = np.abs(np.fft.rfft(windows * hann, axis=-1)) ** 2
    return np.log10(np.maximum(power, _LOG_POWER_FLOOR))


def lsd(estimate, reference, n_fft: int = 256, hop: int | None = None) -> np.ndarray:
    """Per-frame log-spectral distance (in log10-power units, as in Kuleshov et al. 2017).

    LSD = mean over STFT windows of sqrt(mean over frequency of (log10 P_ref - log10 P_est)^2)
    with a Hann window, power floored at 1e-10 so silent bins stay finite (power is unnormalised,
    so the floor is relative to raw |rfft|^2). If a frame is shorter than ``n_fft`` the window is
    shrunk to the frame length, so short frames get a single full-frame spectrum rather than an
    error. ``hop`` defaults to ``n_fft // 4``.
    """
    est, ref = _pair(estimate, reference)
    length = est.shape[-1]
    n_fft = int(min(n_fft, length))
    hop = max(1, n_fft // 4) if hop is None else int(hop)
    if n_fft < 1 or hop < 1:
        raise ValueError("n_fft and hop must be positive")
    diff = _log_power_spectrogram(ref, n_fft, hop) - _log_power_spectrogram(est, n_fft, hop)
    return np.mean(np.sqrt(np.mean(diff**2, axis=-1)), axis=-1)


def summarize(values) -> dict[str, float]:
    """Mean, median, 10th and 90th percentile as plain floats (NaN for an empty input).

    Percentiles show the spread that a mean hides (e.g. a few failed frames).
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        return {
            "mean": float("nan"),
            "median": float("nan"),
            "p10": float("nan"),
            "p90": float("nan"),
        }
    p10, median, p90 = np.percentile(v, [10.0, 50.0, 90.0])
    return {
        "mean": float(np.mean(v)),
        "median": float(median),
        "p10": float(p10),
        "p90": float(p90),
    }


def snr_bucket(input_snr_db) -> np.ndarray:
    """Label each input SNR with its bucket from ``SNR_BUCKET_LABELS`` (left-closed edges).

    Used to report reconstruction quality separately for hard and easy degraded inputs.
    """
    x = np.asarray(input_snr_db, dtype=np.float64)
    if np.any(np.isnan(x)):
        raise ValueError("input SNR contains NaN")
    idx = np.searchsorted(np.asarray(SNR_BUCKETS[1:-1]), x, side="right")
    return np.asarray(SNR_BUCKET_LABELS)[idx]


def speech_snr_bucket(snr) -> np.ndarray:
    """The centre of each SNR's 5 dB bucket in ``SPEECH_SNR_CENTRES`` (left-closed: -2.5 dB is
    in the 0 dB bucket); NaN outside [-7.5, 22.5) and for NaN input (no bucket, not an error)."""
    x = np.asarray(snr, dtype=np.float64)
    centres = np.asarray(SPEECH_SNR_CENTRES)
    half = SPEECH_SNR_WIDTH / 2
    with np.errstate(invalid="ignore"):
        k = np.floor((x - (centres[0] - half)) / SPEECH_SNR_WIDTH)
        inside = (k >= 0) & (k < len(centres))
    return np.where(inside, centres[0] + SPEECH_SNR_WIDTH * np.where(inside, k, 0), np.nan)
