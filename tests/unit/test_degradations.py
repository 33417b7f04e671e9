"""Degradations: exactness, target statistics, determinism. numpy only."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config import (
    BandwidthDeg,
    BitdepthDeg,
    ClipDeg,
    DropoutDeg,
    NoiseDeg,
    QuantizeDeg,
)
from pipeline.dsp import degradations as D

ALL = [
    NoiseDeg(std=(0.01, 0.1)),
    NoiseDeg(snr_db=(-5, 25), impulse_prob=(0, 1e-3)),
    QuantizeDeg(factor=10),
    BitdepthDeg(bits=6, dither=True),
    BandwidthDeg(factor=4),
    ClipDeg(level=(0.3, 0.8)),
    DropoutDeg(gap_prob=(0.001, 0.01), gap_length=(4, 32)),
]


def frames(n=16, T=256, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(T) / T
    f = rng.integers(1, 20, size=(n, 1))
    return (rng.uniform(0.1, 0.9, (n, 1)) * np.sin(2 * np.pi * f * t)).astype(np.float32)


@pytest.mark.parametrize("cfg", ALL, ids=lambda c: c.kind)
def test_shape_dtype_and_determinism(cfg):
    x = frames()
    a, _ = D.apply(cfg, x, np.random.default_rng(7))
    b, _ = D.apply(cfg, x, np.random.default_rng(7))
    assert a.shape == x.shape and a.dtype == np.float32
    assert a.tobytes() == b.tobytes()  # same seed -> identical bytes
    assert np.isfinite(a).all()


@pytest.mark.parametrize("cfg", [c for c in ALL if c.kind in ("noise", "bitdepth", "clip",
                                                                  "dropout")], ids=lambda c: c.kind)
def test_different_seeds_differ(cfg):
    x = frames(n=64)
    a, _ = D.apply(cfg, x, np.random.default_rng(1))
    b, _ = D.apply(cfg, x, np.random.default_rng(2))
    assert not np.array_equal(a, b)


@settings(max_examples=25, deadline=None)
@given(snr=st.floats(-10, 40), seed=st.integers(0, 2**32 - 1))
def test_noise_snr_matches_target(snr, seed):
    x = frames(n=8, T=4096, seed=seed % 1000)
    cfg = NoiseDeg(snr_db=(snr, snr), impulse_prob=(0, 0))
    y, draws = D.apply(cfg, x, np.random.default_rng(seed))
    measured = 10 * np.log10((x**2).sum(1) / ((y - x) ** 2).sum(1))
    # 4096 Gaussian samples: the measured noise power is within a few % of its target.
    assert np.abs(measured - snr).max() < 0.5


def test_noise_std_and_impulses_follow_draws():
    x = np.zeros((200, 100), np.float32)
    cfg = NoiseDeg(std=(0.05, 0.05), impulse_prob=(0.02, 0.02), impulse_amp=(3.0, 3.0))
    y, draws = D.apply(cfg, x, np.random.default_rng(3))
    hits = np.abs(y) > 1.5
    assert hits.sum() == draws["n_impulses"].sum()
    assert abs(hits.mean() - 0.02) < 0.005
    assert abs(y[~hits].std() - 0.05) < 0.003
    signs = np.sign(y[hits])
    assert abs((signs > 0).mean() - 0.5) < 0.1


@settings(max_examples=30, deadline=None)
@given(K=st.integers(1, 16), T=st.integers(17, 300), seed=st.integers(0, 1000))
def test_sample_and_hold_is_exact(K, T, seed):
    x = np.random.default_rng(seed).standard_normal((3, T)).astype(np.float32)
    y, _ = D.apply(QuantizeDeg(factor=K), x, np.random.default_rng(0))
    for n in range(T):
        np.testing.assert_array_equal(y[:, n], x[:, K * (n // K)])


@settings(max_examples=30, deadline=None)
@given(bits=st.integers(2, 16), seed=st.integers(0, 1000))
def test_bitdepth_error_within_half_step(bits, seed):
    x = np.random.default_rng(seed).uniform(-0.99, 0.99, (4, 512)).astype(np.float32)
    y, _ = D.apply(BitdepthDeg(bits=bits), x, np.random.default_rng(0))
    step = 2.0 / 2**bits
    assert np.abs(y - x).max() <= step / 2 + 1e-6
    assert np.allclose(np.round(y / step) * step, y, atol=1e-6)


def test_bandwidth_removes_the_top_band():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 1024)).astype(np.float32) * 0.1
    y, _ = D.apply(BandwidthDeg(factor=4), x, rng)
    X, Y = np.abs(np.fft.rfft(x)) ** 2, np.abs(np.fft.rfft(y)) ** 2
    top = slice(int(0.3 * 513), None)  # well above the new Nyquist (1/4 of the band)
    assert Y[:, top].sum() < 0.01 * X[:, top].sum()
    low = slice(1, int(0.08 * 513))  # passband survives
    assert abs(Y[:, low].sum() / X[:, low].sum() - 1) < 0.1


def test_clip_bounded_by_level():
    x = frames(n=32)
    y, draws = D.apply(ClipDeg(level=(0.5, 0.5)), x, np.random.default_rng(0))
    peak = np.abs(x).max(1)
    assert np.all(np.abs(y).max(1) <= 0.5 * peak + 1e-7)


def test_dropout_zeroes_gaps_of_the_drawn_length():
    x = np.ones((50, 2000), np.float32)
    cfg = DropoutDeg(gap_prob=(0.002, 0.002), gap_length=(10, 10))
    y, draws = D.apply(cfg, x, np.random.default_rng(0))
    zero = y == 0
    assert zero.any() and set(np.unique(y)) <= {0.0, 1.0}
    # Every run of zeros is at least one gap long (overlapping gaps only lengthen runs).
    for row in zero[:10]:
        d = np.diff(np.concatenate([[0], row.astype(int), [0]]))
        starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
        lengths = ends - starts
        assert np.all((lengths >= 10) | (ends == len(row)))


def test_apply_long_keeps_length():
    x = np.sin(np.arange(5003) / 7).astype(np.float32)
    for cfg in ALL:
        y = D.apply_long(cfg, x, np.random.default_rng(0), frame_length=1024)
        assert y.shape == x.shape and y.dtype == np.float32


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 40), cols=st.integers(1, 70), density=st.sampled_from([0.0, 1e-3, 0.05, 0.5, 1.0]),
       seed=st.integers(0, 2**16))
def test_sparse_nonzero_equals_np_nonzero(rows, cols, density, seed):
    mask = np.random.default_rng(seed).random((rows, cols)) < density
    got, want = D.sparse_nonzero(mask), np.nonzero(mask)
    assert all(g.dtype == w.dtype and np.array_equal(g, w) for g, w in zip(got, want, strict=True))
    assert all(np.array_equal(g, w) for g, w in zip(D.sparse_nonzero(mask[:, ::-1]),
                                                     np.nonzero(mask[:, ::-1]), strict=True))



def _noise_in_one_draw(cfg: NoiseDeg, x: np.ndarray, rng: np.random.Generator):
    """The definition `noise` implements block by block: each (n, T) draw made in one call."""
    n, T = x.shape
    std = rng.uniform(*cfg.std, size=n)
    y = rng.standard_normal((n, T), dtype=np.float32) * std.astype(np.float32)[:, None] + x
    p = rng.uniform(*cfg.impulse_prob, size=n).astype(np.float32)
    a = rng.uniform(*cfg.impulse_amp, size=n).astype(np.float32)
    u = rng.random((n, T), dtype=np.float32)
    hit = u < p[:, None]
    sign = np.where(u < 0.5 * p[:, None], np.float32(-1), np.float32(1))
    return y + hit * sign * a[:, None], hit.sum(axis=1)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 50), T=st.integers(1, 90), block=st.sampled_from([1, 7, 64, 1 << 16]),
       seed=st.integers(0, 2**16))
def test_noise_blocks_draw_the_same_stream_as_one_call(n, T, block, seed):
    x = np.random.default_rng(seed + 1).standard_normal((n, T)).astype(np.float32)
    cfg = NoiseDeg(std=(0.01, 0.1), impulse_prob=(0.0, 0.2), impulse_amp=(0.1, 0.5))
    want, hits = _noise_in_one_draw(cfg, x, np.random.default_rng(seed))
    saved, D._BLOCK_SAMPLES = D._BLOCK_SAMPLES, block
    try:
        got, draws = D.noise(cfg, x, np.random.default_rng(seed))
    finally:
        D._BLOCK_SAMPLES = saved
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(draws["n_impulses"], hits)
