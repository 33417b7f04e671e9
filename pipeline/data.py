"""Dataset files on disk and the tf.data input pipeline.

Layout of ``data/<experiment>/`` (an interface other stages rely on)::

    {train,val,test}_{clean,degraded}.npy   float32 (n, T), loadable with allow_pickle=False
    manifest.csv                            one row per frame: split, index, every random draw
    digest.json                             sha256 over the arrays + the params that made them
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # tensorflow is imported lazily: the DSP side never pays for it
    import tensorflow as tf

SPLITS = ("train", "val", "test")


class DataError(ValueError):
    """Missing or inconsistent dataset files."""


def array_path(folder: Path, split: str, kind: str) -> Path:
    return Path(folder) / f"{split}_{kind}.npy"


def load_split(folder: str | os.PathLike[str], split: str, limit: int | None = None):
    """Return (clean, degraded) float32 arrays of one split, memory-mapped, optionally truncated."""
    folder = Path(folder)
    out = []
    for kind in ("clean", "degraded"):
        p = array_path(folder, split, kind)
        if not p.is_file():
            raise DataError(f"{p}: missing; run `dvc repro generate@{folder.name}` first")
        arr = np.load(p, mmap_mode="r", allow_pickle=False)
        out.append(arr[:limit] if limit else arr)
    if out[0].shape != out[1].shape:
        raise DataError(f"{folder}: {split} clean/degraded shapes differ: {out[0].shape} vs {out[1].shape}")
    return out[0], out[1]


def read_digest(folder: str | os.PathLike[str]) -> str:
    p = Path(folder) / "digest.json"
    if not p.is_file():
        raise DataError(f"{p}: missing; run `dvc repro generate@{Path(folder).name}` first")
    return json.loads(p.read_text())["digest"]


def digest_arrays(arrays: dict[str, np.ndarray], extra: str = "") -> str:
    """Content digest: the same params and code give the same bytes and so the same digest."""
    h = hashlib.sha256(extra.encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def replace_dir(src: Path, target: Path) -> None:
    """Move folder `src` to `target`, replacing any previous `target` (same filesystem).

    The old folder is renamed aside before the new one is renamed in, so `target` is always
    either the complete old folder or the complete new one.
    """
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(src, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp folder beside `target`; swap it in only if the block succeeds.

    A crash or a bad input mid-way leaves the previous `target` untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would follow the folder into place
    try:
        yield tmp
        replace_dir(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write a text file via temp file + rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def make_dataset(
    clean: np.ndarray,
    degraded: np.ndarray,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    remix_noise: bool = False,
) -> tf.data.Dataset:
    """tf.data pipeline of (degraded, clean) pairs shaped (batch, T, 1).

    The arrays sit in memory as two tensors; a shuffled *index* stream is batched and gathered
    one whole batch at a time, which keeps per-element overhead out of the hot path.

    `remix_noise` (additive noise only, with `shuffle`): frame i gets the noise of frame j from
    a second shuffled stream, rescaled to frame i's own noise RMS, so every epoch shows the net
    new (clean, noise) pairs at the dataset's SNRs (dynamic mixing).
    """
    import tensorflow as tf

    x = tf.constant(np.asarray(degraded, dtype=np.float32)[..., None])
    y = tf.constant(np.asarray(clean, dtype=np.float32)[..., None])
    n = int(x.shape[0])
    idx = tf.data.Dataset.range(n)
    if shuffle:
        idx = idx.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    if remix_noise and shuffle:
        partner = tf.data.Dataset.range(n).shuffle(n, seed=seed + 1, reshuffle_each_iteration=True)

        def remix(i, j):
            clean_i = tf.gather(y, i)
            noise_i, noise_j = tf.gather(x, i) - clean_i, tf.gather(x, j) - tf.gather(y, j)
            rms_i = tf.sqrt(tf.reduce_mean(tf.square(noise_i), axis=(1, 2), keepdims=True))
            rms_j = tf.sqrt(tf.reduce_mean(tf.square(noise_j), axis=(1, 2), keepdims=True))
            return clean_i + noise_j * (rms_i / (rms_j + 1e-12)), clean_i

        pairs = tf.data.Dataset.zip(idx, partner).batch(batch_size)
        ds = pairs.map(remix, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = idx.batch(batch_size).map(
            lambda i: (tf.gather(x, i), tf.gather(y, i)), num_parallel_calls=tf.data.AUTOTUNE
        )
    return ds.prefetch(tf.data.AUTOTUNE)
