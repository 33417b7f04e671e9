"""Fitting: build, compile and train one model, deterministically.

:func:`fit` is the core both the train stage and every tuning trial call; nothing here reads
files or params.yaml: it receives typed configs and arrays.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.config.model import ModelCfg, TrainCfg, UnetCfg
from pipeline.nn.feed import make_dataset


def set_determinism(jit_compile: bool) -> None:
    """Bit-identical re-runs on one machine, whatever else it runs.

    Op determinism pins TF's kernels to deterministic reductions (free on CPU here; on a GPU
    it pins cuDNN). It excludes XLA, so an XLA run relies on XLA's CPU kernels, which were
    deterministic in our re-runs (the slow test compares weights). Process-wide: set per stage.
    """
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config  # the switch Keras reads

    if jit_compile:  # an earlier run in this process must not silently drop XLA
        tf_config.disable_op_determinism()
    else:
        tf.config.experimental.enable_op_determinism()


@functools.cache
def _callbacks_module():
    import keras

    class EpochClock(keras.callbacks.Callback):
        """Adds `epoch_seconds` to the epoch logs: a record of the run, never an input to it
        (training length is counted in epochs only)."""

        def on_epoch_begin(self, epoch, logs=None):
            self._te = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["epoch_seconds"] = time.perf_counter() - self._te

    class MetricsLogger(keras.callbacks.Callback):
        """Per-epoch metrics to the MLflow run (step = 1-based epoch), live during training."""

        def __init__(self, run):  # anything with log_metrics(dict, step=)
            super().__init__()
            self.run = run

        def on_epoch_end(self, epoch, logs=None):
            finite = {k: float(v) for k, v in (logs or {}).items() if math.isfinite(float(v))}
            self.run.log_metrics(finite, step=epoch + 1)

    return EpochClock, MetricsLogger


def metrics_logger(run) -> Any:
    """A Keras callback logging each epoch's metrics to `run` (a tracking.RunHandle)."""
    return _callbacks_module()[1](run)


def fit(
    model_cfg: ModelCfg,
    train_cfg: TrainCfg,
    train_arrays: tuple[np.ndarray, np.ndarray],
    val_arrays: tuple[np.ndarray, np.ndarray],
    seed: int,
    epochs: int | None = None,
    callbacks: Sequence[Any] = (),
    verbose: int = 0,
):
    """Build, compile and train; returns (model with the best val_loss weights, history dict).

    Arrays are (clean, degraded) pairs as returned by :func:`pipeline.layout.load_split`.
    `callbacks` run after the built-in ones (e.g. optuna's KerasPruningCallback), so they see
    `epoch_seconds`. The history holds one list per metric, one entry per epoch run.
    """
    import keras

    from pipeline.nn.architectures import build_model
    from pipeline.nn.losses import compile_model

    keras.utils.set_random_seed(seed)
    clean, degraded = train_arrays
    frame_length = int(np.shape(clean)[1])
    prefilter = None
    pf = model_cfg.prefilter if isinstance(model_cfg, UnetCfg) else None
    if pf is not None:
        from pipeline.dsp.filters import wiener_fir

        prefilter = wiener_fir(clean, degraded, pf.taps, pf.max_gain_db)
    model = build_model(model_cfg, frame_length=frame_length, prefilter=prefilter)
    compile_model(model, train_cfg)
    train_ds = make_dataset(clean, degraded, train_cfg.batch_size, shuffle=True, seed=seed)
    val_ds = make_dataset(val_arrays[0], val_arrays[1], train_cfg.batch_size, shuffle=False)
    clock_cls, _ = _callbacks_module()
    builtin = [
        keras.callbacks.TerminateOnNaN(),
        clock_cls(),
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=train_cfg.patience, restore_best_weights=True
        ),
    ]
    if train_cfg.lr_patience is not None:
        builtin.append(keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=train_cfg.lr_patience, min_lr=1e-5
        ))
    hist = model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=epochs or train_cfg.epochs,
        callbacks=[*builtin, *callbacks],
        verbose=verbose,
        shuffle=False,  # make_dataset already reshuffles every epoch, seeded
    )
    return model, {k: [float(v) for v in vs] for k, vs in hist.history.items()}


def summarize_history(history: dict[str, list[float]], n_train: int) -> dict[str, Any]:
    """best_val_loss / best_epoch (1-based) / epochs_run / train_seconds / samples_per_second.

    samples_per_second is training frames per second of epoch wall-clock (validation included)
    over the epochs after the first, which alone pays seconds of graph tracing; with a single
    epoch it falls back to that one.
    """
    val = np.asarray(history.get("val_loss", []), dtype=float)
    finite = np.where(np.isfinite(val), val, np.inf)
    if val.size == 0 or not np.isfinite(finite).any():
        raise RuntimeError(
            "training diverged (no finite val_loss); lower train.learning_rate or check the data"
        )
    best = int(np.argmin(finite))
    times = [float(t) for t in history.get("epoch_seconds", [])]
    steady = times[1:] or times
    rate = n_train * len(steady) / sum(steady) if steady and sum(steady) > 0 else None
    return {
        "best_val_loss": float(finite[best]),
        "best_epoch": best + 1,
        "epochs_run": int(val.size),
        "train_seconds": round(sum(times), 3),
        "samples_per_second": None if rate is None else round(rate, 1),
    }


def stop_reason(summary: dict[str, Any], train_cfg: TrainCfg) -> str:
    """Why training ended: `epochs` (the budget ran out) or `early_stopping` (patience did)."""
    return "early_stopping" if summary["epochs_run"] < train_cfg.epochs else "epochs"
