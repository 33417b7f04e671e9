"""Optuna on a real PostgreSQL: workers share one study exactly, and a SIGKILLed worker's trial
ends FAIL (pid check on its host, heartbeat from any other) while the others finish the budget.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy.exc
import yaml
from helpers import quick_params
from optuna.trial import TrialState

from pipeline import tuning as tune
from pipeline.config import load_params, resolve
from pipeline.layout import read_digest
from pipeline.stages.generate import generate_experiment

EXP = "seed-noise"
N = 6
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
FINISHED = {TrialState.COMPLETE, TrialState.PRUNED}


def _repo(folder: Path, seed: int, uri: str, epochs: int = 2) -> Path:
    """Tiny trials (2 epochs on 256 frames); its own seed, hence its own data and study."""
    folder.mkdir(parents=True)
    raw = quick_params(folder, [EXP], **{
        "base.seed": seed, "tune.epochs": epochs, "quick.tune_epochs": epochs, "quick.n_trials": N,
        "tune.max_train_frames": 256, "tune.max_val_frames": 64, "tracking.uri": uri,
    })
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    generate_experiment(resolve(load_params(folder / "params.yaml"), EXP, folder))
    return folder


def _study(repo: Path, storage: str) -> optuna.Study:
    r = resolve(load_params(repo / "params.yaml"), EXP, repo, tuning=True)
    name = tune.study_name(r, read_digest(repo / "data" / EXP))
    return optuna.load_study(study_name=name, storage=storage)


def _tune(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", "tune", "-e", EXP, *args]


def test_three_workers_one_killed_study_still_completes(services, tmp_path):
    repo = _repo(tmp_path / "repo", 101, services.tracking_uri)
    env = services.env(AUDIORECON_TUNE_HEARTBEAT_S="1", AUDIORECON_TUNE_GRACE_S="3")
    log = tmp_path / "tune.log"
    t0 = time.monotonic()
    with log.open("w") as fh:
        proc = subprocess.Popen(_tune("--workers", "3", "--n-trials", str(N)), cwd=repo, env=env,
                                stdout=fh, stderr=subprocess.STDOUT)
    killed_pid = killed_trial = None
    deadline = time.monotonic() + 400
    try:
        while proc.poll() is None and killed_pid is None and time.monotonic() < deadline:
            time.sleep(0.3)
            try:
                trials = _study(repo, services.storage).trials
            except (KeyError, sqlalchemy.exc.SQLAlchemyError):  # not created, or mid-creation
                continue
            # mlflow_run_id is set just before training starts: this worker is mid-trial.
            running = [t for t in trials if t.state == TrialState.RUNNING
                       and "mlflow_run_id" in t.user_attrs and t.user_attrs["pid"] != proc.pid]
            if running:
                killed_pid, killed_trial = running[0].user_attrs["pid"], running[0].number
                os.kill(killed_pid, signal.SIGKILL)
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
    wall = time.monotonic() - t0
    out = log.read_text()
    assert killed_pid is not None, out[-3000:]
    assert proc.returncode == 0, out[-3000:]
    assert "died" in out and services.password not in out

    study = _study(repo, services.storage)
    trials = study.trials
    assert [t.number for t in trials] == list(range(N)), [(t.number, t.state) for t in trials]
    assert len({t.user_attrs["invocation"] for t in trials}) == 1
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert [t.number for t in failed] == [killed_trial]
    assert failed[0].user_attrs["pid"] == killed_pid
    assert all(t.state in FINISHED for t in trials if t.number != killed_trial)
    assert len({t.user_attrs["pid"] for t in trials}) >= 2  # the survivors took over its share

    best = yaml.safe_load((repo / "reports" / EXP / "best_params.yaml").read_text())
    # finished trials only: the SIGKILLed worker's FAIL is not one of them
    assert best["n_trials"] == N - 1 and best["storage"] == tune.mask_url(services.storage)
    assert services.password not in (repo / "reports" / EXP / "best_params.yaml").read_text()
    print(f"3 workers, {N} trials, one SIGKILLed (trial {killed_trial}): {wall:.1f} s wall")


def test_three_hosts_add_their_own_budgets_exactly(services, tmp_path):
    """Three independent invocations (as on three hosts) of 2 trials each: 6 trials, no more."""
    repo = _repo(tmp_path / "repo", 202, services.tracking_uri, epochs=1)
    env = services.env()
    logs = [tmp_path / f"host{i}.log" for i in range(3)]
    procs = []
    try:
        for path in logs:
            with path.open("w") as fh:
                procs.append(subprocess.Popen(_tune("--n-trials", "2"), cwd=repo, env=env,
                                              stdout=fh, stderr=subprocess.STDOUT))
        for p in procs:
            p.wait(timeout=400)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, path in zip(procs, logs, strict=True):
        assert p.returncode == 0, path.read_text()[-3000:]
    trials = _study(repo, services.storage).trials
    assert sorted(t.number for t in trials) == list(range(6))
    assert all(t.state in FINISHED for t in trials), [t.state for t in trials]
    per_invocation: dict[str, int] = {}
    for t in trials:
        per_invocation[t.user_attrs["invocation"]] = per_invocation.get(t.user_attrs["invocation"], 0) + 1
    assert sorted(per_invocation.values()) == [2, 2, 2]
    # Each invocation samples with its own streams: no two trials share a configuration.
    configs = [tuple(sorted(t.params.items())) for t in trials if t.user_attrs.get("origin") is None]
    assert len(set(configs)) == len(configs)


def test_heartbeat_fails_a_silent_trial_of_another_host(services, monkeypatch):
    """A worker on another host cannot be checked by pid: its missing heartbeat fails it."""
    monkeypatch.setenv("AUDIORECON_TUNE_HEARTBEAT_S", "1")
    monkeypatch.setenv("AUDIORECON_TUNE_GRACE_S", "2")
    storage = tune.open_storage(services.storage)
    name = f"heartbeat-{socket.gethostname()}-{os.getpid()}-{time.time_ns()}"
    study = optuna.create_study(study_name=name, storage=storage)
    with pytest.warns(UserWarning, match="Heartbeat"):  # ask() outside optimize(): no beats
        trial = study.ask()
    trial.set_user_attr("host", "another-host")
    trial.set_user_attr("pid", 1)
    trial_id = storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name(name), trial.number)
    storage.record_heartbeat(trial_id)  # one beat, as optimize's thread records, then silence
    tune.fail_stale(study)
    assert study.trials[0].state == TrialState.RUNNING  # within its grace period
    time.sleep(3)
    tune.fail_stale(study)
    assert study.trials[0].state == TrialState.FAIL
    # and the next optimize() on the study sweeps such trials itself before it asks
    with pytest.warns(UserWarning, match="Heartbeat"):
        silent = study.ask()
    storage.record_heartbeat(storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name(name), silent.number))
    time.sleep(3)
    study.optimize(lambda t: 0.0, n_trials=1)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.FAIL,
                                               TrialState.COMPLETE]


def test_unreachable_storage_is_one_message_without_password(services, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    url = services.storage.replace(f":{services.pg_port}/", f":{dead_port}/")
    t0 = time.monotonic()
    with pytest.raises(tune.TuneError) as err:
        tune.open_storage(url)
    assert time.monotonic() - t0 < 30
    assert "cannot open Optuna storage" in str(err.value)
    assert services.password not in str(err.value)
