"""A trained model folder (``models/<experiment>/``) as a batch predict function.

Validation happens before Keras is imported, so a wrong path fails fast and clearly.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.errors import UserError
from pipeline.io import audio
from pipeline.layout import META_FILE, MODEL_FILE, ModelMeta

Predict = Callable[[np.ndarray], np.ndarray]

META_KEYS: dict[str, type] = {
    "experiment": str,
    "task": str,
    "sample_rate": int,
    "frame_length": int,
    "arch": str,
}
# The seed experiments' models run at 1 kHz; files still need audio.MIN_RATE or more.
MIN_MODEL_RATE = 1_000


class ModelDirError(UserError, ValueError):
    """The path is not a usable model folder (``models/<experiment>/``) of this pipeline."""


# --------------------------------------------------------------------------- model loading


def _read_meta(folder: Path) -> dict:
    meta_path = folder / META_FILE
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
    if not MIN_MODEL_RATE <= meta["sample_rate"] <= audio.MAX_RATE:
        raise ModelDirError(f"{meta_path}: implausible sample_rate {meta['sample_rate']} (a model "
                            f"runs at {MIN_MODEL_RATE}-{audio.MAX_RATE} Hz)")
    try:  # the one schema of meta.json (pipeline/layout.py); extra keys of other versions load
        ModelMeta.model_validate(meta)
    except ValueError as e:
        raise ModelDirError(f"{meta_path}: not a meta.json of this pipeline ({e})") from None
    return meta


def load_model_dir(path: str | Path, batch_size: int = 256) -> tuple[Predict, dict]:
    """Load ``models/<experiment>/`` (or its ``model.keras``) as a batch predict function.

    Returns ``(predict, meta)`` where ``predict`` maps ``(n, T)`` float32 frames to ``(n, T)``.
    It calls the model through a ``tf.function`` in batches of ``batch_size``: for the many
    small batches of streaming inference this avoids ``model.predict``'s per-call setup.
    Validation happens before Keras is imported so a wrong path fails fast and clearly
    (which is why checks and loading stay in one function: the order is the point).
    """
    p = Path(path)
    if not p.exists():
        raise ModelDirError(f"{p}: no such model folder or file")
    if p.is_dir():
        folder, model_file = p, p / MODEL_FILE
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

    import keras
    import tensorflow as tf

    import pipeline.nn.layers  # noqa: F401  registers the custom layers for safe-mode loading

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


