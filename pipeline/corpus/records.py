"""Reading the corpus folder (its paths and digest record live in pipeline/layout.py).

Layout of ``data/corpus/`` (``out_dir``)::

    {speech,music}_{train,val,test}.npy  float32 (n,), 16 kHz: a split's clips end to end
    manifest.csv   one row per clip: clip_id, kind, package, speaker, split, source, seconds,
                   start, length (the clip is ``array[start:start + length]``)
    report.csv     minutes, files and speakers per kind x package x split
    digest.json    CorpusDigest: sha256 over the arrays + the params that made them
    LICENSES       package, version, licence and .deb URL of every source

One flat array per split, memory-mapped, keeps frame sampling as cheap as it is for the
synthetic data: a random frame is one slice of a page-cached file, with no per-file open and no
Vorbis/FLAC decode in the training loop; the offsets table gives clip boundaries, so a frame
need not straddle two recordings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.corpus.errors import CorpusError
from pipeline.layout import CorpusDigest, CorpusPaths  # noqa: F401  re-exported for corpus code

KINDS = ("speech", "music")


def open_split(root: Path, split: str, kind: str = "speech") -> tuple[np.ndarray, pd.DataFrame]:
    """A split's samples (memory-mapped) and its clips' rows (start, length, speaker ...)."""
    paths = CorpusPaths(Path(root))
    if not paths.manifest.is_file():
        raise CorpusError(f"{paths.manifest}: missing; build the corpus first (build_corpus)")
    rows = pd.read_csv(paths.manifest, keep_default_na=False)
    rows = rows[(rows["split"] == split) & (rows["kind"] == kind)].reset_index(drop=True)
    return np.load(paths.array(kind, split), mmap_mode="r", allow_pickle=False), rows
