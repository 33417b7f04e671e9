"""Tracking URI resolution, the fail-fast backend check and run handles against real MLflow."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from pipeline import tracking
from pipeline.config import TrackingCfg

DEAD = "http://127.0.0.1:9"  # discard port: connection refused at once


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    yield


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A repo folder whose sqlite store is created once (MLflow's migrations take seconds)."""
    root = tmp_path_factory.mktemp("repo")
    tracking.check_backend(f"sqlite:///{root / 'mlflow.db'}", required=True)
    return root


def test_repo_root_maps_dvc_temp_copies_back(tmp_path):
    inner = tmp_path / ".dvc" / "tmp" / "exps" / "tmpab12cd" / "models"
    inner.mkdir(parents=True)
    assert tracking.repo_root(inner) == tmp_path.resolve()
    assert tracking.repo_root(tmp_path) == tmp_path.resolve()


def test_uri_precedence_env_then_params_then_absolute_sqlite(tmp_path, monkeypatch):
    temp_copy = tmp_path / ".dvc" / "tmp" / "exps" / "tmpq"
    temp_copy.mkdir(parents=True)
    default = tracking.resolve_uri(TrackingCfg(), temp_copy)
    assert default == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert default.startswith("sqlite:////")  # absolute path
    assert tracking.resolve_uri(TrackingCfg(uri="http://server:5000"), tmp_path) == (
        "http://server:5000"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert tracking.resolve_uri(TrackingCfg(uri="http://server:5000"), tmp_path) == (
        "http://env:5000"
    )


def test_flatten_params_gives_stable_dotted_names():
    flat = tracking.flatten_params(
        {
            "train": {"learning_rate": 0.001, "spectral": None},
            "model": {"depth": 4},
            "degradation": {"snr_db": [-5.0, 25.0], "kind": "noise"},
        }
    )
    assert flat == {
        "degradation.kind": "noise",
        "degradation.snr_db": "[-5.0, 25.0]",
        "model.depth": "4",
        "train.learning_rate": "0.001",
        "train.spectral": "None",
    }
    assert list(flat) == sorted(flat)


def test_params_hash_ignores_key_order():
    a = tracking.params_hash({"model": {"depth": 4, "filters": 32}, "seed": 1})
    b = tracking.params_hash({"seed": 1, "model": {"filters": 32, "depth": 4}})
    c = tracking.params_hash({"seed": 2, "model": {"filters": 32, "depth": 4}})
    assert a == b != c


def test_dead_backend_required_fails_fast_with_one_message():
    t0 = time.monotonic()
    with pytest.raises(tracking.TrackingError) as err:
        tracking.check_backend(DEAD, required=True)
    assert time.monotonic() - t0 < 20
    msg = str(err.value)
    assert msg.startswith(f"MLflow tracking backend {DEAD} unreachable")
    assert "tracking.required: false" in msg


def test_dead_backend_message_never_shows_the_password():
    with pytest.raises(tracking.TrackingError) as e:
        tracking.check_backend("http://bob:s3cret@127.0.0.1:9", required=True)
    assert "s3cret" not in str(e.value) and "bob:***@127.0.0.1:9" in str(e.value)


def test_dead_backend_optional_warns_and_disables(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="audiorecon.tracking"):
        tracker = tracking.setup(TrackingCfg(uri=DEAD, required=False), tmp_path)
        enabled = tracker.enabled
    assert enabled is False and not tracker.enabled
    assert "unreachable" in caplog.text
    with tracker.start_run("x", "run", {"a": "b"}) as run:
        assert run.run_id is None and not run.active
        run.log_params({"model": {"depth": 1}})  # all no-ops
        run.log_metrics({"loss": 1.0}, step=1)
        run.set_tags({"k": "v"})


def test_run_lands_in_named_experiment_with_local_artifacts(repo):
    tracker = tracking.setup(TrackingCfg(uri=f"sqlite:///{repo / 'mlflow.db'}"), repo)
    assert tracker.enabled
    assert "MLFLOW_TRACKING_URI" not in os.environ  # would outrank params in the next setup
    with tracker.start_run("exp-a", "train/exp-a", {"stage": "train"}) as run:
        run.log_params({"model": {"depth": 3}})
        run.log_metrics({"loss": 2.0}, step=1)
        run.log_metrics({"loss": 1.0}, step=2)
        parent = run.run_id
        with tracker.start_run("exp-a", "trial-0", nested=True, parent_run_id=parent) as child:
            child.log_metrics({"value": 0.5})
    client = MlflowClient()
    exp = client.get_experiment_by_name("audiorecon/exp-a")
    assert exp.artifact_location == (repo.resolve() / "mlartifacts" / "exp-a").as_uri()
    r = client.get_run(parent)
    assert r.data.params == {"model.depth": "3"}
    assert r.data.tags["stage"] == "train"
    assert [m.value for m in client.get_metric_history(parent, "loss")] == [2.0, 1.0]
    c = client.get_run(child.run_id)
    assert c.data.tags["mlflow.parentRunId"] == parent
    # A second setup/start finds the same experiment instead of creating another.
    with tracker.start_run("exp-a", "again"):
        pass
    assert len(client.search_experiments(filter_string="name = 'audiorecon/exp-a'")) == 1


def test_deleted_experiment_is_restored(repo):
    tracker = tracking.setup(TrackingCfg(uri=f"sqlite:///{repo / 'mlflow.db'}"), repo)
    assert tracker.enabled
    exp_id = tracking.get_or_create_experiment("exp-gone")
    MlflowClient().delete_experiment(exp_id)
    with tracker.start_run("exp-gone", "r") as run:
        assert run.run_id
    assert MlflowClient().get_experiment(exp_id).lifecycle_stage == "active"


def test_standard_tags_carry_git_commit_and_dvc_exp(tmp_path, monkeypatch):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "f").write_text("x")
    subprocess.run([*git, "-C", str(tmp_path), "add", "f"], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-qm", "c"], check=True)
    sha = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    monkeypatch.setenv("DVC_EXP_NAME", "quick-fox")
    tags = tracking.standard_tags("train", "seed-noise", "abc", "d1g", cwd=tmp_path)
    assert tags == {
        "stage": "train",
        "experiment": "seed-noise",
        "params_hash": "abc",
        "data_digest": "d1g",
        "git_commit": sha,
        "mlflow.source.git.commit": sha,
        "dvc_exp_name": "quick-fox",
    }


def test_standard_tags_without_git(tmp_path):
    tags = tracking.standard_tags("train", "e", "h", None, cwd=tmp_path)
    assert "git_commit" not in tags and "data_digest" not in tags
    assert mlflow.__version__.startswith("3.")


def _lose_backend_mid_run(monkeypatch) -> None:
    """Point the live client at a port where nothing listens, as if the server had died."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    mlflow.set_tracking_uri(DEAD)


def test_backend_lost_mid_run_optional_warns_once_and_goes_on(repo, monkeypatch, caplog):
    tracker = tracking.setup(TrackingCfg(uri=f"sqlite:///{repo / 'mlflow.db'}", required=False), repo)
    assert tracker.enabled
    with caplog.at_level(logging.WARNING, logger="audiorecon.tracking"):
        with tracker.start_run("exp-lost", "r") as run:
            run.log_metrics({"loss": 1.0}, step=1)
            _lose_backend_mid_run(monkeypatch)
            run.log_metrics({"loss": 0.5}, step=2)  # fails: warns, disables tracking
            run.log_params({"a": 1})  # no-op now, no second warning
            assert not run.active and not tracker.enabled
        with tracker.start_run("exp-lost", "next") as nxt:  # the rest of the stage: no-ops
            assert nxt.run_id is None
    assert caplog.text.count("failed while logging metrics") == 1
    assert "tracking disabled for the rest of this stage" in caplog.text
    os.environ.pop("MLFLOW_TRACKING_URI", None)


def test_backend_lost_mid_run_required_is_one_tracking_error(repo, monkeypatch):
    tracker = tracking.setup(TrackingCfg(uri=f"sqlite:///{repo / 'mlflow.db'}"), repo)
    assert tracker.enabled
    t0 = time.monotonic()
    with pytest.raises(tracking.TrackingError) as err, tracker.start_run("exp-lost", "r") as run:
        _lose_backend_mid_run(monkeypatch)
        run.log_metrics({"loss": 0.5}, step=2)
    assert time.monotonic() - t0 < 30
    msg = str(err.value)
    assert msg.startswith(f"MLflow tracking backend sqlite:///{repo / 'mlflow.db'} failed while "
                          "logging metrics")
    assert "tracking.required: false" in msg
    os.environ.pop("MLFLOW_TRACKING_URI", None)


def test_dataset_logged_by_a_racing_run_first_is_retried(repo, monkeypatch):
    """Two queued experiments logging the same new dataset at once: the server refuses the
    second insert of its key (seen with PostgreSQL); the loser logs it again and succeeds."""
    import numpy as np

    tracker = tracking.setup(TrackingCfg(uri=f"sqlite:///{repo / 'mlflow.db'}"), repo)
    assert tracker.enabled
    real = mlflow.log_input
    calls = []

    def racing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise mlflow.exceptions.MlflowException(
                'BAD_REQUEST: (psycopg2.errors.UniqueViolation) duplicate key value violates '
                'unique constraint "dataset_pk"')
        return real(*args, **kwargs)

    monkeypatch.setattr(mlflow, "log_input", racing)
    x = np.zeros((4, 8), np.float32)
    with tracker.start_run("exp-race", "train/exp-race") as run:
        ds = run.log_dataset(x, x, "ab" * 32, name="exp-race-train", source=repo)
        assert ds is not None and run.active
    assert len(calls) == 2
    [logged] = MlflowClient().get_run(run.run_id).inputs.dataset_inputs
    assert logged.dataset.name == "exp-race-train"
    os.environ.pop("MLFLOW_TRACKING_URI", None)
