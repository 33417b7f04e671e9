"""Stage ``evaluate@E``: score the model against classical baselines, the oracle and bounds.

load (check every input first) -> compute (predict; :mod:`pipeline.evaluation.scoring`) ->
record (MLflow run, linked to the train run and the logged model) -> write (reports/E/, staged
in a temp folder and renamed into place only once everything succeeded).

Outputs of ``reports/E/`` (see pipeline/layout.py)::

    metrics.json      flat numbers (Metrics record): model_gain_db, best_classical, ...
    key_metrics.json  the headline numbers `dvc exp show` compares
    methods.csv       one row per method: SNR/SI-SDR/LSD stats on test, val gain of baselines
    gain_by_snr.csv   mean SNR gain per input-SNR bucket (x: input_snr_db) for `dvc plots`
    scores_by_frame.csv  every method's per-frame metrics (experiments.E.metrics), with the
                      frame's noise_kind and 5 dB snr_bucket_db (pipeline.evaluation.speech)
    scores_by_kind.csv, scores_by_snr.csv, scores_headline.csv  their means and gains
    figures/          examples.png, gain_vs_snr.png, spectrograms.png (+ gain_by_frequency)
    audio/            listening examples: examples.json + 16-bit WAVs
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline import tracking
from pipeline.config.resolve import Resolved
from pipeline.evaluation.figures import write_figures, write_spectrograms
from pipeline.evaluation.listening import write_kind_examples, write_listening_examples
from pipeline.evaluation.scoring import (
    LSD_MAX_FFT,
    MAX_FIT_FRAMES,
    Scored,
    Split,
    clean_json,
    gain_tables,
    headline_metrics,
    key_metrics,
    rounded,
    score_methods,
)
from pipeline.evaluation.speech import conditions, frame_scores
from pipeline.evaluation.speech_tables import (
    ALL_KINDS,
    HEADLINE_BUCKETS,
    INPUT,
    SpeechTables,
    headline_numbers,
    speech_tables,
)
from pipeline.io.atomic import replace_dir
from pipeline.layout import SPLITS, DataError, Metrics, ModelMeta, load_split, read_digest
from pipeline.versions import library_versions

log = logging.getLogger(__name__)

STAGE = "evaluate"
PREDICT_BATCH = 256


# ----------------------------------------------------------------------------- load
def check_inputs(r: Resolved) -> tuple[str, ModelMeta | None]:
    """Validate every input up front so a missing file fails before anything is written;
    returns the data digest and the model's meta.json (None when missing)."""
    paths, exp = r.paths, r.exp
    digest = read_digest(paths)
    for split in SPLITS:
        clean, _ = load_split(paths, split)
        if clean.shape[1] != exp.frame_length:
            raise DataError(f"{paths.data}: {split} frames have {clean.shape[1]} samples but "
                            f"params say frame_length {exp.frame_length}; run "
                            f"`dvc repro generate@{r.name}`")
    if not paths.model.is_file():
        raise DataError(f"{paths.model}: missing; run `dvc repro train@{r.name}` first")
    if exp.signal.family == "sine" and not paths.manifest.is_file():
        raise DataError(f"{paths.manifest}: missing; run `dvc repro generate@{r.name}` first")
    meta = ModelMeta.read(paths.meta) if paths.meta.is_file() else None
    if meta is None:
        log.warning("%s: missing; the evaluation run will not be linked to a train run",
                    paths.meta)
    elif meta.frame_length != exp.frame_length:
        raise DataError(f"{paths.model}: trained on {meta.frame_length}-sample frames, data has "
                        f"{exp.frame_length}; run `dvc repro train@{r.name}`")
    elif meta.data_digest not in (None, digest):
        log.warning("%s: model was trained on data %s but data/%s is %s; results may be stale",
                    paths.model, meta.data_digest, r.name, digest)
    return digest, meta


def load_splits(r: Resolved) -> tuple[Split, Split, Split]:
    train = Split(*(np.asarray(a) for a in load_split(r.paths, "train", MAX_FIT_FRAMES)))
    val = Split(*(np.asarray(a) for a in load_split(r.paths, "val")))
    test = Split(*(np.asarray(a) for a in load_split(r.paths, "test")))
    return train, val, test


def test_manifest(r: Resolved, n_test: int) -> pd.DataFrame | None:
    """The manifest's test rows in frame order (None without a manifest)."""
    if not r.paths.manifest.is_file():
        return None
    man = pd.read_csv(r.paths.manifest)
    man = man[man["split"] == "test"].sort_values("index").reset_index(drop=True)
    if len(man) != n_test or not np.array_equal(man["index"].to_numpy(), np.arange(n_test)):
        raise DataError(f"{r.paths.manifest}: {len(man)} test rows for {n_test} frames; "
                        f"run `dvc repro generate@{r.name}`")
    return man


def test_frequencies(r: Resolved, man: pd.DataFrame | None) -> np.ndarray | None:
    """Each test frame's sine frequency (cycles per frame) from the manifest; sines only."""
    if r.exp.signal.family != "sine" or man is None:
        return None
    return man["f"].to_numpy()


def speech_scores(r: Resolved, s: Scored, test: Split, man: pd.DataFrame | None
                  ) -> tuple[pd.DataFrame, SpeechTables]:
    """Every method's per-frame metrics with each frame's conditions, and their tables. The
    input stands for `identity` (the same figures); denoising headlines use 0/5/10 dB."""
    exp = r.exp
    methods = {INPUT: test.degraded, **{k: v["estimate"] for k, v in s.results.items()
                                        if k != "identity"}}
    cond = conditions(man, test.snr)
    frames = frame_scores(methods, test.clean, exp.sample_rate, exp.metrics,
                          min(LSD_MAX_FFT, exp.frame_length))
    noisy = exp.degradation.kind in ("noise", "speech_noise")
    tables = speech_tables(frames, cond, HEADLINE_BUCKETS if noisy else None)
    joined = frames.merge(cond, on="index", how="left", validate="many_to_one")  # frames' order
    lead = ["index", "noise_kind", "snr_bucket_db", "method"]
    return joined[lead + [c for c in joined.columns if c not in lead]], tables


def speech_metrics(r: Resolved, s: Scored, tables: SpeechTables) -> dict[str, Any]:
    """metrics.json's speech.* figures: only for experiments that ask for more than
    snr/si_sdr, so the other experiments' metrics.json stay as they were."""
    if set(r.exp.metrics) <= {"snr", "si_sdr"}:
        return {}
    return {k: v if isinstance(v, str) else rounded(v)
            for k, v in headline_numbers(tables, s.best).items()}


def predict(model_path: Path, degraded: np.ndarray) -> tuple[np.ndarray, int]:
    """Model output for (n, T) frames, and how many frames had non-finite values.

    Non-finite outputs are zeroed so a diverged model scores as a failure instead of turning
    every mean into NaN.
    """
    import keras

    import pipeline.nn.layers  # noqa: F401  registers the custom layers for safe-mode loading

    model = keras.models.load_model(model_path, safe_mode=True, compile=False)
    x = np.asarray(degraded, dtype=np.float32)[..., None]
    y = np.asarray(model.predict(x, batch_size=PREDICT_BATCH, verbose=0), dtype=np.float32)
    y = y.reshape(degraded.shape)
    bad = ~np.isfinite(y)
    n_bad = int(np.any(bad, axis=1).sum())
    if n_bad:
        log.warning("%s: %d test frames have non-finite outputs (scored as zeros)", model_path,
                    n_bad)
        y = np.where(bad, 0.0, y).astype(np.float32)
    return y, n_bad


# ----------------------------------------------------------------------------- record
def _flat_numbers(metrics: dict[str, Any], methods: pd.DataFrame) -> dict[str, float]:
    """metrics.json's finite numbers plus a few per-method columns, for MLflow."""
    out = {k: float(v) for k, v in metrics.items()
           if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}
    for _, r in methods.iterrows():
        for col in ("gain_mean_db", "snr_median_db", "lsd"):
            v = r[col]
            if isinstance(v, int | float) and math.isfinite(v):
                out[f"{r['method']}.{col}"] = float(v)
    return out


def _parent_run(train_run_id: str | None) -> str | None:
    """The train run to nest under, if this tracking store knows it (else a standalone run)."""
    if not train_run_id:
        return None
    from mlflow import MlflowClient

    try:
        MlflowClient().get_run(train_run_id)
        return train_run_id
    except Exception:  # another store, deleted run: keep the link as a tag only
        log.warning("train run %s not found in the tracking store; logging a standalone "
                    "evaluation run tagged train_run_id", train_run_id)
        return None


def log_run(tracker: tracking.Tracker, r: Resolved, stage: Path, metrics: dict[str, Any],
            methods: pd.DataFrame, test: Split, model_id: str | None) -> str | None:
    """Log the evaluation run and its artifacts; return its id (None when tracking is off).

    metrics.json is written into `stage` here because it carries the run's own id.
    """
    exp, train_run_id = r.exp, metrics["train_run_id"]
    scored_on = exp.model_dump(mode="json", include={"sizes", "signal", "degradation"})
    tags = tracking.standard_tags(STAGE, r.name, tracking.params_hash(scored_on),
                                  metrics["data_digest"], cwd=r.paths.root)
    tags |= {"best_classical": metrics["best_classical"]}
    if train_run_id:
        tags["train_run_id"] = train_run_id
    parent = _parent_run(train_run_id) if tracker.enabled else None
    with tracker.start_run(r.name, f"{STAGE}/{r.name}", tags=tags, parent_run_id=parent) as run:
        run.log_params({"signal": exp.signal.model_dump(mode="json"),
                        "degradation": exp.degradation.model_dump(mode="json"),
                        "lsd_n_fft": metrics["lsd_n_fft"], "versions": metrics["versions"]})
        dataset = run.log_dataset(test.degraded, test.clean, metrics["data_digest"],
                                  name=f"{r.name}-test", source=r.paths.data,
                                  context="evaluation")
        # Linked to the logged model and the test set: MLflow's model page lists these scores.
        run.log_metrics(_flat_numbers(metrics, methods), model_id=model_id, dataset=dataset)
        _write_json(stage / r.paths.metrics.name, {**metrics, "mlflow_run_id": run.run_id},
                    Metrics)
        for path in sorted(stage.rglob("*")):
            if path.is_file():
                sub = path.parent.relative_to(stage).as_posix()
                run.log_artifact(path, STAGE if sub == "." else f"{STAGE}/{sub}")
        return run.run_id


# ----------------------------------------------------------------------------- write
def _write_json(path: Path, record: dict[str, Any], schema: type[Metrics] | None = None) -> None:
    """Strict JSON in the order the record was built, checked against its typed record."""
    clean = clean_json(record)
    if schema is not None:
        schema.model_validate(clean)
    path.write_text(json.dumps(clean, indent=2) + "\n")


def write_artifacts(stage: Path, r: Resolved, s: Scored, test: Split,
                    f_test: np.ndarray | None, frames: pd.DataFrame, tables: SpeechTables
                    ) -> None:
    """Figures, listening examples and the tables, into the staging folder."""
    (stage / "figures").mkdir()
    buckets, by_f = gain_tables(r.exp, s, test, f_test)
    write_figures(stage / "figures", r.exp, test, s, buckets, by_f)
    examples = write_listening_examples(stage / "audio", r.exp, test, s)
    first = frames[frames["method"] == INPUT]
    if (first["noise_kind"] != ALL_KINDS).any():
        write_kind_examples(stage / "audio", r.exp, test, s, first["noise_kind"].to_numpy(),
                            first["snr_bucket_db"].to_numpy())
    p = r.paths
    for path, table in ((p.scores_by_frame, frames), (p.scores_by_kind, tables.by_kind),
                        (p.scores_by_snr, tables.by_snr), (p.scores_headline, tables.headline),
                        (p.scores_by_package, tables.by_package)):
        table.to_csv(stage / path.name, index=False, float_format="%.6g")
    write_spectrograms(stage / "figures" / "spectrograms.png", r.exp, examples, s.best)
    s.methods.to_csv(stage / r.paths.methods.name, index=False, float_format="%.6g")
    buckets.to_csv(stage / r.paths.gain_by_snr.name, index=False, float_format="%.6g")
    if by_f is not None:
        by_f.to_csv(stage / "figures" / "gain_by_frequency.csv", index=False,
                    float_format="%.6g")


def publish(stage: Path, r: Resolved) -> None:
    """Rename staged files and folders into reports/E (same filesystem: atomic each)."""
    p = r.paths
    replace_dir(stage / p.figures.name, p.figures)
    replace_dir(stage / p.audio.name, p.audio)
    for path in (p.methods, p.gain_by_snr, p.scores_by_frame, p.scores_by_kind, p.scores_by_snr,
                 p.scores_headline, p.scores_by_package, p.key_metrics, p.metrics):  # metrics.json last:
        os.replace(stage / path.name, path)  # its presence means the rest is complete


def evaluate_experiment(r: Resolved) -> dict[str, Any]:
    """Score model, classical baselines and oracle on the test split; write reports/E/."""
    digest, meta = check_inputs(r)
    tracker = tracking.setup(r.tracking, r.paths.root)  # a required backend that is down fails
    train, val, test = load_splits(r)                   # here, before the work
    man = test_manifest(r, len(test.clean))
    f_test = test_frequencies(r, man)
    estimate, n_bad = predict(r.paths.model, test.degraded)
    scored = score_methods(r.exp, train, val, test, estimate)
    frames, tables = speech_scores(r, scored, test, man)
    metrics: dict[str, Any] = {
        "experiment": r.name,
        **headline_metrics(r.exp, scored, train, val, test, n_bad),
        **speech_metrics(r, scored, tables),
        "data_digest": digest,
        "model_data_digest": meta.data_digest if meta else None,
        "train_run_id": meta.mlflow_run_id if meta else None,
        "versions": library_versions(),
        "mlflow_run_id": None,
    }
    r.paths.reports.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".evaluate.", dir=r.paths.reports) as tmp:
        stage = Path(tmp)
        write_artifacts(stage, r, scored, test, f_test, frames, tables)
        metrics["mlflow_run_id"] = log_run(tracker, r, stage, metrics, scored.methods, test,
                                           meta.mlflow_model_id if meta else None)
        _write_json(stage / r.paths.key_metrics.name, key_metrics(metrics))
        publish(stage, r)
    return clean_json(metrics)
