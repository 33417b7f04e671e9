"""Audio file I/O with strict validation, atomic writes and polyphase resampling.

Everything that reads user audio goes through :func:`read_audio` so that a bad file fails
early with one clear message naming the file, instead of surfacing later as a shape error
or, worse, as silently wrong (truncated, NaN-filled) training data. Only numpy, scipy and
soundfile are used so this module stays cheap to import (no TensorFlow).
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from pipeline.errors import UserError

__all__ = [
    "MAX_RATE",
    "MIN_RATE",
    "AudioError",
    "read_audio",
    "resample",
    "to_mono",
    "write_audio_atomic",
]

MIN_RATE = 8_000
MAX_RATE = 96_000

# Formats chosen from the output extension; anything else is refused rather than guessed.
_FORMATS = {".wav": "WAV", ".flac": "FLAC"}
# Subtypes stored as floats keep out-of-range values; every other (integer) subtype is clipped.
_FLOAT_SUBTYPES = {"FLOAT", "DOUBLE"}
# Block size (frames) for chunked checks and writes, so huge files need no full-size temporaries.
_BLOCK = 1 << 20


class AudioError(UserError, ValueError):
    """A problem with an audio file; the message names the file and says what to do."""


def _check_rate(path: Path | str, rate: int) -> None:
    if not MIN_RATE <= int(rate) <= MAX_RATE:
        raise AudioError(
            f"{path}: sample rate {rate} Hz is outside the supported range "
            f"{MIN_RATE}-{MAX_RATE} Hz; resample the file (e.g. `sox in.wav -r 16000 out.wav`)"
        )


def _all_finite(x: np.ndarray) -> bool:
    """Chunked ``isfinite`` so an hour-long file does not need a full-size boolean copy."""
    flat = x.reshape(-1)
    return all(np.isfinite(flat[i : i + _BLOCK]).all() for i in range(0, flat.size, _BLOCK))


def _check_riff(path: Path, size: int) -> None:
    """Detect truncated RIFF/WAVE files, which libsndfile reads short without complaint.

    Walks the chunk list and compares each declared chunk size (notably ``data``) with the
    bytes actually present. RF64 and streaming placeholders (0xFFFFFFFF) are not checked.
    """
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[8:12] != b"WAVE" or head[:4] not in (b"RIFF", b"RIFX"):
            return
        fmt = "<I" if head[:4] == b"RIFF" else ">I"
        offset = 12
        for _ in range(10_000):  # bound the walk on corrupt files
            if offset + 8 > size:
                break
            f.seek(offset)
            chunk = f.read(8)
            if len(chunk) < 8:
                break
            cid = chunk[:4]
            (csize,) = struct.unpack(fmt, chunk[4:])
            if csize == 0xFFFFFFFF:
                return
            end = offset + 8 + csize
            if end > size:
                name = cid.decode("ascii", "replace").strip()
                raise AudioError(
                    f"{path}: truncated WAV file: the '{name}' chunk declares {csize} bytes "
                    f"but only {max(size - offset - 8, 0)} are present; the file was probably "
                    "cut off during copy or recording - re-export or re-copy it"
                )
            offset = end + (csize & 1)  # chunks are word aligned


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int, dict]:
    """Read an audio file as float32 ``(frames, channels)`` plus its rate and format info.

    Always 2-D so callers never special-case mono. Raises :class:`AudioError` for anything
    that would otherwise poison training or inference: missing/unreadable/empty/truncated
    files, non-finite samples and sample rates outside 8-96 kHz.
    """
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{p}: no such file; check the path (relative to {Path.cwd()})")
    if p.is_dir():
        raise AudioError(f"{p}: is a directory, expected an audio file (.wav or .flac)")
    try:
        size = p.stat().st_size
    except OSError as e:
        raise AudioError(f"{p}: cannot access file ({e.strerror})") from e
    if size == 0:
        raise AudioError(f"{p}: file is empty (0 bytes); re-export or re-copy it")
    try:
        _check_riff(p, size)
    except OSError as e:
        raise AudioError(f"{p}: cannot read file ({e.strerror}); check its permissions") from e
    try:
        with sf.SoundFile(p) as f:
            info = {"subtype": f.subtype, "format": f.format, "channels": f.channels}
            rate = int(f.samplerate)
            _check_rate(p, rate)
            if f.frames == 0:
                raise AudioError(f"{p}: contains no audio frames (header only)")
            data = f.read(dtype="float32", always_2d=True)
    except AudioError:
        raise
    except (sf.SoundFileError, RuntimeError, TypeError, OSError) as e:
        raise AudioError(
            f"{p}: not a readable audio file ({str(e).strip() or type(e).__name__}); "
            "expected WAV or FLAC"
        ) from e
    if data.shape[0] == 0:
        raise AudioError(f"{p}: contains no audio frames (header only)")
    if not _all_finite(data):
        raise AudioError(
            f"{p}: contains NaN or infinite samples; regenerate the file from a clean source"
        )
    return data, rate, info


def write_audio_atomic(
    path: str | os.PathLike,
    samples: np.ndarray,
    rate: int,
    subtype: str = "PCM_16",
) -> None:
    """Write audio so that ``path`` is either the complete new file or untouched.

    The data go to a temporary file in the destination folder (same filesystem, so
    ``os.replace`` is atomic) which is fsynced and then renamed; on any error the temporary
    file is removed. Integer (PCM) subtypes are clipped to [-1, 1] block by block so the
    caller's array is not modified and no full-size copy is made.
    """
    p = Path(path)
    fmt = _FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise AudioError(f"{p}: unsupported output extension {p.suffix!r}; use .wav or .flac")
    subtype = subtype.upper()
    if not sf.check_format(fmt, subtype):
        ok = ", ".join(sorted(sf.available_subtypes(fmt)))
        raise AudioError(f"{p}: subtype {subtype!r} is not valid for {fmt}; choose one of: {ok}")
    _check_rate(p, rate)
    x = np.asarray(samples)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise AudioError(f"{p}: refusing to write audio of shape {x.shape}; need (frames, ch)")
    if not _all_finite(x):
        raise AudioError(f"{p}: refusing to write NaN or infinite samples")
    if p.is_dir():
        raise AudioError(f"{p}: is a directory; give an output file name")
    clip = subtype not in _FLOAT_SUBTYPES

    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "r+b") as raw:
            with sf.SoundFile(
                raw, "w", samplerate=int(rate), channels=x.shape[1], subtype=subtype, format=fmt
            ) as f:
                for i in range(0, x.shape[0], _BLOCK):
                    block = x[i : i + _BLOCK]
                    if clip:
                        block = np.clip(block, -1.0, 1.0)
                    f.write(block)
            raw.flush()
            os.fsync(raw.fileno())
        # mkstemp creates 0600 files; give the output the usual umask-based permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, p)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, sf.SoundFileError | RuntimeError | OSError):
            raise AudioError(f"{p}: could not write audio ({e})") from e
        raise


def resample(x: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling along axis 0 (float32); returns ``x`` itself when rates match.

    The up/down factors are reduced by their gcd, which keeps the polyphase filter short
    (44.1 kHz -> 16 kHz is 160/441, not 16000/44100). Output length is
    ``ceil(len(x) * to_rate / from_rate)``.
    """
    from_rate, to_rate = int(from_rate), int(to_rate)
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    x = np.asarray(x, dtype=np.float32)
    if from_rate == to_rate:
        return x
    g = gcd(from_rate, to_rate)
    y = resample_poly(x, to_rate // g, from_rate // g, axis=0)
    return y.astype(np.float32, copy=False)


def to_mono(x: np.ndarray) -> np.ndarray:
    """Average channels of a ``(frames, channels)`` array to ``(frames,)``; 1-D passes through.

    Averaging (not summing) keeps the level within [-1, 1] for in-range input.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        return x
    if x.ndim != 2:
        raise ValueError(f"expected (frames,) or (frames, channels), got shape {x.shape}")
    if x.shape[1] == 1:
        return x[:, 0]
    return x.mean(axis=1, dtype=np.float64).astype(np.float32)
