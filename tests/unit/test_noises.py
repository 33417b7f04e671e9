"""Speech-denoising noises: spectra, stationarity, babble leakage, the active-speech SNR mixer."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from scipy import signal as sps

from pipeline.config.loading import _format_error
from pipeline.config.noises import NoiseMix, SpeechNoiseDeg
from pipeline.dsp import mixing as M
from pipeline.dsp import noises as N

SR = 16_000


def tones(n: int, T: int, sr: int = SR, f0: float = 200.0, step: float = 100.0) -> np.ndarray:
    """Clip i is a sinusoid at f0 + i * step Hz (whole cycles per clip, so each is one rfft bin)."""
    t = np.arange(T) / sr
    return (0.3 * np.sin(2 * np.pi * (f0 + step * np.arange(n))[:, None] * t)).astype(np.float32)


def make(kind: str, seed: int, n: int = 4, T: int = 8000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind in ("white", "colored", "hum", "clicks"):
        return getattr(N, kind)(rng, T, SR, n_clips=n)
    if kind == "babble":
        return N.babble(rng, T, SR, n_clips=n, pool=tones(12, 4000), talkers=3,
                        pool_ids=np.arange(12), target_ids=np.arange(n))
    if kind == "music":
        return N.music(rng, T, SR, n_clips=n, pool=[tones(1, 3000)[0], tones(1, 9000)[0]])
    base = N.white(rng, T, SR, n_clips=n)
    return N.bursts(rng, base, SR) if kind == "bursts" else N.modulate(rng, base, SR)


def psd_slope(x: np.ndarray, lo: float, hi: float, sr: int = SR) -> float:
    f, p = sps.welch(x, fs=sr, nperseg=4096, axis=-1)
    p = p.mean(axis=0)
    band = (f >= lo) & (f <= hi)
    return float(np.polyfit(np.log10(f[band]), np.log10(p[band]), 1)[0])


def frame_db(x: np.ndarray, F: int = 320) -> np.ndarray:
    T = x.shape[-1] // F * F
    e = np.mean(x[..., :T].reshape(*x.shape[:-1], -1, F) ** 2, axis=-1)
    return 10 * np.log10(e + 1e-20)


# ----------------------------------------------------------------------------- generators


@pytest.mark.parametrize("kind", sorted(M.KNOBS))
def test_shape_dtype_finite_and_determinism(kind):
    a, b, c = make(kind, 7), make(kind, 7), make(kind, 8)
    assert a.shape == (4, 8000) and a.dtype == np.float32 and np.isfinite(a).all()
    assert a.tobytes() == b.tobytes()  # same seed -> identical bytes
    assert not np.array_equal(a, c)
    assert np.abs(a).max() > 0


def test_white_is_flat():
    x = N.white(np.random.default_rng(0), 32_000, SR, n_clips=8)
    assert abs(psd_slope(x, 100, 7000)) < 0.05
    assert abs(float(np.std(x)) - 1) < 0.01


@pytest.mark.parametrize("a", [0.5, 1.0, 1.5, 2.0])
def test_colored_slope_is_minus_a(a):
    x = N.colored(np.random.default_rng(1), 32_000, SR, n_clips=8, exponent=a)
    assert abs(psd_slope(x, 100, 4000) + a) < 0.1
    assert abs(float(np.sqrt(np.mean(x**2))) - 1) < 1e-3


def test_colored_exponent_is_per_clip():
    x = N.colored(np.random.default_rng(2), 32_000, SR, n_clips=2, exponent=[0.5, 2.0])
    assert abs(psd_slope(x[:1], 100, 4000) + 0.5) < 0.15
    assert abs(psd_slope(x[1:], 100, 4000) + 2.0) < 0.15


@pytest.mark.parametrize("f0", [50, 60])
def test_hum_peaks_at_mains_multiples(f0):
    x = N.hum(np.random.default_rng(3), 4 * SR, SR, n_clips=1, mains_hz=f0, harmonics=6,
              decay_db=3.0, jitter=0.0005, hiss_db=-40.0)[0]
    f, p = sps.welch(x, fs=SR, nperseg=SR)  # 1 Hz bins
    floor = np.median(p)
    for k in range(1, 7):
        near = np.abs(f - k * f0) <= 2
        assert p[near].max() > 1e3 * floor, f"no peak at {k * f0} Hz"
    # the six strongest well-separated bins are exactly the harmonics
    peaks, _ = sps.find_peaks(p, distance=10)
    top = np.sort(f[peaks[np.argsort(p[peaks])[-6:]]])
    np.testing.assert_allclose(top, f0 * np.arange(1, 7), atol=2)
    other = 60 if f0 == 50 else 50
    assert p[np.abs(f - other) <= 2].max() < 1e-2 * p[np.abs(f - f0) <= 2].max()


def test_hum_drops_harmonics_above_nyquist():
    x = N.hum(np.random.default_rng(4), 8000, 1000, n_clips=1, mains_hz=60, harmonics=40,
              decay_db=0.0, hiss_db=-80.0)[0]
    f, p = sps.welch(x, fs=1000, nperseg=1000)
    assert np.isfinite(x).all()
    assert p[f > 0.95 * 500].max() < 1e-4 * p.max()  # nothing folded back above 475 Hz


def test_babble_never_contains_the_target_and_uses_3_to_10_talkers():
    n, T = 12, SR  # 1 s clips of whole-cycle tones: each talker is one rfft bin
    pool = tones(n, T)
    rng = np.random.default_rng(5)
    k = rng.integers(3, 11, size=n)
    y, src = N.babble(rng, T, SR, n_clips=n, pool=pool, talkers=k, pool_ids=np.arange(n),
                      target_ids=np.arange(n), return_sources=True)
    spec = np.abs(np.fft.rfft(y, axis=-1))
    bins = (200 + 100 * np.arange(n)).astype(int)
    present = spec[:, bins] > 0.01 * spec[:, bins].max(axis=1, keepdims=True)
    for i in range(n):
        used = src[i][src[i] >= 0]
        assert i not in used and len(set(used)) == len(used) == k[i]
        assert not present[i, i]  # no trace of its own speech
        assert present[i].sum() == k[i]


def test_babble_excludes_the_whole_speaker_and_refuses_a_small_pool():
    pool = tones(8, 4000)
    speakers = np.repeat(np.arange(4), 2)  # two clips per speaker
    rng = np.random.default_rng(6)
    _, src = N.babble(rng, 4000, SR, n_clips=8, pool=pool, talkers=3, pool_ids=speakers,
                      target_ids=speakers, return_sources=True)
    assert all(speakers[j] != speakers[i] for i in range(8) for j in src[i])
    with pytest.raises(ValueError, match="larger pool"):
        N.babble(rng, 4000, SR, n_clips=8, pool=pool, talkers=7, pool_ids=speakers,
                 target_ids=speakers)


def test_mix_babble_defaults_to_the_other_clips_of_the_batch():
    x = tones(16, 4000)
    kinds = {"babble": NoiseMix().kinds()["babble"]}
    _, draws = M.speech_noise_mix(np.random.default_rng(7), x, kinds, sample_rate=SR)
    for i, knobs in enumerate(draws["noise_knobs"]):
        used = [r for r in knobs["talker_rows"] if r >= 0]
        assert 3 <= knobs["talkers"] == len(used) <= 10 and i not in used


@pytest.mark.parametrize("kind", ["bursts", "am"])
def test_bursts_and_am_are_non_stationary(kind):
    rng = np.random.default_rng(8)
    base = N.white(rng, 4 * SR, SR, n_clips=8)
    y = (N.bursts(rng, base, SR, rate_hz=1.0, duration_s=0.3, floor_db=-40.0) if kind == "bursts"
         else N.modulate(rng, base, SR, rate_hz=2.0, depth_db=10.0))
    white_spread = np.median(np.std(frame_db(base), axis=1))
    spread = np.median(np.std(frame_db(y), axis=1))
    assert white_spread < 1.0 and spread > 4.0 and spread > 5 * white_spread


def test_clicks_are_sparse_and_crackle_rings():
    y = N.clicks(np.random.default_rng(9), SR, SR, n_clips=1, click_prob=1e-3, click_amp=1.0,
                 crackle_prob=0.0)[0]
    assert set(np.unique(np.abs(y))) <= {0.0, 1.0} and 0 < np.count_nonzero(y) < 50
    z = N.clicks(np.random.default_rng(9), SR, SR, n_clips=1, click_prob=0.0, crackle_prob=2e-3,
                 crackle_decay_ms=1.0)[0]
    assert np.count_nonzero(z) > 10 * 2e-3 * SR  # each impulse rings over many samples


# ----------------------------------------------------------------------------- mixing


def speech_with_pauses(rng, n: int, T: int) -> np.ndarray:
    """Tones gated on and off in 0.1-0.5 s runs: about half of each clip is silence."""
    x = tones(n, T, f0=150, step=37) * rng.uniform(0.05, 1.0, (n, 1)).astype(np.float32)
    runs = np.repeat(rng.random((n, T // 1600 + 1)) < 0.5, 1600, axis=1)[:, :T]
    runs[:, :1600] = True  # never all silent
    return np.where(runs, x, np.float32(0))


def active_snr(speech, noisy, **kw) -> np.ndarray:
    m = M.active_mask(speech, SR, **kw)
    s, v = np.where(m, speech, 0), np.where(m, noisy - speech, 0)
    return 10 * np.log10(np.sum(s.astype(np.float64) ** 2, 1) / np.sum(v.astype(np.float64) ** 2, 1))


@settings(max_examples=30, deadline=None)
@given(snr=st.floats(-10, 30), seed=st.integers(0, 2**32 - 1), scale=st.floats(1e-3, 1e3))
def test_mixer_hits_the_active_speech_snr(snr, seed, scale):
    rng = np.random.default_rng(seed)
    x = speech_with_pauses(rng, 6, SR)
    noise = N.colored(rng, SR, SR, n_clips=6, exponent=rng.uniform(0, 2)) * np.float32(scale)
    y, info = M.mix_at_snr(x, noise, np.full(6, snr), sample_rate=SR)
    assert y.dtype == np.float32 and np.isfinite(y).all()
    np.testing.assert_allclose(active_snr(x, y), snr, atol=0.1)
    np.testing.assert_allclose(info["snr_db_active"], snr, atol=0.1)


def test_vad_is_relative_to_the_clip_peak():
    x = tones(1, 3 * SR)[0].copy()
    x[SR:2 * SR] *= 10 ** (-20 / 20)  # quiet speech: still active
    x[2 * SR:] *= 10 ** (-50 / 20)  # below -40 dB: not active
    m = M.active_mask(x * 1e-4, SR)[0]  # the absolute level does not matter
    assert m[:2 * SR].all() and not m[2 * SR + 320:].any()


def test_mixer_ignores_silent_parts():
    rng = np.random.default_rng(10)
    speech = tones(1, SR)[0]
    noise = N.white(rng, 4 * SR, SR)[0]
    padded = np.concatenate([speech, np.zeros(3 * SR, np.float32)])
    short, a = M.mix_at_snr(speech, noise[:SR], 5.0, sample_rate=SR)
    long, b = M.mix_at_snr(padded, noise, 5.0, sample_rate=SR)
    assert abs(float(a["noise_gain"][0]) / float(b["noise_gain"][0]) - 1) < 0.02
    seg = long[:SR] - speech
    got = 10 * np.log10(np.sum(speech.astype(np.float64) ** 2) / np.sum(seg.astype(np.float64) ** 2))
    assert abs(got - 5.0) < 0.2  # over the whole clip it would read about 6 dB lower


def test_silent_inputs_give_no_nan():
    x, z = tones(2, 4000), np.zeros((2, 4000), np.float32)
    noise = N.white(np.random.default_rng(11), 4000, SR, n_clips=2)
    for s, v in [(z, noise), (x, z), (z, z)]:
        with np.errstate(all="raise"):
            y, info = M.mix_at_snr(s, v, [0.0, 10.0], sample_rate=SR)
        assert np.isfinite(y).all() and np.array_equal(y, s)
        assert (info["noise_gain"] == 0).all() and (info["snr_db_active"] == N.SNR_CAP_DB).all()
    assert not M.active_mask(z, SR).any()
    silent_pool = np.zeros((12, 4000), np.float32)
    for y in (N.babble(np.random.default_rng(0), 4000, SR, n_clips=2, pool=silent_pool, talkers=3),
              N.music(np.random.default_rng(0), 4000, SR, n_clips=2, pool=silent_pool),
              N.clicks(np.random.default_rng(0), 4000, SR, n_clips=2, click_prob=0, crackle_prob=0)):
        assert np.isfinite(y).all() and not y.any()
    y, draws = M.speech_noise_mix(np.random.default_rng(0), z, NoiseMix().kinds(), sample_rate=SR)
    assert np.isfinite(y).all() and np.isfinite(draws["snr_db_active"]).all()


def test_noise_missing_the_speech_is_not_blown_up():
    x = np.concatenate([tones(1, SR)[0], np.zeros(SR, np.float32)])
    noise = np.concatenate([np.zeros(SR, np.float32), N.white(np.random.default_rng(12), SR, SR)[0]])
    y, info = M.mix_at_snr(x, noise, 0.0, sample_rate=SR)
    assert np.isfinite(y).all() and info["snr_db_active"][0] == N.SNR_CAP_DB
    # its whole-clip power is at most -floor_db (10 dB) above the 0 dB target, not infinite
    ps = np.mean(x[:SR].astype(np.float64) ** 2)
    assert np.mean((y - x).astype(np.float64) ** 2) == pytest.approx(10 * ps, rel=1e-3)


# ----------------------------------------------------------------------------- the mixture


def test_speech_noise_mix_records_its_draws():
    rng = np.random.default_rng(13)
    x = speech_with_pauses(rng, 200, 4000)
    cfg = SpeechNoiseDeg.model_validate({"snr_db": [-5, 20], "noises": {
        "white": {"weight": 3}, "colored": {"weight": 1}, "hum": {"weight": 1},
        "babble": {"weight": 0}, "bursts": {"weight": 0}, "am": {"weight": 1}, "clicks": {"weight": 0}}})
    y, d = M.speech_noise_mix(rng, x, cfg.noises.kinds(), cfg.snr_db, sample_rate=SR)
    assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
    assert set(d["noise_kind"]) == {"white", "colored", "hum", "am"}
    assert abs(np.mean(d["noise_kind"] == "white") - 0.5) < 0.1
    assert ((d["snr_db"] >= -5) & (d["snr_db"] <= 20)).all()
    np.testing.assert_allclose(d["snr_db_active"], d["snr_db"], atol=0.1)
    np.testing.assert_allclose(active_snr(x, y), d["snr_db"], atol=0.1)
    json.dumps(list(d["noise_knobs"]))  # plain values: ready for a manifest
    for kind, knobs in zip(d["noise_kind"], d["noise_knobs"], strict=True):
        if kind == "colored":
            assert 0.5 <= knobs["exponent"] <= 2.0
        if kind == "hum":
            assert knobs["mains_hz"] in (50, 60) and isinstance(knobs["harmonics"], int)
            assert 1 <= knobs["harmonics"] <= 10
        if kind == "am":
            assert knobs["base"] in ("white", "colored", "hum") and 6 <= knobs["depth_db"] <= 20
    again, d2 = M.speech_noise_mix(np.random.default_rng(13), x, cfg.noises.kinds(), cfg.snr_db,
                                   sample_rate=SR)
    y2, _ = M.speech_noise_mix(np.random.default_rng(13), x, cfg.noises.kinds(), cfg.snr_db,
                               sample_rate=SR)
    assert again.tobytes() == y2.tobytes()


def test_speech_noise_mix_refuses_what_it_cannot_do():
    x = tones(12, 2000)
    rng = np.random.default_rng(14)
    with pytest.raises(ValueError, match="no music clips"):
        M.speech_noise_mix(rng, x, {"music": {"weight": 1}}, sample_rate=SR)
    with pytest.raises(ValueError, match="unknown noise kind"):
        M.speech_noise_mix(rng, x, {"pink": {"weight": 1}}, sample_rate=SR)
    with pytest.raises(ValueError, match="unknown knob `exponnent`"):
        M.speech_noise_mix(rng, x, {"colored": {"exponnent": (1, 2)}}, sample_rate=SR)
    with pytest.raises(ValueError, match="pool_ids and target_ids"):
        M.speech_noise_mix(rng, x, {"babble": {}}, sample_rate=SR, pool=x)
    y, d = M.speech_noise_mix(rng, x, {"music": {"weight": 1}}, sample_rate=SR, music=[tones(1, 500)[0]])
    assert (d["noise_kind"] == "music").all() and np.isfinite(y).all()


# ----------------------------------------------------------------------------- config


def test_config_and_generators_agree_on_kinds_and_knobs():
    kinds = NoiseMix().kinds()
    assert set(kinds) == set(M.KNOBS)
    for kind, spec in kinds.items():
        assert set(spec) - {"weight"} == set(M.KNOBS[kind]), kind
    cfg = SpeechNoiseDeg()
    assert cfg.kind == "speech_noise" and cfg.snr_db == (-5.0, 20.0)
    assert kinds["music"]["weight"] == 0  # needs a music corpus: opt-in


@pytest.mark.parametrize("raw, key", [
    ({"noises": {"hum": {"harmonics": [0, 5]}}}, "noises.hum.harmonics"),
    ({"noises": {"colored": {"exponent": [2, 1]}}}, "noises.colored.exponent"),
    ({"snr_db": [-5, 200]}, "snr_db"),
    ({"noises": {"babble": {"weight": -1}}}, "noises.babble.weight"),
    ({"noises": {"bursts": {"base": ["pink"]}}}, "noises.bursts.base.0"),
])
def test_bad_values_name_their_key(raw, key):
    with pytest.raises(ValidationError) as exc:
        SpeechNoiseDeg.model_validate(raw)
    msg = _format_error(exc.value, "params.yaml")
    assert msg.startswith(f"params.yaml: {key}:"), msg


def test_typos_and_all_zero_weights_are_refused():
    with pytest.raises(ValidationError) as exc:
        SpeechNoiseDeg.model_validate({"noises": {"hum": {"harmonic": [1, 3]}}})
    assert "did you mean `harmonics`" in _format_error(exc.value, "params.yaml")
    zero = {k: {"weight": 0} for k in NoiseMix.model_fields}
    with pytest.raises(ValidationError, match="weight > 0"):
        SpeechNoiseDeg.model_validate({"noises": zero})


# ----------------------------------------------------------------------------- speed


def test_a_100_clip_4_s_batch_is_vectorized():
    rng = np.random.default_rng(15)
    n, T = 100, 4 * SR
    x = speech_with_pauses(rng, n, T)
    times = {}
    for kind in ("white", "colored", "hum", "clicks"):
        t0 = time.perf_counter()
        getattr(N, kind)(rng, T, SR, n_clips=n)
        times[kind] = time.perf_counter() - t0
    kinds = SpeechNoiseDeg.model_validate({"noises": {"music": {"weight": 1}}}).noises.kinds()
    t0 = time.perf_counter()
    y, _ = M.speech_noise_mix(rng, x, kinds, sample_rate=SR, music=list(tones(4, 3 * SR)))
    times["speech_noise_mix (all kinds)"] = time.perf_counter() - t0
    print("100 x 4 s @ 16 kHz: " + ", ".join(f"{k} {v:.3f} s" for k, v in times.items()))
    assert np.isfinite(y).all()
    assert max(times.values()) < 20  # a per-sample Python loop would take minutes
