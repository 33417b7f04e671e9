"""Streaming inference: run a frame model over arbitrarily long audio without seams.

The models map frames ``(batch, T, 1) -> (batch, T, 1)``. Cutting a signal into disjoint
frames and concatenating the outputs (the seed project's way, kept as :func:`naive_frames`)
leaves an audible click at every frame boundary whenever the model's error differs from
frame to frame. :func:`overlap_add` instead runs overlapping frames, weights each output
with a Hann window and normalises by the summed weights: the result is seamless, exact for
an identity model at any length, and computed block by block so memory stays bounded.

Only numpy is imported at module level; Keras/TensorFlow are loaded inside
:func:`load_model_dir` so tools that merely import this module stay fast.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import time
import warnings
import zipfile
from collections.abc import Callable
from math import gcd
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from pipeline.errors import UserError
from pipeline.io import audio

__all__ = [
    "META_KEYS",
    "ModelDirError",
    "enhance_file",
    "enhance_signal",
    "load_model_dir",
    "naive_frames",
    "overlap_add",
    "seam_ratio",
]

Predict = Callable[[np.ndarray], np.ndarray]
Progress = Callable[[int, int], None]

META_KEYS: dict[str, type] = {
    "experiment": str,
    "task": str,
    "sample_rate": int,
    "frame_length": int,
    "arch": str,
}


class ModelDirError(UserError, ValueError):
    """The path is not a usable model folder (``models/<experiment>/``) of this pipeline."""


# --------------------------------------------------------------------------- model loading


def _read_meta(folder: Path) -> dict:
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        raise ModelDirError(
            f"{folder}: not a model folder of this pipeline: meta.json is missing "
            "(expected models/<experiment>/{model.keras,meta.json} written by training)"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelDirError(f"{meta_path}: unreadable or invalid JSON ({e})") from e
    if not isinstance(meta, dict):
        raise ModelDirError(f"{meta_path}: expected a JSON object, got {type(meta).__name__}")
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise ModelDirError(
            f"{meta_path}: missing required key(s) {', '.join(missing)}; "
            f"meta.json must contain {', '.join(META_KEYS)}"
        )
    for key, typ in META_KEYS.items():
        val = meta[key]
        if not isinstance(val, typ) or isinstance(val, bool):
            raise ModelDirError(
                f"{meta_path}: key {key!r} should be {typ.__name__}, got {val!r}"
            )
    if meta["frame_length"] < 2:
        raise ModelDirError(f"{meta_path}: frame_length must be >= 2, got {meta['frame_length']}")
    if not audio.MIN_RATE <= meta["sample_rate"] <= audio.MAX_RATE:
        raise ModelDirError(f"{meta_path}: implausible sample_rate {meta['sample_rate']}")
    return meta


def _import_custom_objects() -> None:
    """Import ``pipeline.nn.layers`` (if present) so its registered custom layers deserialize."""
    if importlib.util.find_spec("pipeline.nn.layers") is None:
        return
    try:
        importlib.import_module("pipeline.nn.layers")
    except Exception as e:  # a broken optional module must not hide the real load error
        warnings.warn(f"could not import pipeline.nn.layers ({e}); custom layers unavailable",
                      stacklevel=3)


def load_model_dir(path: str | Path, batch_size: int = 256) -> tuple[Predict, dict]:
    """Load ``models/<experiment>/`` (or its ``model.keras``) as a batch predict function.

    Returns ``(predict, meta)`` where ``predict`` maps ``(n, T)`` float32 frames to ``(n, T)``.
    It calls the model through a ``tf.function`` in batches of ``batch_size``: for the many
    small batches of streaming inference this avoids ``model.predict``'s per-call setup.
    Validation happens before Keras is imported so a wrong path fails fast and clearly.
    """
    p = Path(path)
    if not p.exists():
        raise ModelDirError(f"{p}: no such model folder or file")
    if p.is_dir():
        folder, model_file = p, p / "model.keras"
    elif p.suffix == ".keras":
        folder, model_file = p.parent, p
    else:
        raise ModelDirError(f"{p}: expected a model folder or its model.keras file")
    meta = _read_meta(folder)
    if not model_file.is_file():
        raise ModelDirError(f"{folder}: model.keras is missing (training did not finish?)")
    try:
        with zipfile.ZipFile(model_file) as z:
            names = set(z.namelist())
    except (zipfile.BadZipFile, OSError) as e:
        raise ModelDirError(
            f"{model_file}: not a Keras 3 model archive (not a zip file: {e}); "
            "re-export it with model.save('model.keras')"
        ) from e
    if "config.json" not in names:
        raise ModelDirError(f"{model_file}: zip file without config.json; not a Keras 3 model")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    _import_custom_objects()
    import keras
    import tensorflow as tf

    try:
        model = keras.models.load_model(model_file, safe_mode=True, compile=False)
    except Exception as e:
        raise ModelDirError(f"{model_file}: Keras could not load the model ({e})") from e

    # One trace for every batch size and frame length, made here with a one-frame warm-up:
    # tracing took ~1.4 s and the trailing partial batch's retrace another ~0.8 s (profile of
    # enhance_file on 60 s), more than the whole inference budget at 100x real time. Models
    # that cannot be traced with an unknown batch/time axis fall back to per-shape traces.
    _infer = tf.function(lambda x: model(x, training=False),
                         input_signature=(tf.TensorSpec((None, None, 1), tf.float32),))
    try:
        _infer(tf.zeros((1, meta["frame_length"], 1), tf.float32))
    except Exception:
        _infer = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def predict(frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames, dtype=np.float32)
        if frames.ndim != 2:
            raise ValueError(f"predict expects (n, T) frames, got shape {frames.shape}")
        out = np.empty_like(frames)
        for i in range(0, frames.shape[0], batch_size):
            batch = frames[i : i + batch_size]
            y = _infer(tf.convert_to_tensor(batch[:, :, None]))
            y = np.asarray(y, dtype=np.float32)
            if y.size != batch.size:
                raise ValueError(
                    f"{model_file}: model output shape {y.shape} does not match input "
                    f"{batch.shape + (1,)}; streaming needs a (batch, T, 1) -> (batch, T, 1) model"
                )
            out[i : i + batch_size] = y.reshape(batch.shape)
        return out

    return predict, meta


# --------------------------------------------------------------------------- overlap-add


def _window(name: str | None, n: int) -> np.ndarray:
    """Periodic windows: their shifted copies sum to a constant, so normalisation is mild."""
    if name is None or name in ("rect", "boxcar", "ones"):
        return np.ones(n, dtype=np.float32)
    if name in ("hann", "hanning"):
        k = np.arange(n, dtype=np.float64)
        return (0.5 - 0.5 * np.cos(2.0 * np.pi * k / n)).astype(np.float32)
    raise ValueError(f"unknown window {name!r}; use 'hann' or 'rect'")


def _edge_pads(x: np.ndarray, left: int, right: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Build only the (short) padding arrays instead of a padded copy of the whole signal."""
    if mode == "constant":
        return np.zeros(left, np.float32), np.zeros(right, np.float32)
    if mode != "reflect":
        raise ValueError(f"unknown pad_mode {mode!r}; use 'reflect' or 'constant'")
    n = x.shape[0]
    k = min(n, max(left, right) + 1)  # enough samples to reflect without repeating
    head = np.pad(x[:k], (left, 0), mode="reflect")[:left] if n > 1 else np.repeat(x, left)
    tail = np.pad(x[n - k :], (0, right), mode="reflect")[k:] if n > 1 else np.repeat(x, right)
    return head.astype(np.float32), tail.astype(np.float32)


def overlap_add(
    x: np.ndarray,
    predict: Predict,
    frame_length: int,
    hop: int | None = None,
    window: str | None = "hann",
    batch_frames: int = 256,
    progress: Progress | None = None,
    pad_mode: str = "reflect",
) -> np.ndarray:
    """Run ``predict`` on overlapping frames of ``x`` and overlap-add the windowed outputs.

    Frames of ``frame_length`` T start every ``hop`` samples (default T//2). The signal is
    virtually padded by T-hop samples on the left (and enough on the right) so that every
    output sample is covered by the same full set of frames; the summed window weight is
    then periodic in ``hop`` and bounded away from 0, which makes dividing by it safe and an
    identity model reconstruct ``x`` exactly for any length (even 1). Frames are fed raw, as
    in training; only outputs are windowed. Work proceeds in blocks of ``batch_frames``
    frames, so beyond the output array memory is O(batch_frames * T).
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"overlap_add expects a 1-D signal, got shape {x.shape}")
    n = x.shape[0]
    T = int(frame_length)
    hop = T // 2 if hop is None else int(hop)
    if T < 1 or hop < 1:
        raise ValueError(f"need frame_length >= 1 and hop >= 1, got T={T}, hop={hop}")
    if hop > T:
        raise ValueError(f"hop {hop} > frame_length {T} would leave samples uncovered")
    if batch_frames < 1:
        raise ValueError(f"batch_frames must be >= 1, got {batch_frames}")
    if n == 0:
        return np.zeros(0, np.float32)

    w = _window(window, T)
    reps = -(-T // hop)  # frames overlapping any one sample, at most
    wpad = np.zeros(reps * hop, np.float32)
    wpad[:T] = w
    norm = wpad.reshape(reps, hop).sum(axis=0, dtype=np.float64)  # weight sum per phase
    if norm.min() < 1e-3 * norm.max():
        raise ValueError(f"window {window!r} with hop {hop} (T={T}) does not overlap-add to "
                         "a usable weight; use a smaller hop (e.g. T//2)")
    inv_norm = (1.0 / norm).astype(np.float32)

    left = T - hop
    last = left + n - 1  # padded index of the last real sample
    n_frames = last // hop + 1
    right = (n_frames - 1) * hop + T - left - n
    head, tail = _edge_pads(x, left, right, pad_mode)

    def padded(a: int, b: int) -> np.ndarray:
        """Samples [a, b) of the virtual padded signal head + x + tail."""
        parts = []
        if a < left:
            parts.append(head[a : min(b, left)])
        xa, xb = max(a - left, 0), min(b - left, n)
        if xa < xb:
            parts.append(x[xa:xb])
        if b > left + n:
            parts.append(tail[max(a - left - n, 0) : b - left - n])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    acc = np.zeros((n_frames + reps - 1) * hop, np.float32)
    for k0 in range(0, n_frames, batch_frames):
        k1 = min(k0 + batch_frames, n_frames)
        m = k1 - k0
        seg = padded(k0 * hop, (k1 - 1) * hop + T)
        frames = np.ascontiguousarray(sliding_window_view(seg, T)[::hop])
        y = np.asarray(predict(frames), dtype=np.float32)
        if y.shape != frames.shape:
            raise ValueError(f"predict returned shape {y.shape} for frames {frames.shape}")
        yw = np.zeros((m, reps * hop), np.float32)
        yw[:, :T] = y * w
        # Vectorised overlap-add: split each frame into `reps` hop-sized pieces; piece r of
        # frame k lands on hop-slot k + r.
        region = acc[k0 * hop : (k1 + reps - 1) * hop].reshape(m + reps - 1, hop)
        for r in range(reps):
            region[r : r + m] += yw[:, r * hop : (r + 1) * hop]
        if progress is not None:
            progress(min(max(k1 * hop - left, 0), n), n)
    acc.reshape(-1, hop)[...] *= inv_norm
    return acc[left : left + n]


def naive_frames(
    x: np.ndarray, predict: Predict, frame_length: int, batch_frames: int = 256
) -> np.ndarray:
    """Disjoint frames, outputs concatenated (zero-padded tail): the seamed baseline."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"naive_frames expects a 1-D signal, got shape {x.shape}")
    n, T = x.shape[0], int(frame_length)
    n_frames = -(-n // T)
    out = np.zeros(n_frames * T, np.float32)
    for k0 in range(0, n_frames, batch_frames):
        k1 = min(k0 + batch_frames, n_frames)
        frames = np.zeros((k1 - k0) * T, np.float32)
        chunk = x[k0 * T : k1 * T]
        frames[: chunk.size] = chunk
        y = np.asarray(predict(frames.reshape(k1 - k0, T)), dtype=np.float32)
        out[k0 * T : k1 * T] = y.reshape(-1)
    return out[:n]


def seam_ratio(error: np.ndarray, frame_length: int, hop: int, halfwidth: int = 8) -> float:
    """How much the reconstruction error jumps at frame boundaries (1 = no seams).

    Computes d = diff(error) and returns mean(d**2) over samples within ``halfwidth`` of a
    boundary (a multiple of ``hop``; pass ``hop=frame_length`` for naive concatenation)
    divided by mean(d**2) everywhere else. The first difference matters: a per-frame bias
    spreads the same error energy over the whole frame, so a plain energy ratio is ~1, but
    it changes abruptly at the boundary, which the difference concentrates there.
    ``frame_length`` is accepted for symmetry with the other functions; boundaries of
    overlap-add frames coincide with multiples of ``hop`` when hop divides it.
    """
    e = np.asarray(error, dtype=np.float64).reshape(-1)
    hop = int(hop)
    if hop < 1 or halfwidth < 0:
        raise ValueError("hop must be >= 1 and halfwidth >= 0")
    if 2 * halfwidth + 1 >= hop:
        raise ValueError(f"halfwidth {halfwidth} too large for hop {hop}: no samples left")
    d2 = np.diff(e) ** 2
    if d2.size < hop:
        raise ValueError(f"error signal ({e.size} samples) shorter than one hop ({hop})")
    # d[i] is the step between samples i and i+1; assign it to sample p = i+1 (a jump at
    # boundary b shows up as d[b-1]). Positions near p = 0 (the signal start) are skipped.
    pos = np.arange(1, d2.size + 1)
    phase = pos % hop
    dist = np.minimum(phase, hop - phase)
    valid = pos > halfwidth
    near = valid & (dist <= halfwidth)
    far = valid & ~near
    e_near = d2[near].mean() if near.any() else 0.0
    e_far = d2[far].mean()
    if e_far == 0.0:
        return float("inf") if e_near > 0 else 1.0
    return float(e_near / e_far)


# --------------------------------------------------------------------------- signals/files


def enhance_signal(
    x: np.ndarray,
    rate: int,
    predict: Predict,
    meta: dict,
    hop: int | None = None,
    batch_frames: int = 256,
    progress: Progress | None = None,
) -> np.ndarray:
    """Enhance ``(L, C)`` audio at any rate: resample to the model rate, overlap-add, back.

    Each channel is processed independently (models are mono). When resampling is needed the
    channel is first extended by an odd reflection (value and slope continuous) longer than
    the resampling filter, and that margin is cropped afterwards: resampling a signal that
    starts or stops abruptly otherwise rings at the file edges (errors up to ~0.4 measured
    on a 44.1 kHz tone mixture). The result has exactly L samples; 1-D input gives 1-D output.
    """
    x = np.asarray(x, dtype=np.float32)
    squeeze = x.ndim == 1
    if squeeze:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"expected (frames, channels) audio, got shape {x.shape}")
    n, channels = x.shape
    rate, model_rate, T = int(rate), int(meta["sample_rate"]), int(meta["frame_length"])
    margin = 0
    if rate != model_rate:
        g = gcd(rate, model_rate)
        up, down = model_rate // g, rate // g
        # resample_poly's filter spans 10*max(up, down) taps each side at the upsampled rate.
        margin = -(-20 * max(up, down) // up) + 16
    n_model = -(-(n + 2 * margin) * model_rate // rate)  # per-channel length at model rate
    total = n_model * channels

    outs = []
    for c in range(channels):
        cb = None
        if progress is not None:

            def cb(done, _tot, _off=c * n_model):
                progress(min(_off + done, total), total)

        xc = x[:, c]
        if margin:
            xc = np.pad(xc, margin, mode="reflect", reflect_type="odd")
        xc = audio.resample(xc, rate, model_rate)
        yc = overlap_add(xc, predict, T, hop=hop, batch_frames=batch_frames, progress=cb)
        del xc
        yc = audio.resample(yc, model_rate, rate)[margin : margin + n]
        if yc.shape[0] < n:  # cannot happen with ceil lengths; keep the contract regardless
            yc = np.concatenate([yc, np.zeros(n - yc.shape[0], np.float32)])
        outs.append(yc)
        del yc
    if squeeze:
        return outs[0]
    if channels == 1:
        return outs[0][:, None]  # no copy for the common mono case
    return np.stack(outs, axis=1)


def enhance_file(
    model_path: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    subtype: str = "PCM_16",
    hop: int | None = None,
    show_progress: bool | None = None,
) -> dict:
    """Enhance an audio file with a trained model and write the result atomically.

    The output keeps the input's rate, length and channel count. All validation (model
    folder, input file, output format) happens before inference, and the output is written
    via :func:`audio.write_audio_atomic`, so on any error ``output_path`` is not created (or
    an existing one is left untouched). Returns ``seconds`` of audio, ``rate``,
    ``channels``, ``elapsed_s`` (read + inference + write, excluding model loading),
    ``load_s`` (loading and tracing the model once) and ``realtime_factor`` = seconds /
    elapsed_s, i.e. how many times faster than real time (the CLI prints it as "Nx real
    time"; > 1 is faster than real time).
    """
    out_p = Path(output_path)
    fmt = audio._FORMATS.get(out_p.suffix.lower())
    if fmt is None:
        raise audio.AudioError(
            f"{out_p}: unsupported output extension {out_p.suffix!r}; use .wav or .flac"
        )
    import soundfile as sf  # soundfile is already loaded by pipeline.io.audio

    if not sf.check_format(fmt, subtype.upper()):
        raise audio.AudioError(f"{out_p}: subtype {subtype!r} is not valid for {fmt}")

    t0 = time.perf_counter()
    x, rate, _info = audio.read_audio(input_path)  # cheap checks first: fail fast
    n, channels = x.shape
    read_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    predict, meta = load_model_dir(model_path)
    load_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    use_bar = show_progress is not False and sys.stderr.isatty()
    if use_bar:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        bar = Progress(
            TextColumn(f"enhancing {Path(input_path).name}"),
            BarColumn(),
            TextColumn("{task.percentage:>5.1f}%"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        with bar:
            task = bar.add_task("enhance", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            y = enhance_signal(x, rate, predict, meta, hop=hop, progress=progress)
    else:
        y = enhance_signal(x, rate, predict, meta, hop=hop)
    del x
    audio.write_audio_atomic(out_p, y, rate, subtype=subtype)
    elapsed = time.perf_counter() - t1 + read_s
    seconds = n / rate
    return {
        "seconds": seconds,
        "rate": rate,
        "channels": channels,
        "elapsed_s": elapsed,
        "load_s": load_s,
        "realtime_factor": seconds / max(elapsed, 1e-9),
    }
