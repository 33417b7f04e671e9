"""Block-streaming enhancement of audio files: memory independent of the file length.

:func:`pipeline.enhance.enhance_signal` (the reference) pads each channel by an odd
reflection, resamples it to the model rate, overlap-adds the model over frames, resamples
back and crops. Every step has finite support, so output samples [a, b) depend only on a
window of the input around [a, b). :func:`enhance_stream` computes the output in blocks of
:data:`BLOCK` file-rate samples, each from the input window it needs (read with seek + read):

* resample_poly is shift-invariant for segments starting at a multiple of its ``down``
  factor, and exact away from the segment edges by the filter half-length; segments that
  touch the true signal edges see the same zero continuation as the whole-signal call;
* overlap-add frames sit on a grid fixed by the signal length (:class:`OLAPlan`); its edge
  padding only uses the first/last few model-rate samples, which are computed once;
* the odd reflection only uses the first/last ``margin`` + 1 input samples, read once.

The result equals the whole-signal one up to float32 rounding (summation order).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf

from pipeline.enhance.model_dir import Predict
from pipeline.enhance.ola import OLAPlan, Progress, padded_range
from pipeline.io import audio

# Output samples (at the file's rate) computed per block: bounds memory, amortises margins.
BLOCK = 1 << 20
# Float subtypes can hold NaN/inf; integer PCM cannot, so only those files are pre-scanned.
_FLOAT_SUBTYPES = {"FLOAT", "DOUBLE", "VORBIS", "OPUS", "MPEG_LAYER_III"}

Get = Callable[[int, int], np.ndarray]


def resample_margin(rate: int, model_rate: int) -> int:
    """The odd-reflection margin :func:`enhance_signal` pads each channel with."""
    if rate == model_rate:
        return 0
    g = gcd(rate, model_rate)
    up, down = model_rate // g, rate // g
    # resample_poly's filter spans 10*max(up, down) taps each side at the upsampled rate.
    return -(-20 * max(up, down) // up) + 16


def _resample_range(get: Get, n_in: int, up: int, down: int, j0: int, j1: int) -> np.ndarray:
    """Samples [j0, j1) of ``resample_poly(x, up, down, axis=0)`` of a length-``n_in``
    signal x, reading only the part of x they depend on via ``get(i0, i1)``."""
    if up == down:
        return get(j0, j1)
    half = 10 * max(up, down)  # resample_poly's filter half-length at the upsampled rate
    lo = (j0 * down - half) // up - 2
    hi = -(-((j1 - 1) * down + half) // up) + 2  # inclusive
    s = max(lo, 0) // down * down  # segment start on the output grid: exact shift
    e = min(n_in, hi + 1)
    y = audio.resample(get(s, e), down, up)  # rates down -> up: factors up/down (coprime)
    off = s * up // down
    out = y[j0 - off : j1 - off]
    if out.shape[0] != j1 - j0:  # pragma: no cover - guards the index arithmetic
        raise AssertionError(f"resample range [{j0}, {j1}) got {out.shape[0]} samples")
    return out


@contextlib.contextmanager
def _write_errors(p: Path):
    """Report libsndfile/OS failures while writing as :class:`audio.AudioError`."""
    try:
        yield
    except audio.AudioError:
        raise
    except (sf.SoundFileError, RuntimeError, OSError) as e:
        raise audio.AudioError(f"{p}: could not write audio ({e})") from e


class _Reader:
    """Random access to the input file's float32 frames, validated as read."""

    def __init__(self, f: sf.SoundFile, path: Path) -> None:
        self.f, self.path, self.n = f, path, int(f.frames)

    def read(self, a: int, b: int) -> np.ndarray:
        try:
            self.f.seek(a)
            x = self.f.read(b - a, dtype="float32", always_2d=True)
        except (sf.SoundFileError, RuntimeError, OSError) as e:
            raise audio.AudioError(f"{self.path}: could not read audio ({e})") from e
        if x.shape[0] != b - a:
            raise audio.AudioError(f"{self.path}: file ended early (read {x.shape[0]} of "
                                   f"{b - a} frames at {a}); re-export or re-copy it")
        if not np.isfinite(x).all():
            raise audio.AudioError(f"{self.path}: contains NaN or infinite samples; "
                                   "regenerate the file from a clean source")
        return x


def scan_finite(f: sf.SoundFile, name: str | os.PathLike) -> None:
    """Fail before inference if the open file holds NaN/inf (read block by block, rewound)."""
    for block in f.blocks(blocksize=BLOCK, dtype="float32", always_2d=True):
        if not np.isfinite(block).all():
            raise audio.AudioError(f"{name}: contains NaN or infinite samples; "
                                   "regenerate the file from a clean source")
    f.seek(0)


def writable(y: np.ndarray, name: str | os.PathLike, clip: bool) -> np.ndarray:
    """An enhanced block as it is written: refused if non-finite, clipped for integer PCM."""
    if not np.isfinite(y).all():
        raise audio.AudioError(f"{name}: refusing to write NaN or infinite samples")
    return np.clip(y, -1.0, 1.0) if clip else y


def open_input(path: str | os.PathLike) -> tuple[sf.SoundFile, int, int, int]:
    """Open an audio file with :func:`audio.read_audio`'s checks, without reading it whole.

    Returns the open SoundFile, frames, channels and rate. Files with a float subtype are
    scanned block by block for NaN/inf so a bad file still fails before inference starts.
    """
    p = Path(path)
    if not p.exists():
        raise audio.AudioError(f"{p}: no such file; check the path (relative to {Path.cwd()})")
    if p.is_dir():
        raise audio.AudioError(f"{p}: is a directory, expected an audio file (.wav or .flac)")
    try:
        size = p.stat().st_size
    except OSError as e:
        raise audio.AudioError(f"{p}: cannot access file ({e.strerror})") from e
    if size == 0:
        raise audio.AudioError(f"{p}: file is empty (0 bytes); re-export or re-copy it")
    try:
        audio._check_riff(p, size)
    except OSError as e:
        raise audio.AudioError(f"{p}: cannot read file ({e.strerror}); check its permissions") from e
    f = None
    try:
        f = sf.SoundFile(p)
        rate = int(f.samplerate)
        audio._check_rate(p, rate)
        if f.frames == 0:
            raise audio.AudioError(f"{p}: contains no audio frames (header only)")
        if f.subtype in _FLOAT_SUBTYPES:
            scan_finite(f, p)
        return f, int(f.frames), int(f.channels), rate
    except audio.AudioError:
        if f is not None:
            f.close()
        raise
    except (sf.SoundFileError, RuntimeError, TypeError, OSError) as e:
        if f is not None:
            f.close()
        raise audio.AudioError(
            f"{p}: not a readable audio file ({str(e).strip() or type(e).__name__}); "
            "expected WAV or FLAC"
        ) from e


def enhance_blocks(
    read: Get,
    n: int,
    channels: int,
    rate: int,
    predict: Predict,
    meta: dict,
    hop: int | None = None,
    batch_frames: int = 256,
    block: int = BLOCK,
    progress: Progress | None = None,
):
    """Yield ``(a, y)``: enhanced file-rate samples [a, a + len(y)) as (len, channels) float32.

    ``read(a, b)`` returns input frames [a, b) as (b - a, channels) float32. The blocks
    together equal :func:`enhance_signal` on the whole input (to float32 rounding).
    """
    rate, model_rate, T = int(rate), int(meta["sample_rate"]), int(meta["frame_length"])
    margin = resample_margin(rate, model_rate)
    g = gcd(rate, model_rate)
    up, down = model_rate // g, rate // g
    n_pad = n + 2 * margin
    n_model = -(-n_pad * model_rate // rate)
    total = n * channels
    if n <= margin + 1:
        # Too short for a single reflection (np.pad would reflect repeatedly): the whole
        # signal is tiny, so run the reference on it directly.
        from pipeline.enhance import enhance_signal

        y = enhance_signal(read(0, n), rate, predict, meta, hop=hop, batch_frames=batch_frames)
        if progress is not None:
            progress(total, total)
        yield 0, y
        return

    if margin:
        # Odd reflection by `margin` only touches x[:margin+1] and x[n-margin-1:] (n > margin).
        k = min(n, margin + 1)
        lpad = np.pad(read(0, k), ((margin, 0), (0, 0)), mode="reflect",
                      reflect_type="odd")[:margin]
        rpad = np.pad(read(n - k, n), ((0, margin), (0, 0)), mode="reflect",
                      reflect_type="odd")[k:]
    else:
        lpad = rpad = np.zeros((0, channels), np.float32)

    def padded(i0: int, i1: int) -> np.ndarray:
        """Samples [i0, i1) of the reflection-padded input."""
        return padded_range(lpad, read, rpad, n, i0, i1)

    def model_in(j0: int, j1: int) -> np.ndarray:
        return _resample_range(padded, n_pad, up, down, j0, j1)

    plan = OLAPlan(n_model, T, hop=hop, batch_frames=batch_frames)
    ke = plan.edge_k()
    first, last = model_in(0, ke), model_in(n_model - ke, n_model)
    pads = [plan.edge_pads(first[:, c], last[:, c]) for c in range(channels)]
    del first, last

    def model_out(s: int, e: int) -> np.ndarray:
        """Overlap-add output [s, e) at the model rate, all channels."""
        a, b = plan.input_range(s, e)
        xs = model_in(a, b)
        out = np.empty((e - s, channels), np.float32)
        for c in range(channels):
            out[:, c] = plan.run(xs[:, c], a, s, e, predict, *pads[c])
        return out

    for a in range(0, n, block):
        b = min(a + block, n)
        y = _resample_range(model_out, n_model, down, up, margin + a, margin + b)
        if progress is not None:
            progress(b * channels, total)
        yield a, y


def output_subtype(requested: str | None, input_subtype: str | None, fmt: str) -> str:
    """The output subtype: the requested one, else the input's when ``fmt`` can hold it
    (a 24-bit FLAC stays 24-bit), else PCM_24 for wide or float inputs and PCM_16 otherwise."""
    if requested is not None:
        return requested.upper()
    if input_subtype and sf.check_format(fmt, input_subtype):
        return input_subtype
    wide = input_subtype in {"PCM_24", "PCM_32", "FLOAT", "DOUBLE"}
    return "PCM_24" if wide and sf.check_format(fmt, "PCM_24") else "PCM_16"


def check_output(output_path: str | os.PathLike, subtype: str | None,
                 input_subtype: str | None = None) -> tuple[Path, str, str]:
    """Validate an output file request; returns (path, format, subtype) or raises AudioError."""
    p = Path(output_path)
    fmt = audio._FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise audio.AudioError(f"{p}: unsupported output extension {p.suffix!r}; use .wav or .flac")
    subtype = output_subtype(subtype, input_subtype, fmt)
    if not sf.check_format(fmt, subtype):
        ok = ", ".join(sorted(sf.available_subtypes(fmt)))
        raise audio.AudioError(f"{p}: subtype {subtype!r} is not valid for {fmt}; choose one of: {ok}")
    if p.is_dir():
        raise audio.AudioError(f"{p}: is a directory; give an output file name")
    return p, fmt, subtype


def enhance_stream(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    predict: Predict,
    meta: dict,
    subtype: str | None = None,
    hop: int | None = None,
    block: int = BLOCK,
    progress: Progress | None = None,
    opened: tuple[sf.SoundFile, int, int, int] | None = None,
) -> tuple[int, int, int]:
    """Enhance ``input_path`` into ``output_path`` block by block; returns (n, channels, rate).

    ``subtype`` None keeps the input's (see :func:`output_subtype`). The output goes to a
    temporary file beside ``output_path`` (fsynced, then renamed with ``os.replace``), with
    :func:`audio.write_audio_atomic`'s checks and guarantee: on any error ``output_path`` is
    not created and an existing one is untouched.
    """
    f_in, n, channels, rate = opened if opened is not None else open_input(input_path)
    with f_in:
        p, fmt, subtype = check_output(output_path, subtype, f_in.subtype)
        clip = subtype not in audio._FLOAT_SUBTYPES
        audio._check_rate(p, rate)
        reader = _Reader(f_in, Path(input_path))
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "r+b") as raw:
                with _write_errors(p):
                    f_out = sf.SoundFile(raw, "w", samplerate=rate, channels=channels,
                                         subtype=subtype, format=fmt)
                try:
                    for _a, y in enhance_blocks(reader.read, n, channels, rate, predict, meta,
                                                hop=hop, block=block, progress=progress):
                        y = writable(y, p, clip)
                        with _write_errors(p):
                            f_out.write(y)
                except BaseException:
                    with contextlib.suppress(Exception):
                        f_out.close()
                    raise
                with _write_errors(p):
                    f_out.close()
                with _write_errors(p):
                    raw.flush()
                    os.fsync(raw.fileno())
            with _write_errors(p):
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(tmp, 0o666 & ~umask)
                os.replace(tmp, p)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    return n, channels, rate
