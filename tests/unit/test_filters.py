"""wiener_fir: the data-fitted FIR behind the unet's prefilter channel."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.dsp.filters import wiener_fir


def _frames(n: int, t: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, t)).astype(np.float32)


@pytest.mark.parametrize("scale, gain_db", [(0.5, 30.0), (1e-3, 30.0), (1e-3, 20.0)])
def test_wiener_fir_inverts_a_scaling_up_to_its_gain_cap(scale, gain_db):
    clean = _frames(64, 256)
    h = wiener_fir(clean, scale * clean, taps=31, max_gain_db=gain_db)
    assert h.shape == (31,) and h.dtype == np.float32
    expected = min(1.0 / scale, 10 ** (gain_db / 20))
    np.testing.assert_allclose(h[15], expected, rtol=1e-3)  # centre tap, window 1 there
    np.testing.assert_allclose(np.delete(h, 15), 0.0, atol=1e-3 * expected)


def test_wiener_fir_undoes_a_known_zero_phase_attenuation_in_frame_interiors():
    # Attenuate a band by 20 dB with a zero-phase filter; the FIR should restore it mid-frame.
    t = 1024
    clean = _frames(200, t, seed=1)
    f = np.fft.rfftfreq(t)
    gain = np.where((f > 0.2) & (f < 0.3), 0.1, 1.0)
    degraded = np.fft.irfft(np.fft.rfft(clean, axis=1) * gain, t, axis=1).astype(np.float32)
    h = wiener_fir(clean, degraded, taps=255)
    response = np.abs(np.fft.rfft(h, 4096))
    ff = np.fft.rfftfreq(4096)
    assert np.all(np.abs(response[(ff > 0.22) & (ff < 0.28)] - 10.0) < 1.5)
    assert np.all(np.abs(response[(ff < 0.15) | (ff > 0.35)] - 1.0) < 0.1)


def test_wiener_fir_needs_odd_taps():
    with pytest.raises(ValueError, match="odd"):
        wiener_fir(_frames(2, 64), _frames(2, 64), taps=32)
