"""The tf.data input pipeline: (degraded, clean) frame pairs for Keras' fit."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf


def make_dataset(
    clean: np.ndarray,
    degraded: np.ndarray,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
) -> tf.data.Dataset:
    """tf.data pipeline of (degraded, clean) pairs shaped (batch, T, 1).

    The arrays sit in memory as two tensors; a shuffled *index* stream is batched and gathered
    one whole batch at a time, which keeps per-element overhead out of the hot path.
    """
    import tensorflow as tf

    x = tf.constant(np.asarray(degraded, dtype=np.float32)[..., None])
    y = tf.constant(np.asarray(clean, dtype=np.float32)[..., None])
    n = int(x.shape[0])
    idx = tf.data.Dataset.range(n)
    if shuffle:
        idx = idx.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    ds = idx.batch(batch_size).map(
        lambda i: (tf.gather(x, i), tf.gather(y, i)), num_parallel_calls=tf.data.AUTOTUNE
    )
    return ds.prefetch(tf.data.AUTOTUNE)
