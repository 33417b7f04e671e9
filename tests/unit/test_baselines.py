"""Classical baselines and the sine oracle on synthetic frames made here with numpy.

Improvement tests only assert what physics guarantees: smoothing must help on noisy
low-frequency sines, interpolation must help on sample-and-hold, repair must help on clipping
and gaps, and the oracle must recover sines where the dictionary makes them identifiable.
"""

from __future__ import annotations

import types
import typing

import numpy as np
import pytest

from pipeline.config import (
    BandwidthDeg,
    BitdepthDeg,
    ClipDeg,
    Degradation,
    DropoutDeg,
    HarmonicSignal,
    MultitoneSignal,
    NoiseDeg,
    QuantizeDeg,
    SineSignal,
    WavSignal,
)
from pipeline.dsp.baselines import (
    REGISTRY,
    Baseline,
    GapFill,
    Identity,
    best_classical,
    classical_baselines,
)
from pipeline.dsp.metrics import snr_db
from pipeline.dsp.oracles import bandwidth_task_facts, ideal_mask_bound, oracle, oracle_task_facts

SINE = SineSignal(f_range=(1, 9), amplitude=(0.05, 1.0), phase="zero")
SINE_RANDOM = SineSignal(f_range=(1, 9), amplitude=(0.05, 1.0), phase="random")
NOISE = NoiseDeg(std=(0.02, 0.2), impulse_prob=(0.0, 0.01), impulse_amp=(0.2, 1.0))


# ---------------------------------------------------------------------------- local degraders


def sines(rng, n, t, freqs=(1, 9), amp=(0.05, 1.0), random_phase=False):
    f = rng.integers(freqs[0], freqs[1] + 1, n)
    a = rng.uniform(amp[0], amp[1], n)
    phi = rng.uniform(0, 2 * np.pi, n) if random_phase else np.zeros(n)
    k = np.arange(t)
    return (a[:, None] * np.sin(2 * np.pi * f[:, None] * k / t + phi[:, None])).astype(np.float32)


def add_noise(rng, x, std=(0.02, 0.2), impulse_prob=(0.0, 0.01), impulse_amp=(0.2, 1.0)):
    n = len(x)
    s = rng.uniform(*std, n)[:, None]
    p = rng.uniform(*impulse_prob, n)[:, None]
    a = rng.uniform(*impulse_amp, n)[:, None]
    hits = (rng.random(x.shape) < p) * rng.choice([-1.0, 1.0], x.shape) * a
    return (x + s * rng.standard_normal(x.shape) + hits).astype(np.float32)


def sample_and_hold(x, k):
    return x[:, (np.arange(x.shape[1]) // k) * k]


def requantize(x, bits):
    step = 2.0 / 2**bits
    return (np.round(x / step) * step).astype(np.float32)


def clip_frames(rng, x, level=(0.3, 0.8)):
    lv = rng.uniform(*level, len(x))[:, None] * np.max(np.abs(x), axis=1, keepdims=True)
    return np.clip(x, -lv, lv)


def drop_gaps(rng, x, n_gaps=3, length=(4, 30)):
    y = x.copy()
    n, t = x.shape
    starts = rng.integers(0, t - length[1], (n, n_gaps))
    lengths = rng.integers(length[0], length[1] + 1, (n, n_gaps))
    k = np.arange(t)
    gap = ((k >= starts[..., None]) & (k < (starts + lengths)[..., None])).any(axis=1)
    y[gap] = 0.0
    return y


def mse(a, b):
    return float(np.mean((np.asarray(a, np.float64) - b) ** 2))


def fitted(degradation, clean, degraded, only=None):
    """Fit the factory's baselines (or just those named in ``only``) on the given pairs."""
    out = classical_baselines(degradation, 16000)
    return {b.name: b.fit(clean, degraded) for b in out if only is None or b.name in only}


@pytest.fixture(scope="module")
def noisy():
    """Noise baselines fitted once on noisy random-phase sines, plus held-out frames."""
    rng = np.random.default_rng(0)
    x = sines(rng, 240, 1024, random_phase=True)
    y = add_noise(rng, x)
    return fitted(NOISE, x[:160], y[:160]), x[160:], y[160:]


# ---------------------------------------------------------------------------- factory / shapes


def test_factory_names_per_kind():
    def names(deg, **kw):
        return [b.name for b in classical_baselines(deg, 16000, **kw)]

    assert names(NOISE) == ["identity", "lowpass", "wiener", "median_lowpass", "savgol",
                            "wiener_stft_dd"]  # fmt: skip
    assert "wiener_stft_dd" not in names(NOISE, frame_length=256)
    for deg in (QuantizeDeg(factor=4), BandwidthDeg(factor=4, order=8, ripple_db=0.05)):
        assert names(deg) == ["identity", "linear", "cubic", "bandlimited"]
        assert {b.params.get("factor", 4) for b in classical_baselines(deg, 16000)} == {4}
    assert names(BitdepthDeg(bits=8, dither=False)) == [
        "identity",
        "lowpass",
        "savgol",
    ]
    assert names(ClipDeg(level=(0.3, 0.9))) == ["identity", "cubic"]
    assert names(DropoutDeg(gap_prob=(0.0, 1.0), gap_length=(2, 9))) == [
        "identity",
        "linear",
        "cubic",
    ]
    # a config class nobody registered yet gets identity only, so evaluation does not break
    assert names(types.SimpleNamespace(kind="something_new")) == ["identity"]


def test_every_degradation_config_is_registered_and_dicts_are_refused():
    union = typing.get_args(typing.get_args(Degradation)[0])  # Annotated[A | B | ..., Field]
    assert set(union) == set(REGISTRY)
    for cls in union:  # names key methods.csv rows, so they must be unique per set
        deg = cls(std=(0.0, 0.1)) if cls is NoiseDeg else cls()
        got = [b.name for b in classical_baselines(deg, 16000)]
        assert len(got) == len(set(got)) and got[0] == "identity" and len(got) > 1, got
    with pytest.raises(TypeError, match="typed"):
        classical_baselines(NOISE.model_dump(), 16000)


def test_best_classical_highest_finite_gain_first_on_ties():
    assert best_classical({"identity": 0.0, "lowpass": 3.5, "wiener": 2.0}) == "lowpass"
    assert best_classical({"identity": 0.0, "a": 1.0, "b": 1.0}) == "a"  # earliest of a tie
    assert best_classical({"identity": 0.0, "a": -1.0}) == "identity"  # doing nothing can win
    gains = {"identity": 0.0, "nan": float("nan"), "inf": float("inf"), "a": 0.5}
    assert best_classical(gains) == "a"  # non-finite gains never win, wherever they stand
    assert best_classical({"nan": float("nan"), "identity": 0.0}) == "identity"
    assert best_classical({"x": np.float64(2.0), "y": np.float32(1.0)}) == "x"
    with pytest.raises(ValueError, match="no finite"):
        best_classical({"a": float("nan")})
    with pytest.raises(ValueError):
        best_classical({})


@pytest.mark.parametrize(
    "degradation",
    [
        NOISE,
        QuantizeDeg(factor=8),
        BandwidthDeg(factor=4, order=8, ripple_db=0.05),
        BitdepthDeg(bits=6, dither=False),
        ClipDeg(level=(0.3, 0.8)),
        DropoutDeg(gap_prob=(0.0, 0.01), gap_length=(4, 30)),
    ],
    ids=lambda d: d.kind,
)
def test_every_baseline_shape_dtype_and_protocol(degradation):
    rng = np.random.default_rng(1)
    x = sines(rng, 24, 512, random_phase=True)
    y = add_noise(rng, x)
    for b in classical_baselines(degradation, 16000):
        assert isinstance(b, Baseline)
        assert b.fit(x, y) is b
        out = b(y)
        assert out.shape == y.shape and out.dtype == np.float32, b.name
        assert np.isfinite(out).all(), b.name
        single = b(y[3])
        assert single.shape == (512,) and single.dtype == np.float32
        np.testing.assert_allclose(single, out[3], atol=1e-5)


def test_identity_is_the_input():
    y = np.linspace(-1, 1, 64, dtype=np.float64).reshape(2, 32)
    out = Identity().fit(y, y)(y)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, y.astype(np.float32))


# ---------------------------------------------------------------------------- noise


@pytest.mark.parametrize("name", ["lowpass", "wiener", "median_lowpass", "savgol", "wiener_stft_dd"])
def test_noise_baselines_beat_identity_on_low_frequency_sines(noisy, name):
    baselines, x_test, y_test = noisy
    b = baselines[name]
    # at most 9 of 512 frequency bins carry signal: smoothing must remove most noise energy
    assert mse(b(y_test), x_test) < 0.25 * mse(y_test, x_test), b.params


def test_lowpass_cutoff_lands_above_the_highest_sine(noisy):
    b = noisy[0]["lowpass"]
    assert 9 / 1024 <= b.params["cutoff_cycles_per_sample"] < 40 / 1024
    assert b.params["cutoff_hz"] == pytest.approx(b.params["cutoff_cycles_per_sample"] * 16000)


def test_median_helps_when_impulses_dominate():
    rng = np.random.default_rng(2)
    x = sines(rng, 240, 512)
    y = add_noise(rng, x, std=(0.0, 0.002), impulse_prob=(0.02, 0.05), impulse_amp=(2.0, 4.0))
    bs = fitted(NOISE, x[:160], y[:160], only=("lowpass", "median_lowpass"))
    assert bs["median_lowpass"].params["median_width"] > 1
    med = mse(bs["median_lowpass"](y[160:]), x[160:])
    assert med < 0.5 * mse(bs["lowpass"](y[160:]), x[160:])


# ---------------------------------------------------------------------------- retained samples


@pytest.mark.parametrize("name", ["linear", "cubic", "bandlimited"])
def test_interpolators_beat_identity_on_sample_and_hold(name):
    rng = np.random.default_rng(3)
    x = sines(rng, 120, 1024, random_phase=True)
    y = sample_and_hold(x, 8)
    b = fitted(QuantizeDeg(factor=8), x[:60], y[:60], only=(name,))[name]
    assert b.params["phase"] == 0  # held values sit at the start of each hold
    assert mse(b(y[60:]), x[60:]) < 0.05 * mse(y[60:], x[60:])


def test_bandlimited_is_exact_for_band_limited_periodic_frames():
    rng = np.random.default_rng(4)
    for t in (1024, 1000):  # 1000 is not a multiple of K: the least-squares path
        x = sines(rng, 20, t, random_phase=True)
        y = sample_and_hold(x, 8)
        b = fitted(QuantizeDeg(factor=8), x, y, only=("bandlimited",))["bandlimited"]
        assert snr_db(b(y), x).min() > 60


def test_bandwidth_interpolators_run_from_decimated_spline():
    rng = np.random.default_rng(5)
    x = sines(rng, 40, 512, random_phase=True)
    pos = np.arange(0, 512, 4)
    # cheap stand-in for the real degradation: keep every 4th sample, linear back to the grid
    y = np.stack([np.interp(np.arange(512), pos, row[pos]) for row in x]).astype(np.float32)
    bs = fitted(BandwidthDeg(factor=4), x[:20], y[:20])
    for name in ("cubic", "bandlimited"):
        assert mse(bs[name](y[20:]), x[20:]) < 0.1 * mse(y[20:], x[20:])


# ---------------------------------------------------------------------------- bit depth, clip, gaps


@pytest.mark.parametrize("name", ["lowpass", "savgol"])
def test_smoothers_beat_identity_on_bit_reduction(name):
    rng = np.random.default_rng(6)
    x = sines(rng, 120, 1024, amp=(0.3, 1.0), random_phase=True)
    y = requantize(x + rng.uniform(-1, 1, x.shape) * 1e-2, 5)  # dithered 5-bit
    deg = BitdepthDeg(bits=5, dither=True)
    b = fitted(deg, x[:60], y[:60], only=(name,))[name]
    assert mse(b(y[60:]), x[60:]) < 0.5 * mse(y[60:], x[60:])


def test_clip_repair_beats_identity_and_respects_the_level():
    rng = np.random.default_rng(7)
    x = sines(rng, 200, 1024, random_phase=True)
    y = clip_frames(rng, x)
    b = fitted(ClipDeg(level=(0.3, 0.8)), x[:100], y[:100])["cubic"]
    out = b(y[100:])
    assert mse(out, x[100:]) < 0.3 * mse(y[100:], x[100:])
    level = np.max(np.abs(y[100:]), axis=1, keepdims=True)
    clipped = np.abs(y[100:]) >= level * (1 - 1e-6)
    assert np.all(np.abs(out[clipped]) >= level.repeat(1024, 1)[clipped] * (1 - 1e-6))
    assert np.all(np.sign(out[clipped]) == np.sign(y[100:][clipped]))


@pytest.mark.parametrize("name", ["linear", "cubic"])
def test_gap_fill_beats_identity(name):
    rng = np.random.default_rng(8)
    x = sines(rng, 100, 1024, random_phase=True)
    y = drop_gaps(rng, x)
    b = fitted(DropoutDeg(), x, y)[name]
    assert mse(b(y), x) < 0.05 * mse(y, x)


def test_gap_fill_exact_on_polynomials():
    k = np.arange(40, dtype=np.float64)
    ramp = 1.0 + 0.1 * k
    cubic = 1.0 + 0.05 * k - 0.002 * k**2 + 1e-5 * k**3 + 3.0
    y = np.stack([ramp, cubic])
    gapped = y.copy()
    gapped[:, 10:17] = 0.0
    gapped[:, 25] = 0.0  # a single zero is not a gap and stays
    np.testing.assert_allclose(GapFill("linear")(gapped)[0, 10:17], ramp[10:17], rtol=1e-6)
    np.testing.assert_allclose(GapFill("cubic")(gapped)[1, 10:17], cubic[10:17], rtol=1e-5)
    assert GapFill("cubic")(gapped)[1, 25] == 0.0


# ---------------------------------------------------------------------------- oracle


def test_oracle_only_for_sine_family_and_modelled_kinds():
    assert oracle(MultitoneSignal(), NOISE) is None
    assert oracle(WavSignal(), QuantizeDeg(factor=4)) is None
    assert oracle(SINE, BandwidthDeg(factor=4)) is None
    for deg in (NOISE, QuantizeDeg(factor=4), BitdepthDeg(), ClipDeg(), DropoutDeg()):
        assert callable(oracle(SINE, deg)), deg.kind


@pytest.mark.parametrize("signal", [SINE, SINE_RANDOM], ids=["zero", "random"])
def test_oracle_recovers_lightly_noisy_sines(signal):
    rng = np.random.default_rng(9)
    x = sines(rng, 300, 1024, random_phase=signal.phase == "random")
    y = add_noise(rng, x, std=(0.0, 1e-3), impulse_prob=(0.0, 0.005), impulse_amp=(0.2, 1.0))
    out = oracle(signal, NOISE)(y)
    assert out.shape == y.shape and out.dtype == np.float32
    assert snr_db(out, x).min() > 40
    assert snr_db(oracle(signal, NOISE)(y[0]), x[0]) > 40  # a single (T,) frame


def test_oracle_exact_on_sample_and_hold_of_visible_frequencies():
    rng = np.random.default_rng(10)
    deg = QuantizeDeg(factor=10)
    x = sines(rng, 400, 100)
    f = np.argmax(np.abs(np.fft.rfft(x, axis=1)), axis=1)
    x = x[f != 5]  # f = 5 vanishes at every held instant
    out = oracle(SINE, deg)(sample_and_hold(x, 10))
    assert snr_db(out, x).min() >= 99.0
    # with random phase only f < 5 is identifiable (f and 10 - f share a sin/cos plane)
    xr = sines(rng, 200, 100, freqs=(1, 4), random_phase=True)
    assert snr_db(oracle(SINE_RANDOM, deg)(sample_and_hold(xr, 10)), xr).min() >= 99.0


def test_oracle_clip_and_dropout_use_trusted_samples():
    rng = np.random.default_rng(11)
    x = sines(rng, 100, 512, random_phase=True)
    assert snr_db(oracle(SINE_RANDOM, ClipDeg())(clip_frames(rng, x)), x).min() > 60
    assert snr_db(oracle(SINE_RANDOM, DropoutDeg())(drop_gaps(rng, x)), x).min() > 60


def test_task_facts_for_sample_and_hold_k10_t100():
    facts = oracle_task_facts(SINE, QuantizeDeg(factor=10), 100)
    invisible = [s for s in facts if "invisible" in s]
    assert len(invisible) == 1 and "f=5 " in invisible[0]
    pairs = [s for s in facts if s.startswith("atoms ")]
    assert len(pairs) == 4
    for a, b in [(1, 9), (2, 8), (3, 7), (4, 6)]:
        assert any(f"f={a} and f={b} " in s and "sign" in s for s in pairs)
    assert any("Nyquist is 5 cycles/frame" in s for s in facts)


def test_task_facts_random_phase_and_non_degenerate_cases():
    facts = oracle_task_facts(SINE_RANDOM, QuantizeDeg(factor=10), 100)
    assert sum("indistinguishable" in s for s in facts) == 4
    assert any("f=5 " in s and "phase ambiguous" in s for s in facts)
    assert oracle_task_facts(SINE, NOISE, 1024) == []
    assert oracle_task_facts(WavSignal(), NOISE, 1024) == []
    # K=4 on T=100: 25 held samples, Nyquist 12.5 > 9, so no atom degenerates
    facts4 = oracle_task_facts(SINE, QuantizeDeg(factor=4), 100)
    assert len(facts4) == 1 and "alias" not in facts4[0]


def test_bandwidth_task_facts():
    facts = bandwidth_task_facts(HarmonicSignal(), BandwidthDeg(factor=4), 16000)
    assert "2000 Hz" in facts[0] and "cannot be predicted" in facts[1]
    assert len(bandwidth_task_facts(SINE, BandwidthDeg(factor=4), 16000)) == 1
    assert bandwidth_task_facts(SINE, NOISE, 1000) == []


def test_ideal_mask_bound_beats_every_real_gain_it_is_compared_with():
    rng = np.random.default_rng(7)
    t = 1024
    n = np.arange(t)
    clean = (np.sin(2 * np.pi * 0.03 * n) + 0.3 * np.sin(2 * np.pi * 0.11 * n))[None].repeat(4, 0)
    degraded = clean + 0.5 * rng.standard_normal(clean.shape)
    bound = snr_db(ideal_mask_bound(clean, degraded, 256), clean)
    for g in (0.3, 0.6, 1.0):  # flat gains are real masks too
        assert (bound > snr_db(g * degraded, clean)).all()
    assert (bound - snr_db(degraded, clean)).mean() > 6.0
    np.testing.assert_allclose(ideal_mask_bound(clean, clean, 256), clean, atol=1e-6)
