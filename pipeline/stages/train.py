"""Stage ``train@E``: fit the model on ``data/E`` and write ``models/E/``.

load (arrays, digest) -> compute (:func:`pipeline.nn.fit.fit`) -> record (MLflow run) -> write
(model.keras, meta.json, history.csv, swapped in atomically). Order matters: the tracking
backend is checked before minutes of training, and nothing is written until all succeeded.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import tracking
from pipeline.config.resolve import Resolved
from pipeline.io.atomic import atomic_dir
from pipeline.io.keras_archive import canonicalize
from pipeline.layout import DataError, ModelMeta, load_split, read_digest
from pipeline.nn.fit import fit, metrics_logger, set_determinism, stop_reason, summarize_history
from pipeline.versions import library_versions

STAGE = "train"


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


def load_inputs(r: Resolved) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], str]:
    """(train, val) float32 (clean, degraded) pairs and the data digest; checks frame length."""
    train = load_split(r.paths, "train", limit=r.exp.sizes.train)
    val = load_split(r.paths, "val", limit=r.exp.sizes.val)
    digest = read_digest(r.paths)
    t_len = int(train[0].shape[1])
    if t_len != r.exp.frame_length or int(val[0].shape[1]) != t_len:
        raise DataError(f"{r.paths.data}: frames are {t_len} samples, params say frame_length "
                        f"{r.exp.frame_length}; run `dvc repro generate@{r.name}`")
    as32 = lambda pair: tuple(np.asarray(a, dtype=np.float32) for a in pair)  # noqa: E731
    return as32(train), as32(val), digest


def run_record(r: Resolved) -> dict[str, Any]:
    """What the MLflow run logs as params (and hashes into its params_hash tag)."""
    exp = r.exp
    return {
        "experiment": r.name,
        "task": exp.task,
        "sample_rate": exp.sample_rate,
        "frame_length": exp.frame_length,
        "sizes": exp.sizes.model_dump(mode="json"),
        "signal": exp.signal.model_dump(mode="json"),
        "degradation": exp.degradation.model_dump(mode="json"),
        "model": r.model.model_dump(mode="json"),
        "train": r.train.model_dump(mode="json"),
        "base": {"seed": r.base_seed, "quick": r.quick},
        "seed": r.seed(STAGE),
        "tune": {"tuned": r.tuning.tuned, "source": r.tuning.record.source},
    }


def write_outputs(r: Resolved, model: Any, meta: ModelMeta, history: dict[str, list[float]]):
    with atomic_dir(r.paths.model_dir) as tmp:
        model.save(tmp / r.paths.model.name)
        canonicalize(tmp / r.paths.model.name)  # same weights, same bytes
        (tmp / r.paths.meta.name).write_text(meta.text())
        _write_history_csv(tmp / r.paths.history.name, history)


def train_experiment(r: Resolved) -> ModelMeta:
    """Train experiment `r` and write ``models/E/``; returns the meta.json record."""
    tracker = tracking.setup(r.tracking, r.paths.root)
    train_arrays, val_arrays, digest = load_inputs(r)
    set_determinism(r.train.jit_compile)
    logged = run_record(r)
    versions = library_versions()
    p_hash = tracking.params_hash(logged)
    tags = tracking.standard_tags(STAGE, r.name, p_hash, digest, cwd=r.paths.root)
    run_name = f"{STAGE}/{r.name}" + (f" ({tags['dvc_exp_name']})" if "dvc_exp_name" in tags
                                      else "")
    with tracker.start_run(r.name, run_name, tags) as run:
        run.log_params({**logged, "versions": versions})
        for split, (clean, degraded) in (("train", train_arrays), ("val", val_arrays)):
            run.log_dataset(degraded, clean, digest, name=f"{r.name}-{split}",
                            source=r.paths.data, context="training" if split == "train"
                            else "validation")
        model, history = fit(r.model, r.train, train_arrays, val_arrays, seed=logged["seed"],
                             callbacks=[metrics_logger(run)], verbose=_verbosity())
        summary = summarize_history(history, n_train=len(train_arrays[0]))
        summary["stopped_by"] = stop_reason(summary, r.train)
        if r.tuning.record.untuned_value is not None:  # the study's trial of params.yaml's values
            summary["tune_best_value"] = r.tuning.record.best_value
            summary["tune_untuned_value"] = r.tuning.record.untuned_value
        run.log_metrics({k: v for k, v in summary.items() if isinstance(v, (int, float))})
        run.set_tags({"stopped_by": summary["stopped_by"]})
        model_id = run.log_keras_model(model, example=val_arrays[1][:2, :, None])
        meta = ModelMeta(
            experiment=r.name, task=r.exp.task, sample_rate=r.exp.sample_rate,
            frame_length=r.exp.frame_length, arch=r.model.arch,
            model=logged["model"], train=logged["train"], tuned=r.tuning.tuned,
            config_source=r.tuning.record,
            budget={"epochs": r.train.epochs},
            seed=logged["seed"], params_hash=p_hash, data_digest=digest,
            mlflow_run_id=run.run_id, mlflow_model_id=model_id, **summary, versions=versions)
        write_outputs(r, model, meta, history)
        run.log_artifact(r.paths.history)
    return meta
