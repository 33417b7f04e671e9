"""Signal families: shapes, ranges, determinism, the seed distribution."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import HarmonicSignal, MultitoneSignal, SineSignal
from pipeline.dsp import signals


def test_sine_is_the_seed_distribution():
    cfg = SineSignal()
    x, d = signals.sine(cfg, 5000, 100, np.random.default_rng(0))
    assert x.shape == (5000, 100) and x.dtype == np.float32
    assert set(np.unique(d["f"])) == set(range(1, 10))
    assert d["amplitude"].min() >= 0.05 and d["amplitude"].max() <= 1.0
    n = np.arange(100)
    i = 123
    expected = d["amplitude"][i] * np.sin(2 * np.pi * d["f"][i] * n / 100)
    np.testing.assert_allclose(x[i], expected, atol=1e-5)
    assert x[:, 0].max() == 0  # zero phase: every frame starts at 0


def test_sine_random_phase():
    x, d = signals.sine(SineSignal(phase="random"), 100, 100, np.random.default_rng(0))
    i = 5
    n = np.arange(100)
    expected = d["amplitude"][i] * np.sin(2 * np.pi * d["f"][i] * n / 100 + d["phase"][i])
    np.testing.assert_allclose(x[i], expected, atol=1e-5)


@pytest.mark.parametrize("cfg", [HarmonicSignal(), MultitoneSignal()], ids=lambda c: c.family)
def test_audio_families_shape_range_determinism(cfg):
    a, _ = signals.generate(cfg, 64, 1024, 16000, np.random.default_rng(3))
    b, _ = signals.generate(cfg, 64, 1024, 16000, np.random.default_rng(3))
    c, _ = signals.generate(cfg, 64, 1024, 16000, np.random.default_rng(4))
    assert a.shape == (64, 1024) and a.dtype == np.float32
    assert a.tobytes() == b.tobytes() and not np.array_equal(a, c)
    assert np.isfinite(a).all() and np.abs(a).max() <= 1.0


def test_harmonic_levels_and_spectrum_are_audio_like():
    cfg = HarmonicSignal()
    x, d = signals.harmonic(cfg, 512, 1024, 16000, np.random.default_rng(0))
    rms_db = 10 * np.log10((x**2).mean(1) + 1e-20)
    voiced = rms_db > -60
    assert voiced.mean() > 0.9
    assert rms_db[voiced].min() > -45 and rms_db.max() < 0
    # Most energy below 4 kHz, but not all of it (bursts and harmonics reach higher).
    P = (np.abs(np.fft.rfft(x)) ** 2).mean(0)
    f = np.fft.rfftfreq(1024, 1 / 16000)
    frac_low = P[f < 4000].sum() / P.sum()
    assert 0.6 < frac_low < 0.999


def test_wav_family_reads_recordings(tmp_path):
    import soundfile as sf

    from pipeline.config import WavSignal

    rec = tmp_path / "recordings"
    rec.mkdir()
    t = np.arange(44100 * 2) / 44100
    sf.write(rec / "a.wav", np.stack([np.sin(2 * np.pi * 440 * t)] * 2, 1) * 0.5, 44100)
    x, d = signals.generate(WavSignal(), 32, 512, 16000, np.random.default_rng(0), root=tmp_path)
    assert x.shape == (32, 512) and x.dtype == np.float32
    assert 0.3 < np.abs(x).max() < 0.6


def test_wav_family_empty_folder_is_a_clear_error(tmp_path):
    from pipeline.config import WavSignal

    (tmp_path / "recordings").mkdir()
    with pytest.raises(ValueError, match="no .wav or .flac files"):
        signals.generate(WavSignal(), 4, 512, 16000, np.random.default_rng(0), root=tmp_path)
