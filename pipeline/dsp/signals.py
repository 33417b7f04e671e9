"""Clean signal families, generated as batches of frames (n, T) float32. numpy only.

Every generator takes a seeded ``numpy.random.Generator`` and returns ``(frames, draws)``, where
``draws`` maps a name to one value per frame (frequency, amplitude, ...) for the manifest.
"""

from __future__ import annotations

import numpy as np

from pipeline.config import HarmonicSignal, MultitoneSignal, SineSignal, WavSignal

TWO_PI = np.float32(2 * np.pi)


def sine(cfg: SineSignal, n: int, T: int, rng: np.random.Generator):
    """The seed project's frames: a * sin(2*pi*f*t/T + phi), f an integer number of cycles."""
    f_lo, f_hi = cfg.f_range
    f = rng.integers(f_lo, f_hi + 1, size=n)
    amp = rng.uniform(*cfg.amplitude, size=n).astype(np.float32)
    phase = (rng.uniform(0, 2 * np.pi, size=n) if cfg.phase == "random" else np.zeros(n))
    # One table row per frequency: the n frames are then a gather plus a multiply, not n sin calls.
    arg = TWO_PI * np.arange(f_lo, f_hi + 1, dtype=np.float32)[:, None] * np.arange(T) / T
    sin_t, cos_t = np.sin(arg, dtype=np.float32), np.cos(arg, dtype=np.float32)
    rows = f - f_lo
    # np.take gathers whole rows several times faster than fancy indexing (same array).
    frames = np.take(sin_t, rows, axis=0)
    if cfg.phase == "random":
        frames *= (amp * np.cos(phase).astype(np.float32))[:, None]
        frames += np.take(cos_t, rows, axis=0) * (amp * np.sin(phase).astype(np.float32))[:, None]
    else:
        frames *= amp[:, None]
    return frames, {"f": f, "amplitude": amp, "phase": phase.astype(np.float32)}


def multitone(cfg: MultitoneSignal, n: int, T: int, sr: int, rng: np.random.Generator):
    """K sinusoids with random frequencies, phases and amplitudes in a band."""
    k_max = cfg.n_tones[1]
    k = rng.integers(cfg.n_tones[0], k_max + 1, size=n)
    hi = min(cfg.band_hz[1], 0.45 * sr)
    lo = min(cfg.band_hz[0], hi)
    freq = np.exp(rng.uniform(np.log(max(lo, 1.0)), np.log(max(hi, 1.0)), size=(n, k_max)))
    amp = rng.uniform(*cfg.amplitude, size=(n, k_max)) * (np.arange(k_max) < k[:, None])
    phase = rng.uniform(0, 2 * np.pi, size=(n, k_max))
    t = np.arange(T, dtype=np.float32) / sr
    arg = (TWO_PI * freq[..., None].astype(np.float32) * t) + phase[..., None].astype(np.float32)
    frames = np.einsum("nk,nkt->nt", amp.astype(np.float32), np.sin(arg))
    frames /= np.maximum(np.abs(frames).max(axis=1, keepdims=True), 1.0)
    return frames.astype(np.float32), {"n_tones": k, "f_min": freq.min(1).astype(np.float32)}


def _formant_gain(freq: np.ndarray, formants: np.ndarray, width_oct: float = 0.35) -> np.ndarray:
    """Spectral envelope: sum of Gaussian bumps in log-frequency at the formant centres."""
    d = np.log2(np.maximum(freq[..., None], 1.0) / formants[:, None, :])
    return 0.15 + np.exp(-0.5 * (d / width_oct) ** 2).sum(-1)


def _voice(cfg: HarmonicSignal, n: int, T: int, sr: int, rng: np.random.Generator, f0: np.ndarray):
    """One harmonic voice per frame: glide, vibrato, formant-shaped harmonics, envelope."""
    t = np.arange(T, dtype=np.float32) / sr
    dur = T / sr
    glide = rng.uniform(*cfg.glide_octaves, size=n).astype(np.float32)
    vib_depth = rng.uniform(*cfg.vibrato_cents, size=n).astype(np.float32) / 1200.0
    vib_rate = rng.uniform(4.0, 7.0, size=n).astype(np.float32)
    vib_phase = rng.uniform(0, 2 * np.pi, size=n).astype(np.float32)
    octaves = glide[:, None] * (t / dur) + vib_depth[:, None] * np.sin(
        TWO_PI * vib_rate[:, None] * t + vib_phase[:, None]
    )
    inst_f = f0[:, None].astype(np.float32) * np.exp2(octaves)  # (n, T) Hz
    phase = TWO_PI * np.cumsum(inst_f, axis=1) / sr + rng.uniform(0, 2 * np.pi, size=(n, 1))

    h_max = cfg.n_harmonics[1]
    harm = np.arange(1, h_max + 1, dtype=np.float32)
    n_h = rng.integers(cfg.n_harmonics[0], h_max + 1, size=n)
    rolloff = rng.uniform(*cfg.rolloff_db_per_octave, size=n)
    formants = np.stack(
        [rng.uniform(250, 900, n), rng.uniform(900, 2500, n), rng.uniform(2200, 3800, n)], axis=1
    )
    hz = f0[:, None] * harm  # (n, H)
    amp = 10 ** (-rolloff[:, None] * np.log2(harm) / 20) * _formant_gain(hz, formants)
    amp *= (harm <= n_h[:, None]) & (hz * inst_f.max(1, keepdims=True) / f0[:, None] < 0.48 * sr)
    h_phase = rng.uniform(0, 2 * np.pi, size=(n, h_max)).astype(np.float32)
    frames = np.zeros((n, T), np.float32)
    for h in range(h_max):  # loop over harmonics (<= a few dozen), vectorized over frames and time
        active = amp[:, h] > 0
        if active.any():
            frames[active] += amp[active, h, None].astype(np.float32) * np.sin(
                (h + 1) * phase[active] + h_phase[active, h, None]
            )
    # Attack/decay envelope with an onset that may lie before the frame (a note already sounding).
    onset = rng.uniform(-dur, 0.6 * dur, size=n).astype(np.float32)
    attack = rng.uniform(0.002, 0.05, size=n).astype(np.float32)
    decay = np.exp(rng.uniform(np.log(0.05), np.log(2.0), size=n)).astype(np.float32)
    since = np.maximum(t - onset[:, None], 0)
    env = (1 - np.exp(-since / attack[:, None])) * np.exp(-since / decay[:, None])
    return frames * env, {"f0": f0.astype(np.float32), "n_harmonics": n_h}


def _bursts(n: int, T: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Fricative-like noise: white noise shaped by a random band, under a Gaussian time window."""
    spec = np.fft.rfft(rng.standard_normal((n, T), dtype=np.float32), axis=1)
    f = np.fft.rfftfreq(T, 1 / sr)
    centre = np.exp(rng.uniform(np.log(1500), np.log(0.45 * sr), size=n))
    width = rng.uniform(0.5, 2.0, size=n)
    band = np.exp(-0.5 * (np.log2(np.maximum(f, 1.0) / centre[:, None]) / width[:, None]) ** 2)
    noise = np.fft.irfft(spec * band, n=T, axis=1).astype(np.float32)
    pos = rng.uniform(0, T, size=n)
    spread = rng.uniform(0.1, 0.6, size=n) * T
    env = np.exp(-0.5 * ((np.arange(T) - pos[:, None]) / spread[:, None]) ** 2)
    return (noise * env).astype(np.float32)


def harmonic(cfg: HarmonicSignal, n: int, T: int, sr: int, rng: np.random.Generator):
    """Audio-like frames that resemble speech and music more than a lone sinusoid does.

    A voiced part (fundamental with formant-shaped, decaying harmonics, glide and vibrato, an
    attack/decay envelope), a second voice a musical interval away in some frames, noisy
    fricative-like bursts in others, and a level drawn per frame.
    """
    lo, hi = cfg.f0_hz
    f0 = np.exp(rng.uniform(np.log(lo), np.log(hi), size=n))
    frames, draws = _voice(cfg, n, T, sr, rng, f0)
    interval = rng.choice(np.array([3, 4, 5, 7, 12]), size=n)
    second = rng.random(n) < 0.3
    f0_b = f0 * 2 ** (interval / 12)
    frames_b, _ = _voice(cfg, n, T, sr, rng, f0_b)
    frames += frames_b * (second * rng.uniform(0.3, 1.0, size=n)).astype(np.float32)[:, None]
    burst = rng.random(n) < cfg.noise_burst_prob
    unvoiced = burst & (rng.random(n) < 0.3)
    frames *= (~unvoiced).astype(np.float32)[:, None]
    b = _bursts(n, T, sr, rng)
    rms_v = np.sqrt((frames**2).mean(1)) + 1e-8
    rms_b = np.sqrt((b**2).mean(1)) + 1e-8
    gain = np.where(unvoiced, 1.0, rng.uniform(0.1, 0.7, size=n) * rms_v) / rms_b
    frames += b * (burst * gain).astype(np.float32)[:, None]

    level = 10 ** (rng.uniform(*cfg.level_db, size=n) / 20)
    silent = rng.random(n) < cfg.silence_prob
    level = np.where(silent, 1e-4, level)
    rms = np.sqrt((frames**2).mean(1)) + 1e-8
    frames *= (level / rms).astype(np.float32)[:, None]
    peak = np.abs(frames).max(1)
    frames /= np.maximum(peak / 0.99, 1.0).astype(np.float32)[:, None]
    draws.update({"burst": burst, "two_voices": second, "level_db": 20 * np.log10(level)})
    return frames.astype(np.float32), draws


def wav_frames(cfg: WavSignal, n: int, T: int, sr: int, rng: np.random.Generator, root="."):
    """Frames cut at random from the user's recordings (mixed to mono, resampled to `sr`)."""
    from pathlib import Path

    from pipeline.io.audio import read_audio, resample, to_mono

    folder = Path(root) / cfg.folder
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".wav", ".flac"})
    if not files:
        raise ValueError(f"{folder}: no .wav or .flac files for the `wav` signal family")
    signals = []
    for p in files:
        x, rate, _ = read_audio(p)
        x = resample(to_mono(x), rate, sr)
        if len(x) >= T:
            signals.append(x.astype(np.float32))
    if not signals:
        raise ValueError(f"{folder}: every recording is shorter than one frame ({T} samples)")
    lengths = np.array([len(s) for s in signals])
    which = rng.choice(len(signals), size=4 * n, p=lengths / lengths.sum())
    start = (rng.random(4 * n) * (lengths[which] - T + 1)).astype(np.int64)
    cat = np.concatenate(signals)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    idx = (offsets[which] + start)[:, None] + np.arange(T)
    frames = cat[idx]
    rms_db = 10 * np.log10((frames**2).mean(1) + 1e-12)
    keep = np.flatnonzero(rms_db >= cfg.min_rms_db)
    keep = keep[:n] if len(keep) >= n else np.resize(np.arange(4 * n), n)
    return frames[keep], {"file": which[keep], "start": start[keep]}


def generate(cfg, n: int, T: int, sr: int, rng: np.random.Generator, root="."):
    """Dispatch on the signal family."""
    if isinstance(cfg, SineSignal):
        return sine(cfg, n, T, rng)
    if isinstance(cfg, MultitoneSignal):
        return multitone(cfg, n, T, sr, rng)
    if isinstance(cfg, HarmonicSignal):
        return harmonic(cfg, n, T, sr, rng)
    if isinstance(cfg, WavSignal):
        return wav_frames(cfg, n, T, sr, rng, root)
    raise TypeError(f"unknown signal config {type(cfg).__name__}")
