"""Real-world noises for speech denoising, and the mixer that sets an active-speech SNR.

numpy/scipy only. A generator is ``f(rng, n_samples, sample_rate, *, n_clips=1, **knobs)`` and
returns ``(n_clips, n_samples)`` float32; each knob is a scalar or one value per clip, and only
the noise itself is drawn from ``rng`` (the knobs are drawn by :func:`speech_noise_mix` so they
can go into the manifest). Stationary noises come out at unit RMS; ``clicks`` keeps its absolute
amplitudes (``a`` means ±a). The level is set by :func:`mix_at_snr` anyway.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft
from scipy import signal as sps
from scipy.ndimage import uniform_filter1d

SNR_CAP_DB = 100.0  # reported when there is no noise on the active speech (as dsp.metrics caps)


def _per_clip(value, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (n,))


def _unit_rms(y: np.ndarray) -> np.ndarray:
    rms = np.sqrt(np.mean(np.square(y, dtype=np.float64), axis=-1, keepdims=True))
    out = np.zeros(y.shape, np.float32)
    np.divide(y, rms, out=out, where=rms > 0, casting="unsafe")
    return out


def _slow_curve(rng: np.random.Generator, n_clips: int, n_samples: int, sample_rate: float,
                rate_hz, step: int = 16) -> np.ndarray:
    """A smooth random curve, about N(0, 1): Gaussian knots every 1/rate_hz s, cosine-joined.

    Evaluated every `step` samples and linearly filled in (pure broadcasting, no gather over
    samples), which is exact enough for curves far slower than 1 kHz.
    """
    rate = _per_clip(rate_hz, n_clips).astype(np.float32)
    n_coarse = -(-n_samples // step) + 1
    t = np.arange(n_coarse, dtype=np.float32) * np.float32(step / sample_rate)
    pos = t[None, :] * rate[:, None] + rng.random((n_clips, 1), dtype=np.float32)
    floor = np.floor(pos)
    i0 = floor.astype(np.int64)
    knots = rng.standard_normal((n_clips, int(i0.max(initial=0)) + 2), dtype=np.float32)
    w = (1 - np.cos(np.float32(np.pi) * (pos - floor))) / 2
    c0 = np.take_along_axis(knots, i0, axis=1)
    c = c0 + w * (np.take_along_axis(knots, i0 + 1, axis=1) - c0)
    frac = np.arange(step, dtype=np.float32) / np.float32(step)
    fine = c[:, :-1, None] + np.diff(c, axis=1)[:, :, None] * frac
    return fine.reshape(n_clips, -1)[:, :n_samples]


# ----------------------------------------------------------------------------- stationary noises


def white(rng: np.random.Generator, n_samples: int, sample_rate: float, *, n_clips: int = 1):
    """White Gaussian noise, unit variance (sample_rate is unused: white is rate-free)."""
    return rng.standard_normal((n_clips, n_samples), dtype=np.float32)


def colored(rng: np.random.Generator, n_samples: int, sample_rate: float, *, n_clips: int = 1,
            exponent=1.0, f_min_hz: float = 20.0):
    """1/f^a noise (power slope -a: pink a=1, brown a=2) by shaping white noise's rfft.

    The shaping is flat below `f_min_hz` and DC is removed, so brown noise does not drift.
    """
    a = _per_clip(exponent, n_clips)
    spec = sfft.rfft(white(rng, n_samples, sample_rate, n_clips=n_clips), axis=-1)
    f = np.maximum(np.fft.rfftfreq(n_samples, 1.0 / sample_rate), f_min_hz)
    spec *= np.exp(np.outer(-0.5 * a, np.log(f))).astype(np.float32)
    spec[:, 0] = 0
    return _unit_rms(sfft.irfft(spec, n=n_samples, axis=-1))


def hum(rng: np.random.Generator, n_samples: int, sample_rate: float, *, n_clips: int = 1,
        mains_hz=50.0, harmonics=10, decay_db=6.0, level_jitter_db=0.0, jitter=0.001,
        hiss_db=-30.0):
    """Mains hum: f0 = 50/60 Hz drifting slowly by `jitter` (relative std), `harmonics` partials
    whose levels fall `decay_db` per harmonic ± N(0, level_jitter_db), plus white hiss at
    `hiss_db` relative to the hum. Harmonics at or above 0.95 Nyquist are dropped (no aliasing).
    """
    f0 = _per_clip(mains_hz, n_clips)
    n_h = _per_clip(harmonics, n_clips).astype(np.int64)
    jit = _per_clip(jitter, n_clips)
    drift = _slow_curve(rng, n_clips, n_samples, sample_rate, 2.0) * jit.astype(np.float32)[:, None]
    # Cycles of the fundamental: the steady part exactly (wrapped per f0 value), the small drift
    # as a float32 cumsum, so float32 sin of up to 40 cycles stays accurate to ~1e-5 rad.
    steady = np.zeros((n_clips, n_samples), np.float32)
    for f in np.unique(f0):  # a loop over the distinct mains frequencies (50, 60)
        steady[f0 == f] = ((np.arange(n_samples) * (f / sample_rate)) % 1.0).astype(np.float32)
    cycles = steady + np.cumsum(drift, axis=1) * (f0 / sample_rate).astype(np.float32)[:, None]
    h_max = int(n_h.max(initial=0))
    h = np.arange(1, h_max + 1)
    level_db = (-_per_clip(decay_db, n_clips)[:, None] * (h - 1)
                + _per_clip(level_jitter_db, n_clips)[:, None] * rng.standard_normal((n_clips, h_max)))
    keep = (h[None, :] <= n_h[:, None]) & (h[None, :] * f0[:, None] * (1 + 3 * jit[:, None])
                                           < 0.95 * sample_rate / 2)
    amp = np.where(keep, 10 ** (level_db / 20), 0.0).astype(np.float32)
    phase0 = rng.random((n_clips, h_max), dtype=np.float32)
    y = np.zeros((n_clips, n_samples), np.float32)
    buf = np.empty_like(y)
    for k in range(h_max):  # a loop over partials (<= 40), each vectorized over clips x samples
        if amp[:, k].any():  # in place: one scratch buffer instead of five temporaries
            np.multiply(cycles, np.float32(k + 1), out=buf)
            buf += phase0[:, k, None]
            buf *= np.float32(2 * np.pi)
            np.sin(buf, out=buf)
            buf *= amp[:, k, None]
            y += buf
    hum_rms = np.sqrt(np.mean(np.square(y, dtype=np.float64), axis=-1))
    hiss = (hum_rms * 10 ** (_per_clip(hiss_db, n_clips) / 20)).astype(np.float32)
    y += hiss[:, None] * white(rng, n_samples, sample_rate, n_clips=n_clips)
    return _unit_rms(y)


def clicks(rng: np.random.Generator, n_samples: int, sample_rate: float, *, n_clips: int = 1,
           click_prob=1e-4, click_amp=0.5, crackle_prob=5e-3, crackle_amp=0.05,
           crackle_decay_ms=0.5):
    """Sparse ±click_amp impulses (the seed project's) plus crackle: dense N(0, crackle_amp)
    impulses, each ringing through its clip's short noise kernel decaying with crackle_decay_ms.
    """
    T = n_samples
    p = _per_clip(click_prob, n_clips).astype(np.float32)
    u = rng.random((n_clips, T), dtype=np.float32)
    rows, cols = np.nonzero(u < p[:, None])  # sparse: touch only the hit samples
    # given a hit (u < p), u / p is uniform on [0, 1): reuse it for the sign
    sign = np.where(u[rows, cols] < 0.5 * p[rows], np.float32(-1), np.float32(1))
    y = np.zeros((n_clips, T), np.float32)
    y[rows, cols] = sign * _per_clip(click_amp, n_clips).astype(np.float32)[rows]

    pc = _per_clip(crackle_prob, n_clips).astype(np.float32)
    rows, cols = np.nonzero(rng.random((n_clips, T), dtype=np.float32) < pc[:, None])
    if rows.size:
        imp = np.zeros((n_clips, T), np.float32)
        imp[rows, cols] = (_per_clip(crackle_amp, n_clips)[rows]
                           * rng.standard_normal(rows.size)).astype(np.float32)
        tau = _per_clip(crackle_decay_ms, n_clips) * 1e-3 * sample_rate  # in samples
        K = max(2, int(np.ceil(5 * tau.max())))
        kernel = rng.standard_normal((n_clips, K)) * np.exp(-np.arange(K)[None, :] / tau[:, None])
        kernel /= np.sqrt(np.sum(kernel**2, axis=1, keepdims=True))
        y += sps.oaconvolve(imp, kernel.astype(np.float32), axes=1)[:, :T]
    return y.astype(np.float32)


# ----------------------------------------------------------------------------- other audio


def _as_pool(clips) -> tuple[np.ndarray, np.ndarray]:
    """Clips of any lengths -> (zero-padded (n_pool, L) float32, lengths); empty clips refused."""
    if isinstance(clips, np.ndarray) and clips.ndim == 2:
        return clips.astype(np.float32, copy=False), np.full(len(clips), clips.shape[1])
    lengths = np.array([len(c) for c in clips], dtype=np.int64)
    data = np.zeros((len(clips), int(lengths.max(initial=1))), np.float32)
    for i, c in enumerate(clips):  # a loop over clips, not samples
        data[i, : len(c)] = c
    return data, lengths


def _windows(data: np.ndarray, lengths: np.ndarray, n_samples: int) -> np.ndarray:
    """Every excerpt of n_samples of every pool clip, looping short clips: a strided view
    (n_pool, L + 1, n_samples), so an excerpt from any offset is a row copy.
    """
    if (lengths < 1).any():
        raise ValueError("audio pools must not contain empty clips")
    L = data.shape[1]
    if (lengths == L).all():
        ext = np.tile(data, (1, -(-(L + n_samples) // L)))[:, : L + n_samples]
    else:
        ext = data[np.arange(len(data))[:, None], np.arange(L + n_samples)[None, :] % lengths[:, None]]
    return np.lib.stride_tricks.sliding_window_view(ext, n_samples, axis=1)


def _excerpts(rng: np.random.Generator, windows: np.ndarray, lengths: np.ndarray,
              idx: np.ndarray) -> np.ndarray:
    """Rows `idx` of the pool, each from a random offset: (*idx.shape, n_samples)."""
    return windows[idx, (rng.random(idx.shape) * lengths[idx]).astype(np.int64)]


def _pool_rms(data: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    rms = np.sqrt(np.sum(np.square(data, dtype=np.float64), axis=1) / lengths)
    return np.where(rms > 0, rms, 1.0).astype(np.float32)


def babble(rng: np.random.Generator, n_samples: int, sample_rate: float, *, n_clips: int = 1,
           pool, talkers=5, talker_level_db=(-3.0, 3.0), pool_ids=None, target_ids=None,
           return_sources: bool = False):
    """The sum of `talkers` distinct clips from `pool` (other speakers of the same split), each
    from a random offset, normalised to its clip's RMS and set to a level in `talker_level_db`.

    Pool entries whose `pool_ids` equals the clip's `target_ids` (its own clip or speaker) are
    never picked, so the target speech cannot leak into its own noise. With return_sources the
    picked pool rows come back too, (n_clips, max talkers), -1 where a clip has fewer.
    """
    data, lengths = _as_pool(pool)
    k = _per_clip(talkers, n_clips).astype(np.int64)
    eligible = np.ones((n_clips, len(data)), bool)
    if pool_ids is not None or target_ids is not None:
        if pool_ids is None or target_ids is None:
            raise ValueError("babble: give both pool_ids and target_ids (or neither)")
        eligible = np.asarray(pool_ids)[None, :] != np.asarray(target_ids)[:, None]
    short = eligible.sum(axis=1) < k
    if short.any():
        raise ValueError(f"babble: {int(short.sum())} clip(s) want more talkers than the pool has "
                         f"eligible clips ({int(eligible.sum(axis=1).min())}); use a larger pool")
    # Distinct talkers per clip without a loop: the k smallest random keys among the eligible.
    keys = np.where(eligible, rng.random(eligible.shape), 2.0)
    k_max = int(k.max(initial=0))
    picked = np.argsort(keys, axis=1)[:, :k_max]
    used = np.arange(k_max)[None, :] < k[:, None]
    gain_db = rng.uniform(*talker_level_db, size=(n_clips, k_max))
    gain = np.where(used, 10 ** (gain_db / 20), 0.0).astype(np.float32) / _pool_rms(data, lengths)[picked]
    windows = _windows(data, lengths, n_samples)
    y = np.zeros((n_clips, n_samples), np.float32)
    for j in range(k_max):  # a loop over talker slots (<= 64), each a batch of row copies
        y += gain[:, j, None] * _excerpts(rng, windows, lengths, picked[:, j])
    y = _unit_rms(y)
    return (y, np.where(used, picked, -1)) if return_sources else y


def music(rng: np.random.Generator, n_samples: int, sample_rate: float, *, n_clips: int = 1,
          pool, return_sources: bool = False):
    """One random music clip per speech clip from a random offset (looped if short)."""
    data, lengths = _as_pool(pool)
    picked = rng.integers(0, len(data), size=n_clips)
    y = _unit_rms(_excerpts(rng, _windows(data, lengths, n_samples), lengths, picked))
    return (y, picked) if return_sources else y


# ----------------------------------------------------------------------------- non-stationary


def bursts(rng: np.random.Generator, base: np.ndarray, sample_rate: float, *, rate_hz=1.0,
           duration_s=0.2, floor_db=-40.0, ramp_ms: float = 5.0):
    """Gate a base noise (n_clips, T) into bursts: Poisson onsets at `rate_hz`, each lasting
    U(0.5, 1.5) x `duration_s`, `floor_db` between bursts, `ramp_ms` linear edges (no clicks).

    Every clip gets at least one burst, so the noise is never only its floor.
    """
    base = np.atleast_2d(base)
    n, T = base.shape
    start = rng.random((n, T), dtype=np.float32) < (_per_clip(rate_hz, n) / sample_rate)[:, None]
    none = np.flatnonzero(~start.any(axis=1))
    start[none, rng.integers(0, T, size=none.size)] = True
    rows, cols = np.nonzero(start)
    dur = _per_clip(duration_s, n)[rows] * rng.uniform(0.5, 1.5, size=rows.size) * sample_rate
    end = np.full((n, T), -1, np.int64)
    end[rows, cols] = cols + np.maximum(1, dur.astype(np.int64))
    inside = np.arange(T)[None, :] < np.maximum.accumulate(end, axis=1)  # inside any burst so far
    floor = (10 ** (_per_clip(floor_db, n) / 20)).astype(np.float32)[:, None]
    gate = np.where(inside, np.float32(1), floor)
    ramp = max(1, int(ramp_ms * 1e-3 * sample_rate))
    gate = uniform_filter1d(gate, ramp, axis=1, mode="nearest")
    return _unit_rms(base * gate)


def modulate(rng: np.random.Generator, base: np.ndarray, sample_rate: float, *, rate_hz=1.0,
             depth_db=10.0):
    """Amplitude-modulate a base noise (n_clips, T) by a slow random envelope: its level in dB
    wanders with std about `depth_db` and changes on the `rate_hz` time scale.
    """
    base = np.atleast_2d(base)
    n, T = base.shape
    env_db = _slow_curve(rng, n, T, sample_rate, rate_hz) * _per_clip(depth_db, n).astype(np.float32)[:, None]
    return _unit_rms(base * np.exp(env_db * np.float32(np.log(10) / 20)))
