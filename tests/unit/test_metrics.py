"""Metrics against hand-computed cases, plus invariances that must hold for any input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pipeline.dsp.metrics import (
    SNR_BUCKET_LABELS,
    SNR_BUCKETS,
    aggregate_snr_db,
    lsd,
    si_sdr_db,
    snr_bucket,
    snr_db,
    summarize,
)

# Values on a 1/1000 grid avoid float underflow in energies, which would make invariance moot.
frames = arrays(np.float64, (2, 16), elements=st.integers(-1000, 1000).map(lambda v: v / 1000))
scales = st.floats(1e-3, 1e3)


def test_snr_known_noise_energy():
    ref = np.ones((2, 100), dtype=np.float32)  # energy 100
    est = ref.copy()
    est[0] += 0.1  # error energy 1 -> 20 dB
    est[1, :10] += 1.0  # error energy 10 -> 10 dB
    np.testing.assert_allclose(snr_db(est, ref), [20.0, 10.0], atol=1e-4)


def test_snr_perfect_silent_and_capped():
    ref = np.array([[1.0, -1.0], [0.0, 0.0], [0.0, 0.0]])
    est = np.array([[1.0, -1.0], [0.0, 0.0], [0.5, 0.0]])
    np.testing.assert_array_equal(snr_db(est, ref), [100.0, 100.0, -100.0])
    assert snr_db(est, ref, cap=30.0)[0] == 30.0


def test_snr_shapes():
    x = np.arange(1, 9, dtype=np.float32)
    assert np.ndim(snr_db(x, x + 1)) == 0
    assert snr_db(np.zeros((3, 8)), np.ones((3, 8))).shape == (3,)
    with pytest.raises(ValueError):
        snr_db(np.zeros(3), np.zeros(4))


def test_aggregate_snr_weights_by_energy():
    ref = np.array([[10.0], [0.0]])  # total energy 100
    est = np.array([[11.0], [1.0]])  # total error 2
    assert aggregate_snr_db(est, ref) == pytest.approx(10 * np.log10(50.0))
    assert isinstance(aggregate_snr_db(est, ref), float)
    assert aggregate_snr_db(ref, ref) == 100.0


def test_si_sdr_scaled_or_flipped_estimate_is_perfect():
    n = np.arange(64)
    ref = np.sin(2 * np.pi * 3 * n / 64)
    est = np.stack([2.5 * ref, -0.3 * ref, ref])
    np.testing.assert_array_equal(si_sdr_db(est, np.broadcast_to(ref, est.shape)), 100.0)


def test_si_sdr_orthogonal_distortion_and_degenerate_cases():
    n = np.arange(64)
    ref = np.sin(2 * np.pi * 3 * n / 64)
    noise = 0.1 * np.cos(2 * np.pi * 5 * n / 64)  # orthogonal to ref: alpha = 1
    expected = 10 * np.log10(np.sum(ref**2) / np.sum(noise**2))  # = 20 dB
    assert si_sdr_db(ref + noise, ref) == pytest.approx(expected)
    assert expected == pytest.approx(20.0)
    assert si_sdr_db(np.zeros(64), ref) == -100.0  # zero estimate carries no target
    assert si_sdr_db(noise, ref) == -100.0  # orthogonal estimate
    assert si_sdr_db(noise, np.zeros(64)) == -100.0  # silent reference


def test_si_sdr_is_not_zero_mean():
    ref = np.ones(32)
    est = np.ones(32) + 0.01 * (-1.0) ** np.arange(32)
    # with zero-mean the reference would vanish; here the DC is the signal
    assert si_sdr_db(est, ref) == pytest.approx(40.0)


def test_lsd_identical_and_scaled_spectra():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((3, 1024))
    np.testing.assert_allclose(lsd(ref, ref, n_fft=256), 0.0, atol=1e-12)
    # a gain of 2 shifts every log10 power by log10(4), so the distance is exactly that
    np.testing.assert_allclose(lsd(2 * ref, ref, n_fft=256), np.log10(4.0), rtol=1e-9)
    assert lsd(2 * ref, ref, n_fft=256, hop=100).shape == (3,)


def test_lsd_short_frames_use_frame_length():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((2, 100))
    assert lsd(ref, ref, n_fft=2048).shape == (2,)
    np.testing.assert_allclose(lsd(3 * ref, ref, n_fft=2048), np.log10(9.0), rtol=1e-9)
    assert np.ndim(lsd(ref[0], 0.5 * ref[0], n_fft=2048)) == 0


def test_lsd_floor_keeps_silence_finite():
    ref = np.zeros((1, 512))
    est = np.zeros((1, 512))
    est[0, 100] = 1.0
    val = lsd(est, ref, n_fft=128)
    assert np.isfinite(val).all() and (val > 0).all()


def test_summarize():
    s = summarize(np.arange(11))
    assert s == {"mean": 5.0, "median": 5.0, "p10": 1.0, "p90": 9.0}
    assert all(type(v) is float for v in s.values())
    assert all(np.isnan(v) for v in summarize([]).values())


def test_snr_buckets():
    assert (-np.inf, 0.0, 10.0, 20.0, np.inf) == SNR_BUCKETS
    assert len(SNR_BUCKET_LABELS) == len(SNR_BUCKETS) - 1
    got = snr_bucket([-5.0, 0.0, 5.0, 10.0, 15.0, 20.0, 25.0, -np.inf, np.inf])
    expected = ["<0", "0-10", "0-10", "10-20", "10-20", ">20", ">20", "<0", ">20"]
    assert got.tolist() == expected
    assert snr_bucket(3.0) == "0-10"
    with pytest.raises(ValueError):
        snr_bucket([np.nan])


@settings(max_examples=50, deadline=None)
@given(est=frames, ref=frames, scale=scales)
def test_snr_invariant_to_joint_scaling(est, ref, scale):
    np.testing.assert_allclose(snr_db(scale * est, scale * ref), snr_db(est, ref), rtol=1e-9, atol=1e-7)


@settings(max_examples=50, deadline=None)
@given(est=frames, ref=frames, scale=scales, negative=st.booleans())
def test_si_sdr_invariant_to_scaling_estimate(est, ref, scale, negative):
    c = -scale if negative else scale
    np.testing.assert_allclose(si_sdr_db(c * est, ref), si_sdr_db(est, ref), rtol=1e-9, atol=1e-7)


@settings(max_examples=30, deadline=None)
@given(est=frames, ref=frames)
def test_snr_bounded_and_per_frame(est, ref):
    v = snr_db(est, ref, cap=50.0)
    assert v.shape == (2,) and np.all(np.abs(v) <= 50.0)
    np.testing.assert_allclose(v[1], snr_db(est[1], ref[1], cap=50.0))
