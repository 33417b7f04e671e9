"""Training and test frames cut from a corpus split (what the `corpus` signal family draws).

A split's clips lie end to end in one memory-mapped array, so a frame is one slice: it starts at a
uniformly drawn sample and may run across a clip boundary into the next recording of the same
split, like the joined files a user brings. Its speaker (for babble, which must never use the
frame's own voice) is the speaker of the clip it starts in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.config import CorpusSignal
from pipeline.corpus.errors import CorpusError
from pipeline.corpus.records import open_split
from pipeline.layout import CorpusPaths, RepoPaths

MIN_RMS_DB = -55.0  # dBFS of the corpus as stored: quieter frames are pauses, not speech


def _slices(data: np.ndarray, starts: np.ndarray, T: int) -> np.ndarray:
    """Rows data[s:s + T] for every start (a fancy-indexed gather, no Python loop)."""
    return np.asarray(data[starts[:, None] + np.arange(T)[None, :]], dtype=np.float32)


def corpus_frames(cfg: CorpusSignal, split: str, n: int, T: int, sample_rate: int,
                  rng: np.random.Generator, root: Path | str = "."):
    """`n` frames of `T` samples of the split's speech, each at an RMS level from cfg.level_db.

    Returns ``(frames (n, T) float32, draws)`` with per-frame clip_id, speaker, package,
    start (in the split's array) and level_db.
    """
    folder = RepoPaths(Path(root)).corpus
    data, rows = open_split(folder, split, cfg.kind)
    if sample_rate != 16_000:
        raise CorpusError(f"the corpus is at 16000 Hz; set sample_rate: 16000 (got {sample_rate})")
    if len(data) < T:
        raise CorpusError(f"{folder}: the {split} split has {len(data)} samples of "
                          f"{cfg.kind}, fewer than one frame ({T}); lower frame_length")
    # Twice the candidates, the first n that are not near silent (a pause inside a clip):
    # a silent clean frame has no SNR to mix at and nothing to learn.
    starts = rng.integers(0, len(data) - T + 1, size=2 * n)
    frames = _slices(data, starts, T)
    rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
    order = np.argsort(rms < 10 ** (MIN_RMS_DB / 20), kind="stable")[:n]
    starts, frames, rms = starts[order], frames[order], rms[order]
    clip = np.searchsorted(rows["start"].to_numpy(), starts, side="right") - 1
    level_db = rng.uniform(*cfg.level_db, size=n)
    gain = 10 ** (level_db / 20) / np.maximum(rms, 1e-6)
    frames *= gain.astype(np.float32)[:, None]
    draws = {"clip_id": rows["clip_id"].to_numpy()[clip], "speaker": rows["speaker"].to_numpy()[clip],
             "package": rows["package"].to_numpy()[clip], "start": starts, "level_db": level_db}
    return frames, draws


def music_pool(split: str, n: int, T: int, rng: np.random.Generator,
               root: Path | str = ".") -> np.ndarray | None:
    """`n` excerpts of `T` samples of the split's music (the `music` noise's pool), or None
    when the corpus has no music in this split."""
    paths = CorpusPaths(RepoPaths(Path(root)).corpus)
    if not paths.array("music", split).is_file():
        return None
    data, _ = open_split(paths.root, split, "music")
    if len(data) < T:
        return None
    return _slices(data, rng.integers(0, len(data) - T + 1, size=n), T)
