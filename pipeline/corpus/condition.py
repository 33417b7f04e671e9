"""Decode one file into the clip the corpus stores: mono, 16 kHz, silence trimmed, float32.

soundfile (libsndfile) reads Ogg Vorbis, WAV and FLAC, at any rate (klettres has a 128 kHz
folder, beyond what ``pipeline.io.audio.read_audio`` accepts for user audio, so it is read here).
Game and teaching recordings come with long digital-silence heads and tails; trimming them keeps
frames cut later from the corpus mostly speech, and files that stay near silent are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from pipeline.corpus.errors import CorpusError
from pipeline.io.audio import resample, to_mono


@dataclass(frozen=True)
class Conditioning:
    """What decides a clip's samples (part of the corpus digest)."""

    sample_rate: int = 16_000
    frame_seconds: float = 0.02  # energy frames of 20 ms
    relative_db: float = 40.0  # a frame is active within this many dB of the file's loudest frame
    floor_db: float = -60.0  # ... and above this absolute level (dBFS RMS)
    min_active_seconds: float = 0.1  # fewer active frames than this: the file is dropped


def frame_rms(x: np.ndarray, frame: int) -> np.ndarray:
    """RMS of consecutive `frame`-sample frames (the last one zero-padded)."""
    n = -(-x.size // frame)
    padded = np.zeros(n * frame, dtype=np.float64)
    padded[: x.size] = x
    return np.sqrt(np.mean(padded.reshape(n, frame) ** 2, axis=1))


def active_span(x: np.ndarray, rate: int, cfg: Conditioning) -> tuple[int, int] | None:
    """[start, stop) sample span from the first to the last active frame, None if too quiet.

    Frames count from the first sample, so leading silence of whole frames moves the span
    without changing what it holds.
    """
    frame = max(1, round(cfg.frame_seconds * rate))
    if x.size == 0:
        return None
    rms = frame_rms(x, frame)
    threshold = max(rms.max() * 10 ** (-cfg.relative_db / 20), 10 ** (cfg.floor_db / 20))
    active = np.flatnonzero(rms >= threshold)
    if active.size * frame < cfg.min_active_seconds * rate:
        return None
    return int(active[0]) * frame, min(x.size, (int(active[-1]) + 1) * frame)


def condition(x: np.ndarray, rate: int, cfg: Conditioning) -> np.ndarray | None:
    """Mono float32 at ``cfg.sample_rate`` with silence trimmed; None if nearly silent."""
    y = resample(to_mono(x), rate, cfg.sample_rate)
    span = active_span(y, cfg.sample_rate, cfg)
    if span is None:
        return None
    return np.ascontiguousarray(y[span[0] : span[1]], dtype=np.float32)


def load_clip(path: Path, cfg: Conditioning) -> np.ndarray | None:
    """Read and condition one file of an extracted package."""
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, OSError) as err:
        raise CorpusError(f"{path}: unreadable ({err}); delete the package's folder under the "
                          "cache's staging/ so it is extracted again") from err
    if data.shape[0] == 0:
        return None
    if not np.isfinite(data).all():
        raise CorpusError(f"{path}: NaN or infinite samples; delete the package's folder under "
                          "the cache's staging/ so it is extracted again")
    return condition(data, int(rate), cfg)
