"""The tune stage for real: Optuna studies on SQLite/journal files, Keras trials, MLflow runs.

One tuned repository (two invocations of two trials) is shared by the module; tests that add
trials work on a copy of it, so no test depends on another's order.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import mlflow
import optuna
import pandas as pd
import psutil
import pytest
import yaml
from helpers import quick_params, real_params
from optuna.trial import TrialState

from pipeline import tracking
from pipeline.config import load_params, resolve
from pipeline.layout import read_digest
from pipeline.stages.generate import generate_experiment
from pipeline.tuning import (
    TuneError,
    fail_orphaned_trials,
    mask_url,
    open_storage,
    study_name,
    tune_experiment,
    untuned_values,
)

EXP = "seed-noise"
KEYS = ["params", "source", "study", "storage", "best_value", "untuned_value", "n_trials"]
pytestmark = pytest.mark.timeout(300)


def _repo(folder: Path, data_from: Path | None = None, **overrides) -> Path:
    """A one-experiment quick repo with 2-epoch trials; data generated or copied."""
    folder.mkdir(parents=True, exist_ok=True)
    # min_trials 0: train applies even these few trials' best values (what is tested here).
    settings = {"tune.epochs": 2, "quick.tune_epochs": 2, "quick.n_trials": 10,
                "tune.min_trials": 0, **overrides}
    raw = quick_params(folder, [EXP], **settings)
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    if data_from is not None:
        shutil.copytree(data_from / "data", folder / "data")
    else:
        generate_experiment(resolve(load_params(folder / "params.yaml"), EXP, folder))
    return folder


def _resolved(repo: Path, params=None):
    """What the tune command hands the stage: the experiment resolved once, tune settings on."""
    return resolve(params or load_params(repo / "params.yaml"), EXP, repo, tuning=True)


def effective_config(params, name, root):
    """(model, train, where-from) as the train stage resolves them."""
    r = resolve(params, name, root, tuned=True)
    return r.model, r.train, {"tuned": r.tuning.tuned, **r.tuning.record.dump()}


def _study(repo: Path) -> optuna.Study:
    name = study_name(_resolved(repo), read_digest(repo / "data" / EXP))
    return optuna.load_study(study_name=name, storage=f"sqlite:///{repo / 'optuna' / f'{EXP}.db'}")


def _forget_tracking_uri() -> None:
    """mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI, which then overrides the next
    temp repo's params.yaml in this process: drop it between stage calls."""
    os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.fixture(autouse=True)
def _fresh_tracking_uri():
    _forget_tracking_uri()
    yield
    _forget_tracking_uri()


def _runs(repo: Path) -> pd.DataFrame:
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    try:
        return mlflow.search_runs(experiment_names=[f"audiorecon/{EXP}"])
    finally:
        _forget_tracking_uri()


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """Two invocations of two trials each on the default SQLite storage."""
    repo = _repo(tmp_path_factory.mktemp("tuned") / "repo")
    _forget_tracking_uri()
    first = tune_experiment(_resolved(repo), n_trials=2)
    second = tune_experiment(_resolved(repo), n_trials=2)
    _forget_tracking_uri()
    return repo, first, second


def test_second_invocation_continues_the_study(tuned):
    repo, first, second = tuned
    study = _study(repo)
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    assert first["n_trials"] == 2 and second["n_trials"] == 4
    # params.yaml's own values are trial 0, so tuning can only match or beat them.
    p = load_params(repo / "params.yaml")
    assert study.trials[0].params == untuned_values(_resolved(repo))
    assert study.trials[0].user_attrs["origin"] == "params.yaml"
    assert study.trials[0].state == TrialState.COMPLETE
    for t in study.trials:
        assert t.user_attrs["host"] == socket.gethostname() and t.user_attrs["pid"] > 0

    saved = yaml.safe_load((repo / "reports" / EXP / "best_params.yaml").read_text())
    assert list(saved) == KEYS and saved == second
    assert saved["source"] == "optuna" and saved["study"] == study.study_name
    assert saved["study"].startswith(f"audiorecon-{EXP}-")
    assert saved["storage"] == f"sqlite:///optuna/{EXP}.db"  # no machine path in a committed file
    assert saved["untuned_value"] == pytest.approx(study.trials[0].value)
    assert saved["best_value"] <= saved["untuned_value"]
    assert saved["best_value"] == pytest.approx(study.best_value)
    assert saved["params"] == study.best_params and set(saved["params"]) == set(p.tune.space)

    tune_dir = repo / "reports" / EXP / "tune"
    trials = pd.read_csv(tune_dir / "trials.csv")
    assert len(trials) == 4
    # Only what a re-run reproduces: no times, pids, hosts or invocation ids.
    assert not [c for c in trials.columns if "datetime" in c or "duration" in c
                or c in ("user_attrs_pid", "user_attrs_host", "user_attrs_invocation")]
    assert (tune_dir / "optimization_history.png").stat().st_size > 1000
    assert not [f for f in tune_dir.parent.iterdir() if f.name.startswith(".")]


def test_mlflow_parent_and_nested_trial_runs(tuned):
    repo, _, second = tuned
    runs = _runs(repo)
    parents = runs[runs["tags.stage"] == "tune"]
    trials = runs[runs["tags.stage"] == "tune-trial"]
    assert len(parents) == 2 and len(trials) == 4
    assert (parents["tags.study"] == second["study"]).all()
    assert parents["tags.mlflow.runName"].str.startswith(f"tune-{EXP}-").all()
    assert set(trials["tags.mlflow.parentRunId"]) == set(parents["run_id"])
    assert sorted(trials["tags.trial_number"].astype(int)) == [0, 1, 2, 3]
    assert (trials["tags.study"] == second["study"]).all()
    assert set(trials["tags.state"]) <= {"COMPLETE", "PRUNED"}
    assert trials["params.learning_rate"].notna().all()
    assert (trials["metrics.duration_s"] > 0).all()

    client = mlflow.MlflowClient()
    latest = parents.sort_values("start_time").iloc[-1]
    assert latest["metrics.best_value"] == pytest.approx(second["best_value"])
    assert latest["metrics.n_trials"] == 4
    artifacts = {a.path for a in client.list_artifacts(latest["run_id"], "tune")}
    assert {"tune/trials.csv", "tune/optimization_history.png"} <= artifacts
    done = trials[trials["tags.state"] == "COMPLETE"].iloc[0]
    curve = client.get_metric_history(done["run_id"], "val_loss")
    assert [m.step for m in curve] == [1, 2]


def test_best_params_feed_train(tuned):
    repo, _, second = tuned
    p = load_params(repo / "params.yaml")
    model_cfg, train_cfg, source = effective_config(p, EXP, repo)
    for key, value in second["params"].items():
        cfg = model_cfg if hasattr(model_cfg, key) else train_cfg
        assert getattr(cfg, key) == pytest.approx(value), key
    assert source["study"] == second["study"]


def test_bad_trial_is_pruned(tuned, tmp_path):
    """A learning rate of 1e-9 barely moves from the initial weights: the median prunes it."""
    src = tuned[0]
    repo = tmp_path / "repo"
    shutil.copytree(src, repo)
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    raw["tracking"]["uri"] = f"sqlite:///{repo / 'mlflow.db'}"
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.warns(UserWarning, match="out of range"):
        tune_experiment(_resolved(repo), n_trials=1, enqueue=[{"learning_rate": 1e-9}])
    last = _study(repo).trials[-1]
    assert last.number == 4 and last.params["learning_rate"] == 1e-9
    assert last.state == TrialState.PRUNED
    assert list(last.intermediate_values) == [0, 1]
    assert len(_runs(repo).query("`tags.stage` == 'tune'")) == 3  # 2 copied + this one


def test_diverging_trial_fails_and_the_study_goes_on(tuned, tmp_path):
    # Plain MSE at learning rate 1.0 and batch 32 overflows to NaN within the first epoch.
    # (On the U-Net: params.yaml's MLP for this experiment survives that learning rate.)
    unet = {"arch": "unet", "depth": 4, "filters": 16, "kernel_size": 9, "dropout": 0.0,
            "batch_norm": False, "residual": True, "normalize": True}
    space = {k: v for k, v in real_params()["tune"]["space"].items() if k != "filters"}
    overrides = {f"experiments.{EXP}.train.loss": "mse", "tune.pruner": "none",
                 f"experiments.{EXP}.model": unet, "tune.space": space}
    repo = _repo(tmp_path / "repo", data_from=tuned[0], **overrides)
    with pytest.warns(UserWarning, match="out of range"):
        record = tune_experiment(_resolved(repo), n_trials=3, enqueue=[
            {"learning_rate": 1.0, "batch_size": 32, "dropout": 0.0}])
    states = [t.state for t in _study(repo).trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    # n_trials counts finished trials (COMPLETE, PRUNED): the FAIL one is not among them
    assert record["n_trials"] == 2 and record["params"]["learning_rate"] != 1.0
    runs = _runs(repo)
    failed = runs[runs["tags.state"] == "FAIL"]
    assert len(failed) == 1 and failed.iloc[0]["status"] == "FAILED"
    assert len(runs[runs["tags.stage"] == "tune"]) == 1  # logged to this repo's own store


def test_disabled_writes_untuned_values_without_a_study(tmp_path, tuned):
    repo = _repo(tmp_path / "repo", data_from=tuned[0], **{"tune.enabled": False})
    p = load_params(repo / "params.yaml")
    record = tune_experiment(_resolved(repo, p))
    saved = yaml.safe_load((repo / "reports" / EXP / "best_params.yaml").read_text())
    assert saved == record and list(saved) == KEYS
    assert saved["source"] == "untuned" and saved["params"] == untuned_values(_resolved(repo, p))
    assert saved["study"] is None and saved["best_value"] is None and saved["n_trials"] == 0
    assert not (repo / "optuna").exists() and not (repo / "mlflow.db").exists()
    assert (repo / "reports" / EXP / "tune" / "trials.csv").is_file()
    model_cfg, train_cfg, _ = effective_config(p, EXP, repo)
    assert train_cfg.learning_rate == p.experiment(EXP).train.learning_rate


def test_zero_trials_and_no_study_is_untuned(tmp_path, tuned):
    repo = _repo(tmp_path / "repo", data_from=tuned[0])
    record = tune_experiment(_resolved(repo), n_trials=0)
    assert record["source"] == "untuned"
    assert not (repo / "mlflow.db").exists()


def test_the_stage_tops_the_study_up_to_n_trials_and_reruns_are_identical(tmp_path, tuned):
    """Without --n-trials the stage brings the study to tune.n_trials finished trials; a second
    call runs none, and a fresh repo with the same data proposes the very same trials."""
    runs = []
    for name in ("a", "b"):
        repo = _repo(tmp_path / name, data_from=tuned[0], **{"quick.n_trials": 3, "tune.n_trials": 3})
        first = tune_experiment(_resolved(repo))
        again = tune_experiment(_resolved(repo))
        assert first == again and first["n_trials"] == 3 and len(_study(repo).trials) == 3
        runs.append([(t.params, t.value, t.state) for t in _study(repo).trials])
        assert (repo / "reports" / EXP / "tune" / "trials.csv").read_bytes() == (
            (tmp_path / "a" / "reports" / EXP / "tune" / "trials.csv").read_bytes())
    assert runs[0] == runs[1]


def test_study_name_tracks_the_objective(tuned):
    repo = tuned[0]
    r = _resolved(repo)
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    base = study_name(r, "digest-a")
    assert study_name(r, "digest-a") == base
    assert study_name(r, "digest-b") != base
    raw["tune"]["space"]["dropout"]["high"] = 0.5
    assert study_name(_resolved(repo, load_params_from(raw, repo)), "digest-a") != base
    raw["tune"]["n_trials"] = 99  # the budget is not part of the objective
    raw["tune"]["space"]["dropout"]["high"] = 0.2
    assert study_name(_resolved(repo, load_params_from(raw, repo)), "digest-a") == base


def load_params_from(raw: dict, folder: Path):
    path = folder / "other-params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_params(path)


def test_bad_storage_is_one_clear_error_without_the_password(tuned):
    with pytest.raises(TuneError, match=r"cannot open Optuna storage postgresql://bob:\*\*\*@"):
        tune_experiment(_resolved(tuned[0]), storage="postgresql://bob:s3cret@127.0.0.1:1/db")
    with pytest.raises(TuneError) as info:
        open_storage("nosuchdb://bob:s3cret@host/x")
    assert "s3cret" not in str(info.value)
    assert mask_url("postgresql://bob:s3cret@h:5432/db") == "postgresql://bob:***@h:5432/db"
    # The same through the CLI (exit 2, one line, nothing written): tests/integration/test_faults.py


def test_trials_of_dead_local_workers_are_failed(tmp_path):
    storage = open_storage(f"journal:{tmp_path / 'x.journal'}")
    study = optuna.create_study(study_name="s", storage=storage)
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan, alive, remote, reused = study.ask(), study.ask(), study.ask(), study.ask()
    for trial, pid, host in [(orphan, dead.pid, socket.gethostname()),
                             (alive, 1, socket.gethostname()),
                             (remote, dead.pid, "another-host"),
                             (reused, os.getpid(), socket.gethostname())]:
        trial.set_user_attr("pid", pid)
        trial.set_user_attr("host", host)
    # a live process under the recorded pid, started after the trial's worker: a reused pid
    reused.set_user_attr("pid_created", psutil.Process().create_time() - 60)
    assert fail_orphaned_trials(study, tracking.OFF) == [orphan.number, reused.number]
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAIL, TrialState.RUNNING, TrialState.RUNNING, TrialState.FAIL]
