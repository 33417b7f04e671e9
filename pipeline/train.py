"""The ``train@<experiment>`` stage: fit a model on ``data/<name>`` and write ``models/<name>/``.

Outputs (an interface for evaluate and the DVC plots)::

    models/<name>/model.keras   load with keras.models.load_model(p, safe_mode=True)
                                after `import pipeline.models`
    models/<name>/meta.json     what was trained, on which data, how it went, the MLflow run id
    models/<name>/history.csv   one row per epoch: epoch, loss, val_loss, epoch_seconds

:func:`fit` is the reusable core (the tune stage calls it per trial); :func:`train_experiment`
is the stage body around it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import ValidationError

from pipeline import tracking
from pipeline.config import TUNABLE, ModelCfg, Params, ParamsError, TrainCfg
from pipeline.data import DataError, atomic_dir, load_split, make_dataset, read_digest
from pipeline.versions import library_versions

STAGE = "train"
BEST_PARAMS = "best_params.yaml"
_BEST_PARAMS_META = ("source", "study", "storage", "best_value", "untuned_value", "n_trials")


# ----------------------------------------------------------------------------- config
def derive_seed(base_seed: int, name: str, purpose: str = STAGE) -> int:
    """A 32-bit seed from base.seed, the experiment name and the purpose.

    Stable across processes (no Python hash randomisation) and independent of the data
    generator's (experiment, split) streams.
    """
    words = [int.from_bytes(hashlib.sha256(s.encode()).digest()[:8], "big") for s in (name, purpose)]
    return int(np.random.SeedSequence([base_seed, *words]).generate_state(1)[0])


def best_params_path(root: str | os.PathLike[str], name: str) -> Path:
    return Path(root) / "reports" / name / BEST_PARAMS


def read_best_params(path: Path) -> dict[str, Any]:
    """Parse ``{params: {name: value}, source, study, best_value}``; unknown names are errors."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: malformed YAML: {err}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("params", {}), dict):
        raise ParamsError(f"{path}: expected a mapping with a `params` mapping")
    extra = set(raw) - {"params", *_BEST_PARAMS_META}
    if extra:
        raise ParamsError(f"{path}: unknown top-level key(s) {sorted(extra)}")
    unknown = set(raw.get("params") or {}) - set(TUNABLE)
    if unknown:
        raise ParamsError(
            f"{path}: unknown tunable(s) {sorted(unknown)}; allowed: {', '.join(TUNABLE)}"
        )
    return {"params": dict(raw.get("params") or {}), **{k: raw.get(k) for k in _BEST_PARAMS_META}}


def effective_config(
    params: Params, name: str, root: str | os.PathLike[str] = "."
) -> tuple[ModelCfg, TrainCfg, dict[str, Any]]:
    """The model/train config to use, and where it came from.

    params.yaml (with quick caps) is the base. An experiment listed in ``tune.experiments``
    takes the tunables of its study's best trial from ``reports/<name>/best_params.yaml``,
    once the study holds ``tune.min_trials`` finished trials.
    """
    exp = params.experiment(name)
    model_cfg, train_cfg = exp.model, exp.train
    source: dict[str, Any] = {
        "source": "params.yaml",
        "tuned": False,
        "path": None,
        "study": None,
        "best_value": None,
        "untuned_value": None,
        "overrides": {},
    }
    if not params.tunes(name):
        return model_cfg, train_cfg, source
    path = best_params_path(root, name)
    if not path.is_file():
        raise DataError(f"{path} is missing, and tune.experiments lists {name}: run "
                        f"`dvc repro tune@{name}` (or take {name} out of tune.experiments)")
    best = read_best_params(path)
    source.update(study=best.get("study"), best_value=best.get("best_value"),
                  untuned_value=best.get("untuned_value"))
    n_done = best.get("n_trials")
    min_trials = params.tune_settings().min_trials
    if best.get("source") == "optuna" and n_done is not None and n_done < min_trials:
        source["source"] = (
            f"params.yaml (study {best.get('study')} has {n_done} of the {min_trials} "
            "finished trials tune.min_trials asks for before its values are used)"
        )
        return model_cfg, train_cfg, source
    overrides = best["params"]
    groups: dict[str, dict[str, Any]] = {"model": {}, "train": {}}
    for key, value in overrides.items():
        groups[TUNABLE[key]][key] = value
    try:
        model_cfg = ModelCfg.model_validate({**model_cfg.model_dump(), **groups["model"]})
        train_cfg = TrainCfg.model_validate({**train_cfg.model_dump(), **groups["train"]})
    except ValidationError as err:
        e = err.errors()[0]
        raise ParamsError(f"{path}: {'.'.join(map(str, e['loc']))}: {e['msg']}") from None
    source.update(
        source=best.get("source") or "optuna",
        tuned=bool(overrides) and best.get("source") != "untuned",
        path=best_params_path(".", name).as_posix(),
        overrides=overrides,
    )
    return model_cfg, train_cfg, source


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


# ----------------------------------------------------------------------------- fitting
@functools.cache
def _callbacks_module():
    import keras

    class EpochClock(keras.callbacks.Callback):
        """Adds `epoch_seconds` to the epoch logs; with `max_seconds` (exploration only) it
        stops after the epoch crossing that budget (`stop_reason` tells so afterwards).

        The seconds are a record of the run, never an input to it, unless max_seconds is set.
        """

        def __init__(self, max_seconds: float | None):
            super().__init__()
            self.max_seconds = max_seconds

        def on_train_begin(self, logs=None):
            self._elapsed = 0.0  # summed epoch times, as meta.json's train_seconds

        def on_epoch_begin(self, epoch, logs=None):
            self._te = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self._te
            self._elapsed += seconds
            if logs is not None:
                logs["epoch_seconds"] = seconds
            if self.max_seconds is not None and self._elapsed >= self.max_seconds:
                self.model.stop_training = True

    class MetricsLogger(keras.callbacks.Callback):
        """Per-epoch metrics to the MLflow run (step = 1-based epoch), live during training."""

        def __init__(self, run: tracking.RunHandle):
            super().__init__()
            self.run = run

        def on_epoch_end(self, epoch, logs=None):
            finite = {k: float(v) for k, v in (logs or {}).items() if math.isfinite(float(v))}
            self.run.log_metrics(finite, step=epoch + 1)

    class CosineSchedule(keras.callbacks.Callback):
        """Cosine decay of the learning rate over `total_steps` optimizer steps, from its start
        value to `floor` times it; set every batch, so it depends on nothing but the step."""

        def __init__(self, total_steps: int, floor: float = 0.05):
            super().__init__()
            self.total_steps, self.floor = max(1, total_steps), floor
            self.step = 0

        def on_train_begin(self, logs=None):
            self.lr0 = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

        def on_train_batch_begin(self, batch, logs=None):
            progress = min(self.step / self.total_steps, 1.0)
            factor = self.floor + (1.0 - self.floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
            self.model.optimizer.learning_rate.assign(self.lr0 * factor)
            self.step += 1

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:  # as ReduceLROnPlateau does: the curve shows the schedule
                lr = self.model.optimizer.learning_rate
                logs["learning_rate"] = float(keras.ops.convert_to_numpy(lr))

    return EpochClock, MetricsLogger, CosineSchedule


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

    Arrays are (clean, degraded) pairs as returned by :func:`pipeline.data.load_split`.
    `callbacks` run after the built-in ones (e.g. optuna's KerasPruningCallback), so they see
    `epoch_seconds`. The history holds one list per metric, one entry per epoch run.
    """
    import keras

    from pipeline.models import build_model, compile_model

    keras.utils.set_random_seed(seed)
    clean, degraded = train_arrays
    frame_length = int(np.shape(clean)[1])
    prefilter = None
    if model_cfg.prefilter_taps:
        from pipeline.filters import wiener_fir

        prefilter = wiener_fir(clean, degraded, model_cfg.prefilter_taps,
                               model_cfg.prefilter_max_gain_db)
    model = build_model(model_cfg, frame_length=frame_length, prefilter=prefilter)
    compile_model(model, train_cfg, frame_length=frame_length)
    train_ds = make_dataset(clean, degraded, train_cfg.batch_size, shuffle=True, seed=seed,
                            remix_noise=train_cfg.remix_noise)
    val_ds = make_dataset(val_arrays[0], val_arrays[1], train_cfg.batch_size, shuffle=False)
    clock_cls, _, cosine_cls = _callbacks_module()
    builtin = [
        keras.callbacks.TerminateOnNaN(),
        clock_cls(train_cfg.max_seconds),
    ]
    if train_cfg.ema_momentum is not None:
        # Validate on the averaged weights and hand them to the callbacks after it, so
        # EarlyStopping keeps (and restores) the best averaged weights.
        builtin.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    builtin += [
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=train_cfg.patience, restore_best_weights=True
        ),
    ]
    if train_cfg.lr_schedule == "cosine":
        steps = -(-int(np.shape(clean)[0]) // train_cfg.batch_size) * (epochs or train_cfg.epochs)
        builtin.append(cosine_cls(steps))
    elif train_cfg.lr_patience is not None:
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
    """Why training ended: `epochs` (the budget), `early_stopping`, or `wall_clock` (only
    when the exploration option train.max_seconds was set and ran out)."""
    if train_cfg.max_seconds and summary["train_seconds"] >= train_cfg.max_seconds:
        return "wall_clock"
    return "early_stopping" if summary["epochs_run"] < train_cfg.epochs else "epochs"


def _verbosity() -> int:
    """Silent in CI and when piped; Keras' one-line-per-epoch summary on a terminal."""
    if os.environ.get("CI") or not sys.stdout.isatty():
        return 0
    return 2


def _write_history_csv(path: Path, history: dict[str, list[float]]) -> None:
    import pandas as pd

    df = pd.DataFrame(history)
    df.insert(0, "epoch", np.arange(1, len(df) + 1))
    df.to_csv(path, index=False, float_format="%.7g")


# ----------------------------------------------------------------------------- stage body
def train_experiment(params: Params, name: str, root: str | os.PathLike[str] = ".") -> dict:
    """Train experiment `name` and write ``models/<name>/``; returns the meta.json content.

    Order matters: validate, then check the tracking backend (fail before minutes of training),
    then train, log and finally swap the outputs in atomically.
    """
    root = Path(root).resolve()
    exp = params.experiment(name)  # ParamsError for unknown names, before anything else
    model_cfg, train_cfg, source = effective_config(params, name, root)
    tracking.setup(params.tracking, root)

    data_dir = root / "data" / name
    train_arrays = load_split(data_dir, "train", limit=exp.sizes.train)
    val_arrays = load_split(data_dir, "val", limit=exp.sizes.val)
    digest = read_digest(data_dir)
    t_len = int(train_arrays[0].shape[1])
    if t_len != exp.frame_length or int(val_arrays[0].shape[1]) != t_len:
        raise DataError(
            f"{data_dir}: frames are {t_len} samples, params say frame_length "
            f"{exp.frame_length}; run `dvc repro generate@{name}`"
        )
    set_determinism(train_cfg.jit_compile)
    train_arrays = tuple(np.asarray(a, dtype=np.float32) for a in train_arrays)
    val_arrays = tuple(np.asarray(a, dtype=np.float32) for a in val_arrays)
    seed = derive_seed(params.base.seed, name)

    logged = {
        "experiment": name,
        "task": exp.task,
        "sample_rate": exp.sample_rate,
        "frame_length": exp.frame_length,
        "sizes": exp.sizes.model_dump(mode="json"),
        "signal": exp.signal.model_dump(mode="json"),
        "degradation": exp.degradation.model_dump(mode="json"),
        "model": model_cfg.model_dump(mode="json"),
        "train": train_cfg.model_dump(mode="json"),
        "base": {"seed": params.base.seed, "quick": params.base.quick},
        "seed": seed,
        "tune": {"tuned": source["tuned"], "source": source["source"]},
        "budget": "wall_clock" if train_cfg.max_seconds else "epochs",
    }
    versions = library_versions()
    p_hash = tracking.params_hash(logged)
    tags = {**tracking.standard_tags(STAGE, name, p_hash, digest, cwd=root),
            "budget": logged["budget"]}
    run_name = f"{STAGE}/{name}" + (f" ({tags['dvc_exp_name']})" if "dvc_exp_name" in tags else "")

    _, logger_cls, _ = _callbacks_module()
    with tracking.start_run(name, run_name, tags) as run:
        run.log_params({**logged, "versions": versions})
        run.log_dataset(
            train_arrays[1], train_arrays[0], digest, name=f"{name}-train", source=data_dir
        )
        run.log_dataset(val_arrays[1], val_arrays[0], digest, name=f"{name}-val",
                        source=data_dir, context="validation")
        model, history = fit(
            model_cfg,
            train_cfg,
            train_arrays,
            val_arrays,
            seed=seed,
            callbacks=[logger_cls(run)],
            verbose=_verbosity(),
        )
        summary = summarize_history(history, n_train=len(train_arrays[0]))
        summary["stopped_by"] = stop_reason(summary, train_cfg)
        if source["untuned_value"] is not None:  # the study's trial of params.yaml's values
            summary["tune_best_value"] = source["best_value"]
            summary["tune_untuned_value"] = source["untuned_value"]
        run.log_metrics({k: v for k, v in summary.items() if isinstance(v, (int, float))})
        run.set_tags({"stopped_by": summary["stopped_by"]})
        model_id = run.log_keras_model(model, example=val_arrays[1][:2, :, None])

        meta = {
            "experiment": name,
            "task": exp.task,
            "sample_rate": exp.sample_rate,
            "frame_length": exp.frame_length,
            "arch": model_cfg.arch,
            "model": model_cfg.model_dump(mode="json"),
            "train": train_cfg.model_dump(mode="json"),
            "tuned": source["tuned"],
            "config_source": {k: source[k] for k in ("source", "path", "study", "best_value",
                                                     "untuned_value")},
            "budget": {"epochs": train_cfg.epochs, "max_seconds": train_cfg.max_seconds},
            "seed": seed,
            "params_hash": p_hash,
            "data_digest": digest,
            "mlflow_run_id": run.run_id,
            "mlflow_model_id": model_id,
            **summary,
            "versions": versions,
        }
        with atomic_dir(root / "models" / name) as tmp:
            model.save(tmp / "model.keras")
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
            _write_history_csv(tmp / "history.csv", history)
        run.log_artifact(root / "models" / name / "history.csv")
    return meta
