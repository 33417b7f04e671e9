"""stdin/stdout for ``audiorecon enhance -i - -o -``: WAV or raw PCM in a shell pipe.

The exact block streamer (:mod:`pipeline.enhance.stream`) needs the signal length up front
(the overlap-add grid and the edge reflections depend on it) and random access to the input.
A pipe offers neither, so stdin is first copied to a temporary file (disk, not memory: the
memory bound holds) and then streamed like any file; the output is bit-identical to
enhancing the same audio from a file. Output starts once the input has ended.

stdout: libsndfile cannot write a WAV header to a pipe (it seeks back to fill in sizes), but
here the length is known before the first sample, so the 44-byte header is written here with
the final sizes and libsndfile converts each block to headerless PCM. Raw audio is
interleaved little-endian ``f32le`` or ``s16le`` (what ``sox -t f32`` and ``ffmpeg -f f32le``
speak).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import struct
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from pipeline.enhance import stream
from pipeline.io import audio

STDIO = "-"
STDIN_NAME = "stdin"
STDOUT_NAME = "stdout"
RAW_FORMATS = {"f32le": "FLOAT", "s16le": "PCM_16"}
# WAV subtypes a plain fmt chunk describes: subtype -> (format tag, bytes per sample)
WAV_PIPE_SUBTYPES = {"PCM_U8": (1, 1), "PCM_16": (1, 2), "PCM_24": (1, 3), "PCM_32": (1, 4),
                     "FLOAT": (3, 4), "DOUBLE": (3, 8)}
_COPY_CHUNK = 1 << 20
_UNKNOWN_SIZE = 0xFFFFFFFF  # a RIFF size that does not fit: "unknown", as sox/ffmpeg write it


@dataclass(frozen=True)
class RawFormat:
    """Headerless interleaved little-endian PCM: ``fmt`` is ``f32le`` or ``s16le``."""

    fmt: str = "f32le"
    rate: int | None = None  # needed to read raw stdin; raw stdout keeps the input's rate
    channels: int = 1

    def __post_init__(self) -> None:
        if self.fmt not in RAW_FORMATS:
            raise audio.AudioError(f"--raw-format {self.fmt!r}: choose one of "
                                   f"{', '.join(RAW_FORMATS)}")
        if self.rate is not None:
            audio._check_rate(Path("--raw-rate"), int(self.rate))
        if not 1 <= int(self.channels) <= 64:
            raise audio.AudioError(f"--raw-channels {self.channels}: give 1 to 64 channels")

    @property
    def subtype(self) -> str:
        return RAW_FORMATS[self.fmt]

    @property
    def frame_bytes(self) -> int:
        return int(self.channels) * (4 if self.fmt == "f32le" else 2)


def spool(src: BinaryIO, directory: str | None = None) -> Path:
    """Copy a stream to a new temporary file (in ``$TMPDIR``) and return its path."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="audiorecon-stdin-", suffix=".bin")
    try:
        with os.fdopen(fd, "wb") as f:
            shutil.copyfileobj(src, f, _COPY_CHUNK)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return Path(tmp)


def _renamed(e: audio.AudioError, tmp: Path) -> audio.AudioError:
    """The same error, naming stdin instead of the spool file."""
    return audio.AudioError(str(e).replace(str(tmp), STDIN_NAME))


def open_spooled(path: Path, raw: RawFormat | None) -> tuple[sf.SoundFile, int, int, int]:
    """Open spooled stdin as :func:`stream.open_input` opens a file (WAV, or ``raw``)."""
    size = path.stat().st_size
    if size == 0:
        raise audio.AudioError(f"{STDIN_NAME}: no data arrived; pipe audio in, e.g. "
                               "`cat in.wav | audiorecon enhance -m MODEL -i - -o out.wav`")
    if raw is None:
        try:
            return stream.open_input(path)
        except audio.AudioError as e:
            raise _renamed(e, path) from None
    if raw.rate is None:
        raise audio.AudioError(f"{STDIN_NAME}: raw input needs --raw-rate (and --raw-channels "
                               "unless mono)")
    if size % raw.frame_bytes:
        raise audio.AudioError(f"{STDIN_NAME}: {size} bytes is not a whole number of "
                               f"{raw.channels}-channel {raw.fmt} frames ({raw.frame_bytes} "
                               "bytes each); check --raw-format and --raw-channels")
    f = sf.SoundFile(path, format="RAW", subtype=raw.subtype, samplerate=int(raw.rate),
                     channels=int(raw.channels), endian="LITTLE")
    if raw.fmt == "f32le":
        try:
            stream.scan_finite(f, STDIN_NAME)
        except audio.AudioError:
            f.close()
            raise
    return f, int(f.frames), int(f.channels), int(raw.rate)


@contextlib.contextmanager
def stdin_input(raw: RawFormat | None, src: BinaryIO | None = None) -> Iterator[tuple]:
    """Spool stdin and yield it opened as :func:`open_spooled` opens it; the spool file is
    removed afterwards whatever happens."""
    src = src if src is not None else sys.stdin.buffer
    if hasattr(src, "isatty") and src.isatty():
        raise audio.AudioError(f"{STDIN_NAME} is a terminal; pipe audio in, e.g. "
                               "`cat in.wav | audiorecon enhance -m MODEL -i - -o out.wav`")
    tmp = spool(src)
    try:
        yield open_spooled(tmp, raw)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def wav_header(n: int, channels: int, rate: int, subtype: str) -> bytes:
    """A canonical 44-byte WAV header for ``n`` frames (sizes "unknown" past 4 GiB)."""
    tag, width = WAV_PIPE_SUBTYPES[subtype]
    data = n * channels * width
    riff = 36 + data
    if riff > 0xFFFFFFFF - 8:
        data = riff = _UNKNOWN_SIZE
    return (b"RIFF" + struct.pack("<I", riff) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, tag, channels, rate, rate * channels * width,
                                    channels * width, 8 * width)
            + b"data" + struct.pack("<I", data))


def pipe_subtype(requested: str | None, input_subtype: str | None, raw: RawFormat | None) -> str:
    """The subtype stdout carries: raw's, the requested one, or the input's (else PCM_16)."""
    if raw is not None:
        return raw.subtype
    if requested is not None:
        s = requested.upper()
        if s not in WAV_PIPE_SUBTYPES:
            raise audio.AudioError(f"{STDOUT_NAME}: subtype {requested!r} cannot be streamed as "
                                   f"WAV; choose one of: {', '.join(WAV_PIPE_SUBTYPES)}")
        return s
    return input_subtype if input_subtype in WAV_PIPE_SUBTYPES else "PCM_16"


def pcm_bytes(y: np.ndarray, rate: int, subtype: str) -> bytes:
    """Headerless little-endian PCM of ``(n, C)`` float32, converted by libsndfile."""
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", samplerate=rate, channels=y.shape[1], format="RAW",
                      subtype=subtype, endian="LITTLE") as f:
        f.write(y)
    return buf.getvalue()


@contextlib.contextmanager
def stdout_fd() -> Iterator[BinaryIO]:
    """A private handle on the real stdout; fd 1 points at stderr meanwhile, so no library
    print (Python or C) can land inside the audio stream."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with os.fdopen(os.dup(saved), "wb", buffering=_COPY_CHUNK) as f:
            yield f
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def write_blocks(sink: BinaryIO, blocks, n: int, channels: int, rate: int, subtype: str,
                 raw: bool) -> None:
    """Write enhanced ``(a, y)`` blocks to a byte stream: a WAV header first unless ``raw``."""
    clip = subtype not in audio._FLOAT_SUBTYPES
    try:
        if not raw:
            sink.write(wav_header(n, channels, rate, subtype))
        for _a, y in blocks:
            sink.write(pcm_bytes(stream.writable(y, STDOUT_NAME, clip), rate, subtype))
        sink.flush()
    except BrokenPipeError as e:
        raise audio.AudioError(f"{STDOUT_NAME}: the reader closed the pipe early") from e
