"""The tf.data feed: batches and determinism."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

from pipeline.nn.feed import make_dataset


@pytest.fixture
def pairs():
    rng = np.random.default_rng(0)
    clean = rng.normal(size=(12, 32)).astype(np.float32)
    noise = rng.normal(size=(12, 32)).astype(np.float32) * np.linspace(0.1, 1.2, 12)[:, None]
    return clean, (clean + noise).astype(np.float32), noise


def _epoch(ds):
    xs, ys = zip(*[(x.numpy()[..., 0], y.numpy()[..., 0]) for x, y in ds], strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def _rows(clean, ys):
    return np.array([int(np.argmin(((clean - r) ** 2).sum(1))) for r in ys])


def test_plain_feed_gives_every_pair_once(pairs):
    clean, degraded, _ = pairs
    x, y = _epoch(make_dataset(clean, degraded, 5, shuffle=True, seed=1))
    rows = _rows(clean, y)
    assert sorted(rows) == list(range(12))
    np.testing.assert_array_equal(x, degraded[rows])
