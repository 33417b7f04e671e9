"""The tune stage as separate processes: a SIGKILLed run resumes cleanly, and two workers
share one journal study without losing or duplicating trials.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
import pytest
import sqlalchemy.exc
import yaml
from helpers import quick_params
from optuna.trial import TrialState

from pipeline.config import load_params, resolve
from pipeline.layout import read_digest
from pipeline.stages.generate import generate_experiment
from pipeline.tuning import open_storage, study_name

EXP = "seed-noise"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _repo(folder: Path, **overrides) -> Path:
    folder.mkdir(parents=True)
    settings = {"tune.epochs": 2, "quick.tune_epochs": 2, "quick.n_trials": 10,
                "tune.pruner": "none", **overrides}
    raw = quick_params(folder, [EXP], **settings)
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    generate_experiment(resolve(load_params(folder / "params.yaml"), EXP, folder))
    return folder


def _tune(repo: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", "tune", "-e", EXP, *args]


def _name(repo: Path) -> str:
    r = resolve(load_params(repo / "params.yaml"), EXP, repo, tuning=True)
    return study_name(r, read_digest(repo / "data" / EXP))


def _env() -> dict[str, str]:
    """This environment minus MLFLOW_TRACKING_URI (mlflow.set_tracking_uri exports it)."""
    return {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}


def _trial_runs(repo: Path):
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    try:
        runs = mlflow.search_runs(experiment_names=[f"audiorecon/{EXP}"])
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    return runs[runs["tags.stage"] == "tune-trial"], runs[runs["tags.stage"] == "tune"]


def test_resume_after_sigkill_fails_only_the_killed_trial(tmp_path):
    repo = _repo(tmp_path / "repo")
    url = f"sqlite:///{repo / 'optuna' / f'{EXP}.db'}"
    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen(_tune(repo, "--n-trials", "3"), cwd=repo, env=_env(), stdout=log,
                            stderr=subprocess.STDOUT)
    name, killed, deadline = _name(repo), None, time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline and killed is None:
        time.sleep(0.3)
        if not (repo / "optuna" / f"{EXP}.db").exists():
            continue
        try:
            trials = optuna.load_study(study_name=name, storage=url).trials
        except (KeyError, sqlalchemy.exc.SQLAlchemyError):
            # Not created yet, or the worker is creating the SQLite schema right now (both
            # sides would run CREATE TABLE): poll again.
            continue
        # Its MLflow run id is set just before training starts: kill mid-training.
        running = [t for t in trials
                   if t.state == TrialState.RUNNING and "mlflow_run_id" in t.user_attrs]
        if running and running[0].number == 1 and trials[0].state == TrialState.COMPLETE:
            os.kill(proc.pid, signal.SIGKILL)
            killed = running[0].number
    proc.wait()
    assert killed == 1, (tmp_path / "first.log").read_text()[-3000:]
    before = optuna.load_study(study_name=name, storage=url).trials
    assert [t.state for t in before] == [TrialState.COMPLETE, TrialState.RUNNING]

    res = subprocess.run(_tune(repo, "--n-trials", "2"), cwd=repo, env=_env(), capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    study = optuna.load_study(study_name=name, storage=url)
    assert [t.state for t in study.trials] == [
        TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE
    ]
    assert study.trials[0].value == before[0].value  # the finished trial is untouched
    best = yaml.safe_load((repo / "reports" / EXP / "best_params.yaml").read_text())
    # n_trials counts finished trials: the killed worker's FAIL is not one of them
    assert best["n_trials"] == 3 and best["best_value"] == pytest.approx(study.best_value)
    trials, _ = _trial_runs(repo)
    killed_run = trials[trials["tags.trial_number"] == "1"].iloc[0]
    assert killed_run["status"] == "KILLED"


def test_two_workers_share_one_journal_study_exactly(tmp_path):
    repo = _repo(tmp_path / "repo")
    t0 = time.monotonic()
    res = subprocess.run(_tune(repo, "--workers", "2", "--n-trials", "4"), cwd=repo, env=_env(),
                         capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - t0
    assert res.returncode == 0, res.stderr[-3000:]
    journal = repo / "optuna" / f"{EXP}.journal"
    assert journal.is_file() and not (repo / "optuna" / f"{EXP}.db").exists()
    study = optuna.load_study(study_name=_name(repo), storage=open_storage(f"journal:{journal}"))
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    pids = {t.user_attrs["pid"] for t in study.trials}
    assert len(pids) == 2, pids  # both workers ran trials, neither of them the parent
    best = yaml.safe_load((repo / "reports" / EXP / "best_params.yaml").read_text())
    # repo-relative: no machine path in a committed file
    assert best["storage"] == f"journal:optuna/{EXP}.journal" and best["n_trials"] == 4
    trials, parents = _trial_runs(repo)
    assert len(parents) == 1 and len(trials) == 4
    assert set(trials["tags.mlflow.parentRunId"]) == set(parents["run_id"])

    # An odd budget splits 2 + 1 and a later single-worker run continues the journal study.
    res = subprocess.run(_tune(repo, "--workers", "2", "--n-trials", "3"), cwd=repo, env=_env(),
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    res = subprocess.run(_tune(repo, "--n-trials", "1"), cwd=repo, env=_env(), capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    study = optuna.load_study(study_name=_name(repo), storage=open_storage(f"journal:{journal}"))
    assert [t.number for t in study.trials] == list(range(8))
    print(f"2 workers, 4 trials: {wall:.1f} s wall")
