"""Listening examples for the report: consecutive test frames joined into WAVs people can play
(clean, degraded, model, best classical), with examples.json describing them."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import Experiment
from pipeline.dsp.metrics import si_sdr_db, snr_db
from pipeline.evaluation.scoring import SNR_CAP_DB, Scored, Split, clean_json, rounded

AUDIO_EXAMPLES = 3  # listening examples per experiment: low, middle and high input SNR
AUDIO_SECONDS = 1.0  # each joins consecutive test frames up to this length: long enough to hear
PLAYBACK_MIN_RATE = 8000  # Chromium refuses a 1 kHz WAV (MEDIA_ERR_SRC_NOT_SUPPORTED); 8 kHz plays
FADE_S = 0.004  # raised-cosine fade at every frame edge: joined frames would click otherwise
AUDIO_PEAK = 0.9  # one common gain per example brings its loudest version to this peak


def _example_groups(input_snr: np.ndarray, k: int, n_examples: int) -> list[np.ndarray]:
    """Indices of `n_examples` groups of `k` test frames with similar input SNR, low to high."""
    order = np.argsort(input_snr, kind="stable")
    k = min(k, len(order))
    starts = {int(round(q * (len(order) - k))) for q in np.linspace(0.1, 0.9, n_examples)}
    return [np.sort(order[s:s + k]) for s in sorted(starts)]


def _join(frames: np.ndarray, fade: int) -> np.ndarray:
    """Frames end to end, each faded in and out so the joins do not click."""
    w = np.ones(frames.shape[1])
    if fade > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade)
        w[:fade], w[-fade:] = ramp, ramp[::-1]
    return (np.asarray(frames, dtype=np.float64) * w).reshape(-1)


def write_listening_examples(folder: Path, exp: Experiment, test: Split, s: Scored
                             ) -> dict[str, Any]:
    """WAVs a person can play in the report, and examples.json describing them.

    Rates below PLAYBACK_MIN_RATE are upsampled by an integer factor (same pitch, same
    duration); all four versions of an example share one gain so their loudness compares.
    """
    from pipeline.io.audio import resample, write_audio_atomic

    folder.mkdir(parents=True, exist_ok=True)
    sr, T = exp.sample_rate, exp.frame_length
    rate = sr * math.ceil(PLAYBACK_MIN_RATE / sr) if sr < PLAYBACK_MIN_RATE else sr
    per = max(1, math.ceil(AUDIO_SECONDS * sr / T))
    fade = min(T // 4, max(1, round(FADE_S * sr)))
    best, input_snr = s.best, test.snr
    versions = {"clean": test.clean, "degraded": test.degraded,
                "model": s.results["model"]["estimate"],
                "best_classical": s.results[best]["estimate"]}
    examples = []
    for i, idx in enumerate(_example_groups(input_snr, per, AUDIO_EXAMPLES), start=1):
        native = {k: _join(v[idx], fade) for k, v in versions.items()}
        played = {k: resample(x, sr, rate) for k, x in native.items()}
        # peak after resampling: upsampled steps (sample-and-hold) overshoot their native peak
        peak = max(float(np.max(np.abs(x))) for x in played.values())
        gain = AUDIO_PEAK / peak if peak > 0 else 1.0
        ref = native["clean"][None]
        files = {}
        for kind, x in played.items():
            files[kind] = f"ex{i}-{kind}.wav"
            write_audio_atomic(folder / files[kind], x * gain, rate, "PCM_16")
        examples.append({
            "id": f"ex{i}", "frames": [int(j) for j in idx], "seconds": len(ref[0]) / sr,
            "input_snr_db": rounded(float(np.mean(input_snr[idx])), 2),
            "snr_db": {k: rounded(float(snr_db(native[k][None], ref, cap=SNR_CAP_DB)[0]), 2)
                       for k in ("degraded", "model", "best_classical")},
            "gain": rounded(gain), "files": files, "native": native,
        })
    record = {
        "sample_rate": sr, "playback_rate": rate, "upsampled": rate != sr,
        "frames_per_example": per, "fade_ms": round(1000 * fade / sr, 2), "peak": AUDIO_PEAK,
        "best_classical": best,
        "examples": [{k: v for k, v in e.items() if k != "native"} for e in examples],
    }
    (folder / "examples.json").write_text(json.dumps(clean_json(record), indent=2) + "\n")
    return {**record, "examples": examples}




KIND_EXAMPLE_SNR_DB = 5.0  # per noise kind, the test frame whose input SNR bucket is nearest


def kind_example_frames(kinds: np.ndarray, bucket_db: np.ndarray) -> dict[str, int]:
    """One test frame per noise kind (sorted by name): the first frame of the kind whose SNR
    bucket is nearest KIND_EXAMPLE_SNR_DB (frames without a bucket only if nothing else)."""
    out = {}
    dist = np.abs(np.asarray(bucket_db, dtype=np.float64) - KIND_EXAMPLE_SNR_DB)
    dist = np.where(np.isnan(dist), np.inf, dist)
    for kind in sorted(set(map(str, kinds))):
        idx = np.flatnonzero(np.asarray(kinds).astype(str) == kind)
        out[kind] = int(idx[np.argmin(dist[idx])])  # argmin: the first of equals
    return out


def write_kind_examples(folder: Path, exp: Experiment, test: Split, s: Scored,
                        kinds: np.ndarray, bucket_db: np.ndarray) -> dict[str, Any]:
    """One whole test frame per noise kind (clean, noisy, model, best classical) as WAVs in
    `folder`, described by noise_kinds.json; each example's versions share one gain."""
    from pipeline.io.audio import write_audio_atomic

    sr = exp.sample_rate
    fade = min(exp.frame_length // 4, max(1, round(FADE_S * sr)))
    versions = {"clean": test.clean, "degraded": test.degraded,
                "model": s.results["model"]["estimate"],
                "best_classical": s.results[s.best]["estimate"]}
    examples = []
    for kind, j in kind_example_frames(kinds, bucket_db).items():
        native = {k: _join(v[j:j + 1], fade) for k, v in versions.items()}
        peak = max(float(np.max(np.abs(x))) for x in native.values())
        gain = AUDIO_PEAK / peak if peak > 0 else 1.0
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in kind)
        files = {k: f"kind-{safe}-{k}.wav" for k in native}
        for k, x in native.items():
            write_audio_atomic(folder / files[k], x * gain, sr, "PCM_16")
        ref = native["clean"][None]
        examples.append({
            "noise_kind": kind, "frame": j, "seconds": len(ref[0]) / sr,
            "snr_bucket_db": rounded(float(bucket_db[j])) if np.isfinite(bucket_db[j]) else None,
            "si_sdr_db": {k: rounded(float(si_sdr_db(native[k][None], ref, cap=SNR_CAP_DB)[0]), 2)
                          for k in ("degraded", "model", "best_classical")},
            "gain": rounded(gain), "files": files,
        })
    record = {"sample_rate": sr, "best_classical": s.best, "examples": examples}
    (folder / "noise_kinds.json").write_text(json.dumps(clean_json(record), indent=2) + "\n")
    return record
