"""`mlflow server` on PostgreSQL: parallel training runs all arrive; a stopped server fails a
stage fast (tracking.required) or only warns (not required), and no output is half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import quick_params
from mlflow import MlflowClient

from pipeline.config import load_params, resolve
from pipeline.stages.generate import generate_experiment

EXP = "seed-noise"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _repo(folder: Path, seed: int, **overrides) -> Path:
    folder.mkdir(parents=True)
    raw = quick_params(folder, [EXP], **{"base.seed": seed, "tune.enabled": False,
                                         "quick.epochs": 2, **overrides})
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    generate_experiment(resolve(load_params(folder / "params.yaml"), EXP, folder))
    return folder


def _train(repo: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipeline", "train", "-e", EXP], cwd=repo,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime of every file below `root`: equal snapshots mean nothing was touched."""
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def trained(services_session, tmp_path_factory):
    """Two training processes in parallel, both logging to the server."""
    services_session.ensure_up()
    base = tmp_path_factory.mktemp("parallel")
    repos = [_repo(base / f"repo{i}", 300 + i) for i in range(2)]
    t0 = time.monotonic()
    procs = [_train(r, services_session.env()) for r in repos]
    outs = []
    try:
        outs = [p.communicate(timeout=500)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out[-3000:]
    print(f"2 parallel training processes: {time.monotonic() - t0:.1f} s wall")
    return repos, outs


def test_parallel_training_runs_all_arrive(trained, services):
    repos, outs = trained
    client = MlflowClient(tracking_uri=services.tracking_uri)
    run_ids = []
    for repo in repos:
        meta = json.loads((repo / "models" / EXP / "meta.json").read_text())
        run = client.get_run(meta["mlflow_run_id"])
        run_ids.append(run.info.run_id)
        assert run.info.status == "FINISHED"
        assert run.data.metrics["best_val_loss"] == pytest.approx(meta["best_val_loss"])
        assert run.data.params["base.seed"] == str(load_params(repo / "params.yaml").base.seed)
        history = client.get_metric_history(run.info.run_id, "val_loss")
        assert [m.step for m in history] == list(range(1, meta["epochs_run"] + 1))
        assert "history.csv" in {a.path for a in client.list_artifacts(run.info.run_id)}
        models = client.search_logged_models(
            experiment_ids=[run.info.experiment_id],
            filter_string=f"source_run_id = '{run.info.run_id}'",
        )
        assert len(models) == 1, models
        files = {a.path for a in client.list_logged_model_artifacts(models[0].model_id)}
        assert "MLmodel" in files, files
    assert len(set(run_ids)) == 2
    # One experiment, created once although both processes raced to create it.
    assert len(client.search_experiments(filter_string=f"name = 'audiorecon/{EXP}'")) == 1
    # The server stores artifacts under its own root, proxied over HTTP.
    assert any((services.folder / "mlartifacts").rglob("history.csv"))
    assert all(services.password not in out for out in outs)


def _set(repo: Path, **values) -> None:
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    for dotted, value in values.items():
        node = raw
        *head, last = dotted.split(".")
        for k in head:
            node = node[k]
        node[last] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def _running_train_run(client: MlflowClient, repo: Path):
    digest = json.loads((repo / "data" / EXP / "digest.json").read_text())["digest"]
    exp = client.get_experiment_by_name(f"audiorecon/{EXP}")
    runs = client.search_runs(
        [exp.experiment_id],
        f"tags.stage = 'train' AND tags.data_digest = '{digest}' AND attributes.status = 'RUNNING'",
    )
    return runs[0] if runs else None


def test_server_killed_mid_training(trained, services):
    """SIGKILL the server while both repos train: the required stage stops with one message and
    its old outputs intact; the optional one warns, finishes and writes its outputs."""
    required, optional = trained[0]
    long = {"quick.epochs": 60, f"experiments.{EXP}.train.patience": 60}
    saved = {r: (r / "params.yaml").read_text() for r in (required, optional)}
    _set(required, **long)
    _set(optional, **long, **{"tracking.required": False})
    before = snapshot(required)
    old_meta = json.loads((optional / "models" / EXP / "meta.json").read_text())
    client = MlflowClient(tracking_uri=services.tracking_uri)
    procs = [_train(r, services.env()) for r in (required, optional)]
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # until both runs have logged an epoch
            runs = [_running_train_run(client, r) for r in (required, optional)]
            if all(r is not None and "val_loss" in r.data.metrics for r in runs):
                break
            assert all(p.poll() is None for p in procs), [p.communicate()[0][-2000:] for p in procs]
            time.sleep(0.5)
        else:
            raise AssertionError("the training runs never logged an epoch")
        os.killpg(int((services.folder / "mlflow.pid").read_text()), signal.SIGKILL)
        outs = [p.communicate(timeout=400)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for r, text in saved.items():
            (r / "params.yaml").write_text(text)
    assert procs[0].returncode == 2, outs[0][-3000:]
    errors = [line for line in outs[0].splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "failed while" in errors[0] and "Traceback" not in outs[0]
    after = snapshot(required)
    assert after.pop("params.yaml") and before.pop("params.yaml")  # edited by this test
    assert after == before  # data, model, meta, history: untouched
    assert procs[1].returncode == 0, outs[1][-3000:]
    assert "failed while" in outs[1] and "tracking disabled" in outs[1]
    meta = json.loads((optional / "models" / EXP / "meta.json").read_text())
    assert meta["epochs_run"] > old_meta["epochs_run"]  # the new, longer training was written
    assert sorted(p.name for p in (optional / "models" / EXP).iterdir()) == [
        "history.csv", "meta.json", "model.keras"]


def test_stopped_server_fails_a_required_stage_fast(trained, services_session):
    repo = trained[0][0]
    before = snapshot(repo)
    env = services_session.env()
    assert services_session.run("down", timeout=120).returncode == 0
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "pipeline", "train", "-e", EXP], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=300)
    took = time.monotonic() - t0
    assert res.returncode == 2, res.stdout + res.stderr
    msg = res.stderr
    assert f"MLflow tracking backend {services_session.tracking_uri} unreachable" in msg
    assert "tracking.required: false" in msg and "Traceback" not in msg
    assert took < 60, f"{took:.1f} s"
    assert snapshot(repo) == before  # no output touched, no stray file


def test_stopped_server_optional_warns_and_keeps_outputs(trained, services_session):
    repo = trained[0][1]
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    raw["tracking"]["required"] = False
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    assert services_session.run("down", timeout=120).returncode == 0  # idempotent
    res = subprocess.run([sys.executable, "-m", "pipeline", "train", "-e", EXP], cwd=repo,
                         env=services_session.env(), capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "unreachable" in res.stdout + res.stderr
    meta = json.loads((repo / "models" / EXP / "meta.json").read_text())
    assert meta["mlflow_run_id"] is None and meta["epochs_run"] == 2  # this run's outputs
    assert sorted(p.name for p in (repo / "models" / EXP).iterdir()) == [
        "history.csv", "meta.json", "model.keras"]
    assert not [p for p in (repo / "models").iterdir() if p.name.startswith(".")]
