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
