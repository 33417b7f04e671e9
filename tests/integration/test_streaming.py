"""Streaming inference: exact overlap-add, seam metric, enhance_file end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import conv_net, save_model_dir
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.enhance import (
    ModelDirError,
    enhance_file,
    enhance_signal,
    enhance_stream,
    load_model_dir,
    naive_frames,
    overlap_add,
    seam_ratio,
)
from pipeline.enhance.stream import enhance_blocks
from pipeline.io.audio import AudioError, read_audio, write_audio_atomic

keras = pytest.importorskip("keras")

MODEL_RATE = 16000
T = 256
LSB16 = 1.0 / 2**15


def identity(frames: np.ndarray) -> np.ndarray:
    return frames.copy()


def _identity_model():
    return keras.Sequential([
        keras.Input((None, 1)),
        keras.layers.Conv1D(1, 1, use_bias=False, kernel_initializer="ones"),
    ])


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """One identity model folder per sample rate (no resampling) plus a 16 kHz one."""
    root = tmp_path_factory.mktemp("models")
    model = _identity_model()
    for rate in (8000, 16000, 44100, 48000):
        save_model_dir(root / f"id{rate}", model, rate=rate)
    return root


def _tones(n: int, rate: int, channels: int, seed: int = 0) -> np.ndarray:
    """Band-limited test audio: a few tones well below the Nyquist of rate and 16 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    top = 0.3 * min(rate, MODEL_RATE)
    cols = []
    for _ in range(channels):
        freqs = rng.uniform(80, top, size=4)
        phases = rng.uniform(0, 2 * np.pi, size=4)
        cols.append(sum(0.2 * np.sin(2 * np.pi * f * t + p) for f, p in zip(freqs, phases,
                                                                            strict=True)))
    return np.stack(cols, axis=1).astype(np.float32)


# ----------------------------------------------------------------------------- overlap-add


@pytest.mark.parametrize("length", [1, 7, T - 1, T, T + 1, 10 * T + 3])
@pytest.mark.parametrize("hop", [T // 2, T // 4])
@pytest.mark.parametrize("pad_mode", ["reflect", "constant"])
def test_overlap_add_identity_is_exact(length, hop, pad_mode):
    x = np.random.default_rng(length).standard_normal(length).astype(np.float32)
    y = overlap_add(x, identity, T, hop=hop, batch_frames=3, pad_mode=pad_mode)
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.abs(y - x).max() < 1e-5


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(1, 3000),
    frame=st.integers(2, 300),
    hop_frac=st.floats(0.01, 0.9),
    batch=st.integers(1, 8),
    pad_mode=st.sampled_from(["reflect", "constant"]),
)
def test_overlap_add_identity_property(n, frame, hop_frac, batch, pad_mode):
    hop = max(1, int(frame * hop_frac))
    x = np.random.default_rng(n).uniform(-1, 1, n).astype(np.float32)
    y = overlap_add(x, identity, frame, hop=hop, batch_frames=batch, pad_mode=pad_mode)
    assert y.shape == x.shape
    assert np.abs(y - x).max() < 1e-5


@pytest.mark.parametrize("hop", [1, 5, 100, 200])
def test_overlap_add_odd_hops_exact(hop):
    x = np.random.default_rng(hop).standard_normal(3 * T + 11).astype(np.float32)
    assert np.abs(overlap_add(x, identity, T, hop=hop) - x).max() < 1e-5


def test_overlap_add_feeds_raw_frames_of_model_length():
    seen = []

    def spy(frames):
        seen.append(frames.copy())
        return frames

    x = np.arange(1000, dtype=np.float32)
    overlap_add(x, spy, T, batch_frames=4)
    frames = np.concatenate(seen)
    assert frames.shape[1] == T
    assert all(f.shape[0] <= 4 for f in seen)
    # interior frames are unwindowed slices of the input
    interior = [f for f in frames if f.min() >= 0 and np.all(np.diff(f) == 1)]
    assert len(interior) >= 3


def test_overlap_add_progress_reaches_total():
    calls = []
    x = np.zeros(5 * T + 1, np.float32)
    overlap_add(x, identity, T, batch_frames=2, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (x.size, x.size)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_overlap_add_rejects_bad_arguments():
    x = np.zeros(100, np.float32)
    with pytest.raises(ValueError, match="hop"):
        overlap_add(x, identity, T, hop=T + 1)
    with pytest.raises(ValueError, match="overlap-add"):
        overlap_add(x, identity, T, hop=T)  # Hann weights vanish at the frame edges
    with pytest.raises(ValueError, match="overlap-add"):
        overlap_add(x, identity, T, hop=T - 1)  # ~1e-4 weight: would amplify model error
    np.testing.assert_array_equal(overlap_add(x, identity, T, hop=T, window="rect"), x)
    with pytest.raises(ValueError, match="shape"):
        overlap_add(x, lambda f: f[:, :-1], T)
    assert overlap_add(np.zeros(0, np.float32), identity, T).shape == (0,)


def test_naive_frames_identity_and_lengths():
    for n in (1, T, 3 * T + 5):
        x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
        np.testing.assert_array_equal(naive_frames(x, identity, T, batch_frames=2), x)


# ----------------------------------------------------------------------------- seams


def test_seam_ratio_naive_vs_overlap_add():
    """A model with a per-frame random offset: naive concatenation clicks, OLA does not."""
    rate, frame = 16000, 1024
    n = 60 * rate
    rng = np.random.default_rng(0)
    t = np.arange(n) / rate
    x = (0.2 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 1375 * t)
         + 0.05 * rng.standard_normal(n)).astype(np.float32)

    def biased(frames):
        # a stationary 5 % gain error (the model's usual error) + a random offset per frame
        offset = rng.normal(0.0, 0.05, size=(frames.shape[0], 1)).astype(np.float32)
        return 0.95 * frames + offset

    naive = seam_ratio(naive_frames(x, biased, frame) - x, frame, hop=frame)
    ola = seam_ratio(overlap_add(x, biased, frame) - x, frame, hop=frame // 2)
    ola_at_naive_edges = seam_ratio(overlap_add(x, biased, frame) - x, frame, hop=frame)
    print(f"\nseam_ratio naive={naive:.2f} overlap-add={ola:.3f} "
          f"(OLA measured at naive boundaries {ola_at_naive_edges:.3f})")
    assert naive > 5
    assert ola < 1.5
    assert ola_at_naive_edges < 1.5


def test_seam_ratio_is_one_without_seams():
    e = np.random.default_rng(3).standard_normal(200_000)
    assert abs(seam_ratio(e, 1024, 512) - 1) < 0.1
    step = np.repeat(np.arange(200), 1000).astype(float)  # jumps every 1000 samples
    assert seam_ratio(step + 0.01 * e, 1000, 1000) > 100


# ----------------------------------------------------------------------------- model folders


def test_load_model_dir_predict(models):
    for target in (models / "id16000", models / "id16000" / "model.keras"):
        predict, meta = load_model_dir(target)
        assert meta["sample_rate"] == MODEL_RATE and meta["frame_length"] == T
        x = np.random.default_rng(0).standard_normal((300, T)).astype(np.float32)
        np.testing.assert_array_equal(predict(x), x)
        np.testing.assert_array_equal(predict(x[:1, :7]), x[:1, :7])  # any T works


def test_load_model_dir_keras_model_exact_ola(models):
    predict, _ = load_model_dir(models / "id16000", batch_size=5)
    for length in (1, 7, T - 1, T, T + 1, 10 * T + 3):
        x = np.random.default_rng(length).uniform(-1, 1, length).astype(np.float32)
        for hop in (T // 2, T // 4):
            assert np.abs(overlap_add(x, predict, T, hop=hop) - x).max() < 1e-5


def _broken_dirs(root: Path, good: Path) -> dict[str, tuple[Path, str]]:
    no_meta = root / "no_meta"
    no_meta.mkdir()
    (no_meta / "model.keras").write_bytes((good / "model.keras").read_bytes())

    bad_meta = root / "bad_meta"
    bad_meta.mkdir()
    (bad_meta / "model.keras").write_bytes((good / "model.keras").read_bytes())
    (bad_meta / "meta.json").write_text(json.dumps({"experiment": "x", "task": "t"}))

    not_zip = root / "not_zip"
    not_zip.mkdir()
    (not_zip / "meta.json").write_text((good / "meta.json").read_text())
    (not_zip / "model.keras").write_text("definitely not a zip")

    no_model = root / "no_model"
    no_model.mkdir()
    (no_model / "meta.json").write_text((good / "meta.json").read_text())
    return {
        "missing": (root / "does_not_exist", "no such"),
        "no_meta": (no_meta, "meta.json is missing"),
        "bad_meta": (bad_meta, "sample_rate"),
        "not_zip": (not_zip, "not a keras"),
        "no_model": (no_model, "model.keras is missing"),
    }


def test_model_dir_errors(tmp_path, models):
    for name, (path, words) in _broken_dirs(tmp_path, models / "id16000").items():
        with pytest.raises(ModelDirError) as exc:
            load_model_dir(path)
        msg = str(exc.value)
        assert str(path) in msg and words.lower() in msg.lower(), (name, msg)
    assert issubclass(ModelDirError, ValueError)


# ----------------------------------------------------------------------------- enhance_file


def _check_output(inp: Path, out: Path, rate: int, x: np.ndarray, tol: float, edge: int = 0):
    y, r, info = read_audio(out)
    assert r == rate
    assert y.shape == x.shape
    sl = slice(edge, x.shape[0] - edge) if edge else slice(None)
    err = np.abs(y[sl] - x[sl]).max() if y[sl].size else 0.0
    assert err <= tol, f"{inp.name}: max error {err:.2e} > {tol:.2e}"
    return y


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_enhance_file_identity_matches_input(tmp_path, models, rate, channels):
    """Model at the file's rate: no resampling, so 16-bit output equals 16-bit input."""
    n = rate // 2 + 37  # not a multiple of the hop
    x = _tones(n, rate, channels)
    inp, out = tmp_path / "in.wav", tmp_path / "sub" / "out.wav"
    write_audio_atomic(inp, x, rate, subtype="PCM_16")
    x16, _, _ = read_audio(inp)
    stats = enhance_file(models / f"id{rate}", inp, out, show_progress=False)
    assert stats["rate"] == rate and stats["channels"] == channels
    assert stats["seconds"] == pytest.approx(n / rate)
    assert stats["realtime_factor"] > 0
    _check_output(inp, out, rate, x16, tol=2 * LSB16)  # libsndfile's 0x7FFF/0x8000 asymmetry
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.wav"]


@pytest.mark.parametrize("rate", [8000, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_enhance_file_resamples_to_model_rate_and_back(tmp_path, models, rate, channels):
    """A 16 kHz model on other rates: shape/rate exact, band-limited content preserved."""
    n = rate + 123
    x = _tones(n, rate, channels, seed=rate)
    inp, out = tmp_path / "in.wav", tmp_path / "out.wav"
    write_audio_atomic(inp, x, rate, subtype="FLOAT")
    enhance_file(models / "id16000", inp, out, subtype="FLOAT", show_progress=False)
    y = _check_output(inp, out, rate, x, tol=5e-3, edge=64)
    snr = 10 * np.log10((x**2).sum() / ((y - x) ** 2).sum())
    assert snr > 40, snr
    assert np.abs(y - x).max() < 0.1  # edges included


@pytest.mark.parametrize(
    ("ext", "subtype", "tol"),
    [("wav", "PCM_16", 2 * LSB16), ("wav", "PCM_24", 1e-6), ("wav", "FLOAT", 1e-6),
     ("flac", "PCM_16", 2 * LSB16), ("flac", "PCM_24", 2**-23)],
)
def test_enhance_file_input_subtypes(tmp_path, models, ext, subtype, tol):
    x = _tones(12345, MODEL_RATE, 2)
    inp, out = tmp_path / f"in.{ext}", tmp_path / f"out.{ext}"
    write_audio_atomic(inp, x, MODEL_RATE, subtype=subtype)
    xr, _, _ = read_audio(inp)
    out_subtype = "PCM_24" if ext == "flac" else "FLOAT"
    enhance_file(models / "id16000", inp, out, subtype=out_subtype, show_progress=False)
    _check_output(inp, out, MODEL_RATE, xr, tol=max(tol, 2**-23))
    assert sf.info(str(out)).subtype == out_subtype


@pytest.mark.parametrize("rate", [16000, 44100])
def test_enhance_file_one_sample(tmp_path, models, rate):
    inp, out = tmp_path / "one.wav", tmp_path / "one_out.wav"
    write_audio_atomic(inp, np.array([[0.25, -0.5]], np.float32), rate, subtype="FLOAT")
    enhance_file(models / "id16000", inp, out, subtype="FLOAT", show_progress=False)
    y, r, _ = read_audio(out)
    assert r == rate and y.shape == (1, 2)
    if rate == MODEL_RATE:
        np.testing.assert_allclose(y, [[0.25, -0.5]], atol=1e-6)


def test_enhance_signal_1d_and_progress(models):
    predict, meta = load_model_dir(models / "id16000")
    x = _tones(5000, 44100, 1)[:, 0]
    calls = []
    y = enhance_signal(x, 44100, predict, meta, progress=lambda d, t: calls.append((d, t)))
    assert y.shape == x.shape
    assert calls and calls[-1][0] == calls[-1][1]


def _error_cases(tmp_path: Path, models: Path):
    good_in = tmp_path / "good.wav"
    write_audio_atomic(good_in, _tones(4000, MODEL_RATE, 1), MODEL_RATE)
    nan_in = tmp_path / "nan.wav"
    x = _tones(4000, MODEL_RATE, 1)
    x[100] = np.nan
    sf.write(nan_in, x, MODEL_RATE, subtype="FLOAT")
    dirs = _broken_dirs(tmp_path, models / "id16000")
    good_model = models / "id16000"
    return [
        ("model without meta.json", dirs["no_meta"][0], good_in, ModelDirError, "meta.json"),
        ("model.keras not a zip", dirs["not_zip"][0], good_in, ModelDirError, "not a keras"),
        ("missing model", dirs["missing"][0], good_in, ModelDirError, "no such"),
        ("missing input", good_model, tmp_path / "absent.wav", AudioError, "no such file"),
        ("NaN input", good_model, nan_in, AudioError, "nan"),
    ]


def test_enhance_file_errors_create_no_output(tmp_path, models):
    for label, model, inp, exc_type, words in _error_cases(tmp_path, models):
        out = tmp_path / "out" / f"{label.replace(' ', '_')}.wav"
        with pytest.raises(exc_type) as exc:
            enhance_file(model, inp, out, show_progress=False)
        assert words.lower() in str(exc.value).lower(), (label, str(exc.value))
        assert not out.exists(), label
        if out.parent.exists():
            assert list(out.parent.iterdir()) == [], label


def test_enhance_file_bad_output_request(tmp_path, models):
    inp = tmp_path / "in.wav"
    write_audio_atomic(inp, _tones(100, MODEL_RATE, 1), MODEL_RATE)
    with pytest.raises(AudioError, match="extension"):
        enhance_file(models / "id16000", inp, tmp_path / "out.mp3", show_progress=False)
    with pytest.raises(AudioError, match="not valid"):
        enhance_file(models / "id16000", inp, tmp_path / "o.flac", subtype="FLOAT",
                     show_progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


def test_enhance_file_failed_run_keeps_existing_output(tmp_path, models):
    inp, out = tmp_path / "in.wav", tmp_path / "out.wav"
    write_audio_atomic(inp, _tones(100, MODEL_RATE, 1), MODEL_RATE)
    write_audio_atomic(out, np.zeros(10, np.float32), MODEL_RATE)
    before = out.read_bytes()
    with pytest.raises(ModelDirError):
        enhance_file(tmp_path / "nope", inp, out, show_progress=False)
    assert out.read_bytes() == before


# ----------------------------------------------------------------------------- streaming


def _bumpy(frames: np.ndarray) -> np.ndarray:
    """Nonlinear and position-dependent within the frame: catches frame-grid misalignment."""
    pos = np.linspace(0.5, 1.5, frames.shape[1], dtype=np.float32)
    return np.tanh(2 * frames) * pos + 0.01 * pos


SMALL_BLOCK = 1000


@pytest.mark.parametrize("rate", [16000, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("n", [1, 50, T - 1, 3 * SMALL_BLOCK + 7, 9 * SMALL_BLOCK + 123])
@pytest.mark.parametrize("hop", [None, T // 4])
def test_enhance_blocks_equal_enhance_signal(rate, channels, n, hop):
    x = np.random.default_rng(n + channels).uniform(-0.7, 0.7, (n, channels)).astype(np.float32)
    meta = {"sample_rate": MODEL_RATE, "frame_length": T}
    ref = enhance_signal(x, rate, _bumpy, meta, hop=hop, batch_frames=7)
    starts, parts = [], []
    for a, y in enhance_blocks(lambda a, b: x[a:b], n, channels, rate, _bumpy, meta, hop=hop,
                               batch_frames=5, block=SMALL_BLOCK):
        starts.append(a)
        parts.append(y)
    got = np.concatenate(parts)
    assert got.shape == ref.shape and got.dtype == np.float32
    assert np.abs(got - ref).max() < 1e-5
    if n > 2 * SMALL_BLOCK:
        assert starts == list(range(0, n, SMALL_BLOCK))  # really streamed


@pytest.fixture(scope="module")
def conv_model(tmp_path_factory) -> Path:
    """A tiny random Conv1D model ('same' padding: position-dependent near frame edges)."""
    model = conv_net(0)
    return save_model_dir(tmp_path_factory.mktemp("conv") / "conv", model)


@pytest.mark.parametrize("rate", [16000, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("n", [100, 3 * SMALL_BLOCK + 7])
@pytest.mark.parametrize("kind", ["identity", "conv"])
def test_enhance_file_streams_like_enhance_signal(tmp_path, models, conv_model, rate,
                                                  channels, n, kind):
    folder = models / "id16000" if kind == "identity" else conv_model
    x = _tones(n, rate, channels, seed=n)
    inp, out = tmp_path / "in.wav", tmp_path / "out.wav"
    write_audio_atomic(inp, x, rate, subtype="FLOAT")
    enhance_file(folder, inp, out, subtype="FLOAT", show_progress=False, block=SMALL_BLOCK)
    predict, meta = load_model_dir(folder)
    ref = enhance_signal(x, rate, predict, meta)
    y, r, _ = read_audio(out)
    assert r == rate and y.shape == ref.shape
    assert np.abs(y - ref).max() < 1e-5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "out.wav"]


def test_enhance_stream_progress_and_failure_mid_stream(tmp_path):
    rate, n, channels = 44100, 5 * SMALL_BLOCK + 3, 2
    meta = {"sample_rate": MODEL_RATE, "frame_length": T}
    inp, out = tmp_path / "in.wav", tmp_path / "out.wav"
    write_audio_atomic(inp, _tones(n, rate, channels), rate, subtype="FLOAT")
    calls = []
    enhance_stream(inp, out, _bumpy, meta, subtype="FLOAT", block=SMALL_BLOCK,
                   progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (n * channels, n * channels)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and len(calls) > 3
    before = out.read_bytes()
    seen = []

    def failing(frames):
        seen.append(1)
        if len(seen) > 6:  # after the first blocks were written (one call per block, channel)
            raise RuntimeError("model crashed")
        return frames

    with pytest.raises(RuntimeError, match="crashed"):
        enhance_stream(inp, out, failing, meta, subtype="FLOAT", block=SMALL_BLOCK)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "out.wav"]


# ----------------------------------------------------------------------------- long runs


_RSS_CHILD = """
import sys
from pipeline.enhance import enhance_file
enhance_file(sys.argv[1], sys.argv[2], sys.argv[3], show_progress=False)
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:")][0]
print(int(hwm.split()[1]))  # KiB
"""


def _peak_rss_kib(model: Path, inp: Path, out: Path) -> int:
    res = subprocess.run([sys.executable, "-c", _RSS_CHILD, str(model), str(inp), str(out)],
                         capture_output=True, text=True, timeout=3000, check=True)
    return int(res.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_memory_does_not_grow_with_file_length(tmp_path, models):
    """Peak RSS of enhance_file on 60 min of 48 kHz stereo stays within 64 MiB of 1 min."""
    rate, peaks, times = 48000, {}, {}
    rng = np.random.default_rng(0)
    for minutes in (1, 60):
        inp, out = tmp_path / f"in{minutes}.wav", tmp_path / f"out{minutes}.wav"
        with sf.SoundFile(inp, "w", samplerate=rate, channels=2, subtype="PCM_16") as f:
            for _ in range(minutes):
                f.write(rng.uniform(-0.5, 0.5, (60 * rate, 2)).astype(np.float32))
        t0 = time.perf_counter()
        peaks[minutes] = _peak_rss_kib(models / "id16000", inp, out)
        times[minutes] = time.perf_counter() - t0
        assert sf.info(str(out)).frames == minutes * 60 * rate
        inp.unlink()
        out.unlink()
    growth = (peaks[60] - peaks[1]) / 1024
    print(f"\npeak RSS 1 min {peaks[1] / 1024:.0f} MiB ({times[1]:.0f} s), 60 min "
          f"{peaks[60] / 1024:.0f} MiB ({times[60]:.0f} s): growth {growth:.1f} MiB")
    assert growth < 64


@pytest.mark.slow
def test_realtime_factor_conv_model(tmp_path):
    """Throughput of a small 4-layer Conv1D model (32 filters, kernel 9) at T = 1024."""
    model = keras.Sequential([
        keras.Input((None, 1)),
        keras.layers.Conv1D(32, 9, padding="same", activation="relu"),
        keras.layers.Conv1D(32, 9, padding="same", activation="relu"),
        keras.layers.Conv1D(32, 9, padding="same", activation="relu"),
        keras.layers.Conv1D(1, 9, padding="same"),
    ])
    folder = save_model_dir(tmp_path / "conv", model, frame=1024)
    inp, out = tmp_path / "in.wav", tmp_path / "out.wav"
    write_audio_atomic(inp, _tones(60 * MODEL_RATE, MODEL_RATE, 1), MODEL_RATE)
    t0 = time.perf_counter()
    stats = enhance_file(folder, inp, out, show_progress=False)
    total = time.perf_counter() - t0
    print(f"\nconv4x32 T=1024, 60 s @16 kHz: {stats['elapsed_s']:.2f} s processing "
          f"({stats['realtime_factor']:.1f}x real time), model load {stats['load_s']:.2f} s, "
          f"wall {total:.2f} s")
    assert sf.info(str(out)).frames == 60 * MODEL_RATE
    assert stats["realtime_factor"] > 1
