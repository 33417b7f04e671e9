"""`audiorecon compare`: MLflow runs of one experiment side by side, newest first.

The terminal twin of the MLflow UI's compare view: the runs come from ``mlflow.search_runs``, only
the params that differ between them are kept (equal ones say nothing), and a few key metrics per
stage follow. Train runs also get the gains of their evaluation run (the evaluate stage nests its
run under the train run and tags ``train_run_id``), so one row reads "this config -> this gain".
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from pipeline.errors import UserError
from pipeline.io.atomic import atomic_write_text
from pipeline.tracking.uris import public_uri

STAGES = ("train", "evaluate", "tune", "tune-trial", "all")
EVAL_METRICS = ["model_gain_db", "best_classical_gain_db", "model_minus_best_classical_db",
                "fraction_of_oracle_gain"]
KEY_METRICS = {
    "train": ["best_val_loss", "best_epoch", "epochs_run", "train_seconds"],
    "evaluate": [*EVAL_METRICS, "oracle_gain_db", "model_snr_median_db"],
    "tune": ["best_value", "n_trials", "n_complete", "n_pruned", "n_fail"],
    "tune-trial": ["objective", "epochs_run", "duration_s"],
}
HEAD = ["run_id", "run_name", "stage", "started", "status"]


class CompareError(UserError, ValueError):
    """No runs to compare, or an unknown experiment / stage."""


def _search(uri: str, experiment: str, stage: str, limit: int | None) -> pd.DataFrame:
    import mlflow

    from pipeline import tracking

    tracking.check_backend(uri, required=True)  # unreachable: one TrackingError, no traceback
    saved = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        name = tracking.experiment_name(experiment)
        exp = mlflow.get_experiment_by_name(name)
        if exp is None:
            known = sorted(e.name for e in mlflow.search_experiments()
                           if e.name.startswith(tracking.EXPERIMENT_PREFIX))
            raise CompareError(f"{public_uri(uri)}: no MLflow experiment {name!r} (known: "
                               f"{', '.join(known) or 'none'}); run `dvc repro train@{experiment}`")
        flt = None if stage == "all" else f"tags.stage = '{stage}'"
        return mlflow.search_runs([exp.experiment_id], filter_string=flt, max_results=limit or 1000,
                                  order_by=["attributes.start_time DESC"])
    finally:
        if saved is None:  # set_tracking_uri exports the variable; leave the env as found
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved


def _differing(df: pd.DataFrame) -> list[str]:
    """params.* columns whose values are not all equal (a param missing from some runs differs)."""
    cols = [c for c in df.columns if c.startswith("params.")]
    return sorted(c for c in cols if df[c].astype(str).nunique(dropna=False) > 1)


def _with_evaluations(uri: str, experiment: str, runs: pd.DataFrame) -> pd.DataFrame:
    """Attach the newest evaluate run's gains to each train run (by its train_run_id tag)."""
    ev = _search(uri, experiment, "evaluate", None)
    if ev.empty or "tags.train_run_id" not in ev:
        return runs
    ev = ev.dropna(subset=["tags.train_run_id"]).drop_duplicates("tags.train_run_id")
    cols = [f"metrics.{m}" for m in EVAL_METRICS if f"metrics.{m}" in ev]
    joined = ev.set_index("tags.train_run_id")[cols]
    return runs.join(joined, on="run_id", rsuffix=".eval") if cols else runs


def compare_runs(uri: str, experiment: str, stage: str = "train", limit: int | None = 10
                 ) -> pd.DataFrame:
    """One row per run (newest first): head columns, differing params, key metrics."""
    if stage not in STAGES:
        raise CompareError(f"--stage {stage!r}: choose one of {', '.join(STAGES)}")
    runs = _search(uri, experiment, stage, limit)
    if runs.empty:
        raise CompareError(f"{public_uri(uri)}: experiment audiorecon/{experiment} has no "
                           f"{'' if stage == 'all' else stage + ' '}runs; run "
                           f"`dvc repro {'train' if stage == 'all' else stage.split('-')[0]}"
                           f"@{experiment}`")
    if stage == "train":
        runs = _with_evaluations(uri, experiment, runs)
    keys = (KEY_METRICS[stage] + (EVAL_METRICS if stage == "train" else [])
            if stage != "all" else list(dict.fromkeys(m for v in KEY_METRICS.values() for m in v)))
    metrics = [f"metrics.{m}" for m in keys if f"metrics.{m}" in runs]
    table = pd.DataFrame({
        "run_id": runs["run_id"],
        "run_name": runs.get("tags.mlflow.runName"),
        "stage": runs.get("tags.stage"),
        "started": pd.to_datetime(runs["start_time"]).dt.strftime("%Y-%m-%d %H:%M:%S"),
        "status": runs["status"],
    })
    for c in _differing(runs):
        table[c.removeprefix("params.")] = runs[c]
    for c in metrics:
        table[c.removeprefix("metrics.")] = runs[c].astype(float)
    return table.reset_index(drop=True)


def write_table(table: pd.DataFrame, path: str | os.PathLike[str], kind: str) -> None:
    """CSV or Markdown (GitHub pipe table), written atomically."""
    path = Path(path)
    if kind == "csv":
        text = table.to_csv(index=False)
    else:
        shown = table.astype(object).where(table.notna(), None)
        text = shown.to_markdown(index=False, floatfmt=".4g", missingval="-") + "\n"
    atomic_write_text(path, text)
