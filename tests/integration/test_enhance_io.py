"""`audiorecon enhance` over folders and pipes: trees, per-file errors, stdin/stdout WAV and raw."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import conv_net, save_model_dir

from pipeline.enhance import enhance_file, enhance_tree
from pipeline.enhance.pipes import RawFormat, pcm_bytes, pipe_subtype, wav_header
from pipeline.enhance.stream import output_subtype
from pipeline.enhance.tree import find_audio
from pipeline.io.audio import AudioError

keras = pytest.importorskip("keras")

RATE = 16000
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A tiny random Conv1D model: outputs differ from inputs, so equality means something."""
    return save_model_dir(tmp_path_factory.mktemp("m") / "conv", conv_net(seed=1))


def _audio(n: int, channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.3 * rng.standard_normal((n, channels))).clip(-1, 1).astype(np.float32)


def _cli(args: list[str], **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pipeline", "enhance", *args], env=env,
                          capture_output=True, timeout=300, **kw)


# ----------------------------------------------------------------------------- pure helpers


def test_output_subtype_follows_input_where_the_format_holds_it():
    assert output_subtype(None, "PCM_24", "FLAC") == "PCM_24"
    assert output_subtype(None, "FLOAT", "WAV") == "FLOAT"
    assert output_subtype(None, "FLOAT", "FLAC") == "PCM_24"  # FLAC has no float
    assert output_subtype(None, "ULAW", "FLAC") == "PCM_16"
    assert output_subtype(None, None, "WAV") == "PCM_16"
    assert output_subtype("pcm_16", "FLOAT", "WAV") == "PCM_16"


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
@pytest.mark.parametrize("channels", [1, 3])
def test_streamed_wav_header_reads_back_like_a_file(tmp_path, subtype, channels):
    x = _audio(1001, channels)
    p = tmp_path / "h.wav"
    p.write_bytes(wav_header(len(x), channels, 22050, subtype) + pcm_bytes(x, 22050, subtype))
    ref = tmp_path / "ref.wav"
    sf.write(ref, x, 22050, subtype=subtype)
    info = sf.info(p)
    assert (info.frames, info.channels, info.samplerate, info.subtype) == (1001, channels,
                                                                         22050, subtype)
    np.testing.assert_array_equal(sf.read(p, dtype="float32")[0], sf.read(ref, dtype="float32")[0])


def test_pipe_subtype_and_raw_format_refusals():
    assert pipe_subtype(None, "PCM_24", None) == "PCM_24"
    assert pipe_subtype(None, "ULAW", None) == "PCM_16"
    assert pipe_subtype("float", "PCM_16", None) == "FLOAT"
    assert pipe_subtype(None, "PCM_24", RawFormat("s16le")) == "PCM_16"
    with pytest.raises(AudioError, match="cannot be streamed"):
        pipe_subtype("ULAW", None, None)
    with pytest.raises(AudioError, match="--raw-format"):
        RawFormat("f64be")
    with pytest.raises(AudioError, match="--raw-channels"):
        RawFormat("f32le", 16000, 0)


def test_find_audio_recursive_sorted_skips_hidden_and_output(tmp_path):
    for rel in ("b/z.WAV", "a.flac", "b/c/d.wav", "notes.txt", ".hidden.wav", "b/.x.wav.tmp",
                ".git/e.wav", "out/f.wav"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    got = [p.relative_to(tmp_path).as_posix() for p in find_audio(tmp_path, tmp_path / "out")]
    assert got == ["a.flac", "b/c/d.wav", "b/z.WAV"]


# ----------------------------------------------------------------------------- folders


def _make_tree(root: Path) -> dict[str, tuple]:
    files = {"one.wav": (RATE, 1, "PCM_16", 5000), "sub/two.flac": (44100, 2, "PCM_24", 7000),
             "sub/deeper/three.wav": (48000, 1, "FLOAT", 3000)}
    for i, (rel, (rate, ch, subtype, n)) in enumerate(files.items()):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / rel, _audio(n, ch, seed=i), rate, subtype=subtype)
    return files


def test_folder_keeps_tree_formats_and_equals_single_file_runs(tmp_path, model):
    src, dst = tmp_path / "in", tmp_path / "out"
    files = _make_tree(src)
    res = enhance_tree(model, src, dst, show_progress=False)
    assert res["files"] == 3 and res["failed"] == []
    assert res["seconds"] == pytest.approx(5000 / RATE + 7000 / 44100 + 3000 / 48000)
    for rel, (rate, ch, subtype, n) in files.items():
        info = sf.info(dst / rel)
        assert (info.samplerate, info.channels, info.subtype, info.frames) == (rate, ch, subtype, n)
        one = tmp_path / "single" / rel
        enhance_file(model, src / rel, one, show_progress=False)
        np.testing.assert_array_equal(sf.read(dst / rel)[0], sf.read(one)[0])
    assert not list(dst.rglob(".*"))  # no temp files left behind


def test_folder_one_bad_file_is_reported_and_the_rest_go_on(tmp_path, model):
    src, dst = tmp_path / "in", tmp_path / "in" / "restored"  # output inside the input: skipped
    _make_tree(src)
    (src / "sub" / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk")
    (dst / "sub").mkdir(parents=True)
    (dst / "sub" / "broken.wav").write_bytes(b"old output")
    errors: list[str] = []
    res = enhance_tree(model, src, dst, show_progress=False, on_error=errors.append)
    assert res["files"] == 4 and len(res["failed"]) == 1 and errors == res["failed"]
    assert "broken.wav" in errors[0]
    assert (dst / "sub" / "broken.wav").read_bytes() == b"old output"  # untouched
    assert sorted(p.relative_to(dst).as_posix() for p in find_audio(dst)) == [
        "one.wav", "sub/broken.wav", "sub/deeper/three.wav", "sub/two.flac"]

    r = _cli(["-m", str(model), "-i", str(src), "-o", str(dst)])
    assert r.returncode == 1, r.stderr
    err = r.stderr.decode()
    assert "broken.wav" in err and "1 of 4 files failed" in err


def test_folder_refusals_write_nothing(tmp_path, model):
    src = tmp_path / "in"
    _make_tree(src)
    with pytest.raises(AudioError, match="is the input folder"):
        enhance_tree(model, src, src / ".." / "in", show_progress=False)
    (tmp_path / "file.wav").write_bytes(b"x")
    with pytest.raises(AudioError, match="is a file"):
        enhance_tree(model, src, tmp_path / "file.wav", show_progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AudioError, match="no .wav or .flac"):
        enhance_tree(model, tmp_path / "empty", tmp_path / "o", show_progress=False)
    with pytest.raises(AudioError, match="neither WAV nor FLAC"):
        enhance_tree(model, src, tmp_path / "o", subtype="VORBIS", show_progress=False)
    assert not (tmp_path / "o").exists()
    r = _cli(["-m", str(model), "-i", str(src), "-o", "-"])
    assert r.returncode == 2 and b"needs an output folder" in r.stderr and r.stdout == b""


# ----------------------------------------------------------------------------- pipes


def test_wav_pipe_equals_file_output(tmp_path, model):
    """stdin WAV -> stdout WAV in a pipe gives the file path's samples exactly; the input's
    subtype carries over; nothing but audio reaches stdout."""
    x = _audio(30011, 2, seed=3)
    inp, ref = tmp_path / "in.wav", tmp_path / "ref.wav"
    sf.write(inp, x, 44100, subtype="PCM_24")
    enhance_file(model, inp, ref, show_progress=False)
    r = _cli(["-m", str(model), "-i", "-", "-o", "-"], input=inp.read_bytes())
    assert r.returncode == 0, r.stderr
    piped = tmp_path / "piped.wav"
    piped.write_bytes(r.stdout)
    assert sf.info(piped).subtype == "PCM_24" and sf.info(piped).frames == len(x)
    np.testing.assert_array_equal(sf.read(piped, dtype="int32")[0], sf.read(ref, dtype="int32")[0])
    assert b"real time" in r.stderr


def test_raw_pipe_roundtrip_and_unknown_length_wav(tmp_path, model):
    x = _audio(9000, 2, seed=4)
    inp, ref = tmp_path / "in.wav", tmp_path / "ref.wav"
    sf.write(inp, x, 48000, subtype="FLOAT")
    enhance_file(model, inp, ref, show_progress=False)
    want = sf.read(ref, dtype="float32")[0]
    r = _cli(["-m", str(model), "-i", "-", "-o", "-", "--raw-format", "f32le", "--raw-rate",
              "48000", "--raw-channels", "2"], input=x.astype("<f4").tobytes())
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.frombuffer(r.stdout, "<f4").reshape(-1, 2), want)

    # a streamed WAV whose header says "length unknown" (ffmpeg/sox pipes) -> raw s16le out
    b = bytearray(inp.read_bytes())
    i = b.find(b"data")
    b[4:8] = b[i + 4:i + 8] = b"\xff\xff\xff\xff"
    r = _cli(["-m", str(model), "-i", "-", "-o", "-", "--raw-format", "s16le"], input=bytes(b))
    assert r.returncode == 0, r.stderr
    got = np.frombuffer(r.stdout, "<i2").reshape(-1, 2)
    np.testing.assert_array_equal(got, np.frombuffer(pcm_bytes(want, 48000, "PCM_16"),
                                                     "<i2").reshape(-1, 2))


@pytest.mark.parametrize(("data", "args", "message"), [
    (b"", [], "no data arrived"),
    (b"not audio at all" * 10, [], "stdin: not a readable audio file"),
    (b"\x00" * 7, ["--raw-rate", "16000", "--raw-channels", "2"], "not a whole number"),
])
def test_bad_stdin_one_message_and_empty_stdout(tmp_path, model, data, args, message):
    r = _cli(["-m", str(model), "-i", "-", "-o", "-", *args], input=data)
    assert r.returncode == 2 and r.stdout == b""
    assert message in r.stderr.decode() and "Traceback" not in r.stderr.decode()


def test_raw_options_need_a_pipe_end(tmp_path, model):
    inp = tmp_path / "in.wav"
    sf.write(inp, _audio(1000, 1), RATE)
    with pytest.raises(AudioError, match="describe -"):
        enhance_file(model, inp, tmp_path / "o.wav", raw=RawFormat("s16le"),
                     show_progress=False)
    with pytest.raises(AudioError, match="--raw-rate describes raw stdin"):
        enhance_file(model, inp, "-", raw=RawFormat("s16le", 16000), show_progress=False)
    with pytest.raises(AudioError, match="describes stdout"):
        enhance_file(model, "-", tmp_path / "o.wav", raw=RawFormat("s16le"), show_progress=False)
    assert not (tmp_path / "o.wav").exists()
