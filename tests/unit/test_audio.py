"""Tests for pipeline.io.audio: round trips, every documented failure mode, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.io.audio import (
    AudioError,
    read_audio,
    resample,
    to_mono,
    write_audio_atomic,
)

# Quantisation step of each subtype: the round-trip tolerance.
TOL = {"PCM_16": 1.0 / 2**15, "PCM_24": 1.0 / 2**23, "FLOAT": 0.0}


def _signal(n: int, channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-0.9, 0.9, size=(n, channels)).astype(np.float32)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or "tmp" in p.name)


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize(
    ("ext", "subtype"),
    [("wav", "PCM_16"), ("wav", "PCM_24"), ("wav", "FLOAT"), ("flac", "PCM_16"),
     ("flac", "PCM_24")],
)
def test_round_trip(tmp_path, rate, channels, ext, subtype):
    x = _signal(rate // 10 + 3, channels)
    path = tmp_path / f"a.{ext}"
    write_audio_atomic(path, x, rate, subtype=subtype)
    y, r, info = read_audio(path)
    assert r == rate
    assert y.dtype == np.float32 and y.ndim == 2 and y.shape == x.shape
    assert info == {"subtype": subtype, "format": ext.upper(), "channels": channels}
    assert np.abs(y - x).max() <= TOL[subtype] + 1e-7
    assert _leftovers(tmp_path) == []


def test_mono_1d_input_reads_back_2d(tmp_path):
    path = tmp_path / "m.wav"
    write_audio_atomic(path, np.zeros(10, np.float32), 16000)
    y, _, _ = read_audio(path)
    assert y.shape == (10, 1)


def test_pcm_write_clips_without_modifying_input(tmp_path):
    x = np.array([[-3.0], [0.5], [3.0]], np.float32)
    before = x.copy()
    path = tmp_path / "c.wav"
    write_audio_atomic(path, x, 16000, subtype="PCM_16")
    y, _, _ = read_audio(path)
    np.testing.assert_array_equal(x, before)
    assert y.min() >= -1.0 and y.max() <= 1.0
    assert y[0, 0] == -1.0 and y[2, 0] > 0.999


def test_float_write_keeps_out_of_range(tmp_path):
    path = tmp_path / "f.wav"
    write_audio_atomic(path, np.array([2.0, -2.0], np.float32), 16000, subtype="FLOAT")
    y, _, _ = read_audio(path)
    np.testing.assert_array_equal(y[:, 0], [2.0, -2.0])


def test_write_creates_parent_folder(tmp_path):
    path = tmp_path / "deep" / "er" / "x.flac"
    write_audio_atomic(path, _signal(100, 1), 16000)
    assert path.is_file()


# ----------------------------------------------------------------------------- read errors


def _assert_audio_error(path: Path, *words: str) -> str:
    with pytest.raises(AudioError) as exc:
        read_audio(path)
    msg = str(exc.value)
    assert str(path) in msg, msg
    for w in words:
        assert w in msg.lower(), msg
    return msg


def test_missing_file(tmp_path):
    _assert_audio_error(tmp_path / "nope.wav", "no such file")


def test_directory(tmp_path):
    (tmp_path / "d.wav").mkdir()
    _assert_audio_error(tmp_path / "d.wav", "directory")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.touch()
    _assert_audio_error(path, "empty")


def test_zero_frames(tmp_path):
    path = tmp_path / "zero.wav"
    with sf.SoundFile(path, "w", samplerate=16000, channels=1, subtype="PCM_16"):
        pass
    _assert_audio_error(path, "no audio frames")


def test_text_file_renamed_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("these are meeting notes, not audio\n" * 20)
    _assert_audio_error(path, "not a readable audio file")


@pytest.mark.parametrize("cut", [1, 2, 1000, 3000])
@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_truncated_wav(tmp_path, cut, subtype):
    path = tmp_path / "trunc.wav"
    write_audio_atomic(path, _signal(2000, 1), 16000, subtype=subtype)
    data = path.read_bytes()
    path.write_bytes(data[:-cut])
    _assert_audio_error(path, "truncated")


def test_truncated_to_header_only(tmp_path):
    path = tmp_path / "head.wav"
    write_audio_atomic(path, _signal(2000, 2), 16000)
    path.write_bytes(path.read_bytes()[:30])
    _assert_audio_error(path)


def test_nan_samples(tmp_path):
    path = tmp_path / "nan.wav"
    x = _signal(100, 2)
    x[50, 1] = np.nan
    sf.write(path, x, 16000, subtype="FLOAT")
    _assert_audio_error(path, "nan")


def test_inf_samples(tmp_path):
    path = tmp_path / "inf.wav"
    x = _signal(100, 1)
    x[3] = np.inf
    sf.write(path, x, 16000, subtype="FLOAT")
    _assert_audio_error(path, "infinite")


@pytest.mark.parametrize("rate", [4000, 192000])
def test_rate_out_of_range(tmp_path, rate):
    path = tmp_path / f"r{rate}.wav"
    sf.write(path, _signal(100, 1), rate, subtype="PCM_16")
    _assert_audio_error(path, str(rate))


def test_audio_error_is_value_error():
    assert issubclass(AudioError, ValueError)


# ----------------------------------------------------------------------------- atomic write


def test_failed_write_leaves_existing_output_untouched(tmp_path):
    path = tmp_path / "out.wav"
    write_audio_atomic(path, _signal(500, 1), 16000)
    before = path.read_bytes()

    # More than one write block, so the temp file is partly written when the failure hits.
    bad = _signal(3_000_000, 1)
    calls = {"n": 0}
    real_write = sf.SoundFile.write

    def failing_write(self, data):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full (simulated)")
        return real_write(self, data)

    mp = pytest.MonkeyPatch()
    mp.setattr(sf.SoundFile, "write", failing_write)
    try:
        with pytest.raises(AudioError, match="disk full"):
            write_audio_atomic(path, bad, 16000)
    finally:
        mp.undo()
    assert calls["n"] == 2
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("name", "kwargs", "words"),
    [
        ("x.mp3", {}, "extension"),
        ("x.flac", {"subtype": "FLOAT"}, "not valid"),
        ("x.wav", {"rate": 4000}, "4000"),
    ],
)
def test_write_rejects_bad_requests(tmp_path, name, kwargs, words):
    path = tmp_path / name
    rate = kwargs.pop("rate", 16000)
    with pytest.raises(AudioError, match=words) as exc:
        write_audio_atomic(path, _signal(10, 1), rate, **kwargs)
    assert str(path) in str(exc.value)
    assert list(tmp_path.iterdir()) == []


def test_write_rejects_nan_and_empty(tmp_path):
    x = _signal(10, 1)
    x[2] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        write_audio_atomic(tmp_path / "n.wav", x, 16000)
    with pytest.raises(AudioError, match="shape"):
        write_audio_atomic(tmp_path / "e.wav", np.zeros((0, 1), np.float32), 16000)
    assert list(tmp_path.iterdir()) == []


def test_atomic_replace_keeps_permissions_readable(tmp_path):
    path = tmp_path / "p.wav"
    write_audio_atomic(path, _signal(10, 1), 16000)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


# ----------------------------------------------------------------------------- resampling


@pytest.mark.parametrize(
    ("src", "dst"),
    [(16000, 16000), (44100, 16000), (16000, 44100), (48000, 16000), (8000, 48000),
     (22050, 16000)],
)
@pytest.mark.parametrize("n", [1, 7, 1000, 44101])
def test_resample_length(src, dst, n):
    y = resample(np.zeros(n, np.float32), src, dst)
    assert y.dtype == np.float32
    assert y.shape == (-(-n * dst // src),)


def test_resample_identity_returns_same_data():
    x = _signal(100, 2)
    assert resample(x, 16000, 16000) is x


def test_resample_2d_along_axis0_and_preserves_tone():
    rate_in, rate_out, f = 48000, 16000, 440.0
    t = np.arange(rate_in) / rate_in
    tone = np.sin(2 * np.pi * f * t).astype(np.float32)
    x = np.stack([tone, -tone], axis=1)
    y = resample(x, rate_in, rate_out)
    assert y.shape == (rate_out, 2)
    t2 = np.arange(rate_out) / rate_out
    ref = np.sin(2 * np.pi * f * t2)
    mid = slice(200, -200)  # filter edge effects
    assert np.abs(y[mid, 0] - ref[mid]).max() < 1e-2
    np.testing.assert_allclose(y[:, 1], -y[:, 0], atol=1e-6)


def test_resample_round_trip_low_band():
    rng = np.random.default_rng(1)
    t = np.arange(16000) / 16000
    x = (0.3 * np.sin(2 * np.pi * 300 * t) + 0.2 * np.sin(2 * np.pi * 1234 * t + rng.uniform()))
    y = resample(resample(x.astype(np.float32), 16000, 44100), 44100, 16000)
    assert y.shape == x.shape
    assert np.abs(y[500:-500] - x[500:-500]).max() < 1e-2


def test_to_mono():
    x = np.array([[1.0, -1.0], [0.5, 0.5]], np.float32)
    np.testing.assert_array_equal(to_mono(x), [0.0, 0.5])
    np.testing.assert_array_equal(to_mono(x[:, :1]), [1.0, 0.5])
    np.testing.assert_array_equal(to_mono(np.array([1.0, 2.0])), [1.0, 2.0])
    with pytest.raises(ValueError):
        to_mono(np.zeros((2, 2, 2)))
