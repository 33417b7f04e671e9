"""Degradations: signal (n, T) -> degraded signal (n, T), same rate and length. numpy/scipy only.

Each function is vectorized over the batch of frames, draws its randomness from the Generator it is
given, and returns ``(degraded, draws)`` with one value per frame in ``draws`` for the manifest.
"""

from __future__ import annotations

import numpy as np
from scipy import signal as sps
from scipy.interpolate import CubicSpline

from pipeline.config import (
    BandwidthDeg,
    BitdepthDeg,
    ClipDeg,
    DropoutDeg,
    NoiseDeg,
    QuantizeDeg,
    SpeechNoiseDeg,
)
from pipeline.dsp.mixing import speech_noise_mix


def _rms(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(np.square(x, dtype=np.float64), axis=-1))


def sparse_nonzero(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero`` of a 2-D boolean mask with few True values, same indices in the same
    order, about 3x faster: the mask is scanned 8 bytes at a time as uint64 words and only the
    words holding a True are expanded."""
    flat = np.ascontiguousarray(mask, dtype=bool).reshape(-1)
    n8 = flat.size // 8 * 8
    words = np.flatnonzero(flat[:n8].view(np.uint64))
    cand = (words[:, None] * 8 + np.arange(8)).reshape(-1)
    idx = np.concatenate([cand[flat[cand]], n8 + np.flatnonzero(flat[n8:])])
    return np.divmod(idx, mask.shape[1])


# Rows per block in `noise`: ~64 Ki samples (256 KiB of float32), so a block's draws are still in
# cache when they are scaled and tested instead of making another pass over the whole array.
_BLOCK_SAMPLES = 1 << 16


def noise(cfg: NoiseDeg, x: np.ndarray, rng: np.random.Generator):
    """Gaussian noise at a per-frame std (or per-frame SNR) plus sparse ±a impulses.

    The (n, T) draws are made block by block with ``out=``: the Generator fills them from the
    same stream as one (n, T) call, so the frames do not depend on the block size.
    """
    n, T = x.shape
    if cfg.std is not None:
        std = rng.uniform(*cfg.std, size=n)
    else:
        snr = rng.uniform(*cfg.snr_db, size=n)
        std = _rms(x) / 10 ** (snr / 20)
    std32 = std.astype(np.float32)[:, None]
    step = max(1, _BLOCK_SAMPLES // max(T, 1))
    y = np.empty((n, T), np.float32)
    for s in range(0, n, step):
        block = y[s : s + step]
        rng.standard_normal(dtype=np.float32, out=block)
        block *= std32[s : s + step]
        block += x[s : s + step]
    p = rng.uniform(*cfg.impulse_prob, size=n).astype(np.float32)
    a = rng.uniform(*cfg.impulse_amp, size=n).astype(np.float32)
    u = np.empty((min(step, n), T), np.float32)
    rows, cols, u_hit = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0, np.float32)]
    for s in range(0, n, step):
        ub = u[: min(step, n - s)]
        rng.random(dtype=np.float32, out=ub)
        r, c = sparse_nonzero(ub < p[s : s + step, None])  # impulses are sparse: only the hits
        rows.append(r + s)
        cols.append(c)
        u_hit.append(ub[r, c])
    rows, cols, u_hit = (np.concatenate(v) for v in (rows, cols, u_hit))
    # Reuse the same uniform for the sign: given a hit (u < p), u / p is uniform on [0, 1).
    sign = np.where(u_hit < 0.5 * p[rows], np.float32(-1), np.float32(1))
    y[rows, cols] += sign * a[rows]
    return y, {
        "noise_std": std.astype(np.float32),
        "impulse_prob": p,
        "impulse_amp": a,
        "n_impulses": np.bincount(rows, minlength=n),
    }


def quantize(cfg: QuantizeDeg, x: np.ndarray, rng: np.random.Generator | None = None):
    """Sample-and-hold: y[n] = x[K * floor(n / K)] (exact, a gather)."""
    T = x.shape[-1]
    held = (np.arange(T) // cfg.factor) * cfg.factor
    return np.ascontiguousarray(x[..., held]), {}


def bitdepth(cfg: BitdepthDeg, x: np.ndarray, rng: np.random.Generator):
    """Mid-tread amplitude quantization to `bits` over [-1, 1], optionally with TPDF dither."""
    step = np.float32(2.0 / 2**cfg.bits)
    z = x / step
    if cfg.dither:
        z = z + (rng.random(x.shape, dtype=np.float32) - rng.random(x.shape, dtype=np.float32))
    y = np.clip(np.round(z) * step, -1.0, 1.0)
    return y.astype(np.float32), {}


def lowpass_sos(factor: int, order: int = 8, ripple_db: float = 0.05) -> np.ndarray:
    """Chebyshev I anti-alias filter at 0.8 of the decimated Nyquist (scipy.signal.decimate's)."""
    return sps.cheby1(order, ripple_db, 0.8 / factor, output="sos")


def bandwidth(cfg: BandwidthDeg, x: np.ndarray, rng: np.random.Generator | None = None):
    """Kuleshov et al.: low-pass, keep every r-th sample, cubic spline back to the full rate."""
    T = x.shape[-1]
    sos = lowpass_sos(cfg.factor, cfg.order, cfg.ripple_db)
    padlen = min(3 * (2 * len(sos) + 1), T - 1)
    low = sps.sosfiltfilt(sos, x, axis=-1, padlen=padlen)
    keep = np.arange(0, T, cfg.factor)
    y = CubicSpline(keep, low[..., keep], axis=-1)(np.arange(T))
    return y.astype(np.float32), {}


def clip(cfg: ClipDeg, x: np.ndarray, rng: np.random.Generator):
    """Hard clipping at a per-frame fraction of the frame's own peak."""
    level = rng.uniform(*cfg.level, size=x.shape[0]).astype(np.float32)
    thr = (level * np.abs(x).max(axis=-1))[:, None]
    return np.clip(x, -thr, thr).astype(np.float32), {"clip_level": level}


def dropout(cfg: DropoutDeg, x: np.ndarray, rng: np.random.Generator):
    """Packet-loss style zeroed gaps: gaps start with a per-frame probability per sample."""
    n, T = x.shape
    p = rng.uniform(*cfg.gap_prob, size=n).astype(np.float32)
    length = rng.integers(cfg.gap_length[0], cfg.gap_length[1] + 1, size=n)
    starts = rng.random((n, T), dtype=np.float32) < p[:, None]
    pos = np.arange(T)
    last_start = np.maximum.accumulate(np.where(starts, pos, -(10**9)), axis=1)
    gap = (pos - last_start) < length[:, None]
    y = np.where(gap, np.float32(0), x)
    return y.astype(np.float32), {"gap_prob": p, "gap_length": length, "n_gaps": starts.sum(1)}


def speech_noise(cfg: SpeechNoiseDeg, x: np.ndarray, rng: np.random.Generator, *,
                 sample_rate: float, speakers=None, music=None):
    """Real-world noise at an active-speech SNR from `cfg.snr_db`, one kind per frame.

    Babble talks over with other frames of this batch, never of the frame's own speaker
    (`speakers`, one id per frame; without them, never the frame itself); `music` is a pool
    of music clips (rows) for the music kind. Unclipped: float frames may exceed +-1.
    """
    n = len(x)
    ids = np.arange(n) if speakers is None else np.asarray(speakers)
    noisy, draws = speech_noise_mix(rng, x, cfg.noises.kinds(), cfg.snr_db,
                                    sample_rate=sample_rate, pool=x, pool_ids=ids, target_ids=ids,
                                    music=music, frame_ms=cfg.frame_ms, vad_db=cfg.vad_db)
    return noisy, draws


_APPLY = {
    NoiseDeg: noise,
    QuantizeDeg: quantize,
    BitdepthDeg: bitdepth,
    BandwidthDeg: bandwidth,
    ClipDeg: clip,
    DropoutDeg: dropout,
}


def apply(cfg, x: np.ndarray, rng: np.random.Generator, **context):
    """Degrade a batch of frames (n, T) -> (degraded (n, T) float32, per-frame draws).

    `context` (sample_rate, speakers, music) is what `speech_noise` needs besides the frames.
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float32))
    if isinstance(cfg, SpeechNoiseDeg):
        if "sample_rate" not in context:
            raise ValueError("the speech_noise degradation needs the sample rate")
        return speech_noise(cfg, x, rng, **context)
    return _APPLY[type(cfg)](cfg, x, rng)


def apply_long(cfg, x: np.ndarray, rng: np.random.Generator, frame_length: int,
               sample_rate: float | None = None) -> np.ndarray:
    """Degrade a whole signal (L,) with the per-frame statistics of training frames.

    The signal is cut into consecutive frames of `frame_length` (the last one zero-padded), so
    per-frame draws (noise level, SNR, clip level) change every frame as in the dataset; the
    filters of `bandwidth` run over the whole signal so there are no seams.
    """
    x = np.asarray(x, dtype=np.float32)
    L = len(x)
    if L == 0:
        return x.copy()
    if isinstance(cfg, (BandwidthDeg, QuantizeDeg)):
        return apply(cfg, x[None, :], rng)[0][0][:L]
    if isinstance(cfg, SpeechNoiseDeg):
        # One noise over the whole signal; kinds that need other recordings (babble, music)
        # have none here, so they are left out.
        kinds = cfg.noises.model_copy(update={k: getattr(cfg.noises, k).model_copy(
            update={"weight": 0.0}) for k in ("babble", "music")})
        if not any(v["weight"] > 0 for v in kinds.kinds().values()):
            raise ValueError("speech_noise on one recording needs a kind other than babble/music")
        deg = cfg.model_copy(update={"noises": kinds})
        return apply(deg, x[None, :], rng, sample_rate=sample_rate)[0][0][:L]
    n = -(-L // frame_length)
    frames = np.zeros((n, frame_length), np.float32)
    frames.reshape(-1)[:L] = x
    y, _ = apply(cfg, frames, rng)
    return y.reshape(-1)[:L]
