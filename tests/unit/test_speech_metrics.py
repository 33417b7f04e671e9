"""PESQ-WB and STOI on a few short speech-like clips: ceiling, ordering by noise, silent references."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from pipeline.dsp.metrics import si_sdr_db
from pipeline.dsp.speech_metrics import (
    clip_scores,
    pesq_wb,
    pesq_wb_batch,
    stoi,
    stoi_batch,
)

RATE = 16000


def speechlike(seconds: float = 2.0, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """Syllables of harmonics (f0 100-200 Hz, falling h^-1.5) with pauses: PESQ's VAD finds utterances."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    out = np.zeros(n)
    pos = int(0.15 * rate)
    while pos < n:
        length = int(rng.uniform(0.15, 0.35) * rate)
        t = np.arange(length) / rate
        f0 = rng.uniform(100, 200) * (1 + 0.1 * t / t[-1])
        phase = 2 * np.pi * np.cumsum(f0) / rate
        syl = sum(np.sin(h * phase + rng.uniform(0, 2 * np.pi)) / h**1.5 for h in range(1, 30))
        end = min(n, pos + length)
        out[pos:end] = (syl * np.hanning(length))[: end - pos]
        pos = end + int(rng.uniform(0.05, 0.2) * rate)
    return 0.5 * out / np.max(np.abs(out))


def noisy(x: np.ndarray, snr_db: float, seed: int = 1) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(len(x))
    return x + noise * np.sqrt(np.sum(x**2) / np.sum(noise**2) / 10 ** (snr_db / 10))


@pytest.fixture(scope="module")
def clip():
    return speechlike()


def test_identical_signals_score_at_the_ceiling(clip):
    assert 4.4 < pesq_wb(clip, clip, RATE) <= 4.65
    assert stoi(clip, clip, RATE) > 0.99


def test_more_noise_gives_monotonically_lower_scores(clip):
    snrs = (20.0, 10.0, 0.0)
    p = [pesq_wb(noisy(clip, s), clip, RATE) for s in snrs]
    s = [stoi(noisy(clip, s), clip, RATE) for s in snrs]
    assert p[0] > p[1] > p[2], p
    assert s[0] > s[1] > s[2], s


def test_other_rates_are_resampled_for_pesq(clip):
    from scipy.signal import resample_poly

    x48 = resample_poly(clip, 3, 1)
    assert pesq_wb(x48, x48, 48000) > 4.4
    assert pesq_wb(noisy(x48, 5.0), x48, 48000) < 3.0


def test_silent_reference_gives_nan_with_a_reason(clip):
    silent = np.zeros_like(clip)
    with pytest.warns(RuntimeWarning, match="PESQ-WB is NaN: no utterance"):
        assert np.isnan(pesq_wb(clip, silent, RATE))
    with pytest.warns(RuntimeWarning, match="STOI is NaN: the reference is silent"):
        assert np.isnan(stoi(clip, silent, RATE))


def test_batches_and_clip_scores_agree_with_the_single_clip_functions(clip):
    refs = [clip, speechlike(1.5, seed=3)]
    ests = [noisy(r, 5.0) for r in refs]
    p, s = pesq_wb_batch(ests, refs, RATE), stoi_batch(ests, refs, RATE)
    assert p.shape == s.shape == (2,)
    scores = clip_scores(ests, refs, RATE, with_lsd=True)
    assert set(scores) == {"si_sdr_db", "pesq_wb", "stoi", "lsd"}
    np.testing.assert_allclose(scores["pesq_wb"], p)
    np.testing.assert_allclose(scores["stoi"], s)
    own = [float(si_sdr_db(e, r)) for e, r in zip(ests, refs, strict=True)]
    np.testing.assert_allclose(scores["si_sdr_db"], own)


def test_a_silent_clip_in_a_batch_does_not_abort_it(clip):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        scores = clip_scores([clip, clip], [clip, np.zeros_like(clip)], RATE)
    assert np.isfinite(scores["pesq_wb"][0]) and np.isnan(scores["pesq_wb"][1])
    assert np.isnan(scores["stoi"][1])


def test_mismatched_clips_are_refused(clip):
    with pytest.raises(ValueError, match="equal length"):
        pesq_wb(clip[:-1], clip, RATE)
    with pytest.raises(ValueError, match="estimates for"):
        stoi_batch([clip], [clip, clip], RATE)
