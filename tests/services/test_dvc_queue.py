"""Queued DVC experiments run two at a time and log to the shared MLflow server."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import yaml
from mlflow import MlflowClient

EXP = "seed-noise"
RATES = {"lr-small": 5e-4, "lr-large": 2e-3}
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _dvc(repo, env, *args, timeout=120) -> str:
    res = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"dvc {' '.join(args)}:\n{res.stdout}\n{res.stderr}"
    return res.stdout


def test_queue_two_at_a_time_logs_to_the_server(make_repo, services):
    repo = make_repo(experiments=[EXP], with_dvc=True)
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    raw["tune"]["enabled"] = False  # keep it to generate + train
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    env = services.env()
    subprocess.run(["git", "commit", "-qam", "no tuning"], cwd=repo, check=True)
    for name, rate in RATES.items():
        _dvc(repo, env, "exp", "run", "--queue", f"train@{EXP}", "-n", name,
             "-S", f"experiments.{EXP}.train.learning_rate={rate}")
    t0 = time.monotonic()
    try:
        _dvc(repo, env, "queue", "start", "-j", "2")
        deadline = time.monotonic() + 700
        while time.monotonic() < deadline:
            status = _dvc(repo, env, "queue", "status")
            if not any(w in status for w in ("Queued", "Running")):
                break
            time.sleep(5)
        else:
            raise AssertionError(f"queue not done:\n{status}")
    finally:
        subprocess.run([sys.executable, "-m", "dvc", "queue", "stop", "--kill"], cwd=repo, env=env,
                       capture_output=True, timeout=120, check=False)
    assert status.count("Success") == 2, status
    print(f"2 queued experiments with -j 2: {time.monotonic() - t0:.0f} s")

    client = MlflowClient(tracking_uri=services.tracking_uri)
    exp = client.get_experiment_by_name(f"audiorecon/{EXP}")
    runs = client.search_runs([exp.experiment_id], "tags.stage = 'train'")
    mine = {r.data.tags.get("dvc_exp_name"): r for r in runs
            if r.data.tags.get("dvc_exp_name") in RATES}
    assert set(mine) == set(RATES), [r.data.tags.get("dvc_exp_name") for r in runs]
    for name, run in mine.items():
        assert run.info.status == "FINISHED"
        assert float(run.data.params["train.learning_rate"]) == pytest.approx(RATES[name])
        assert "best_val_loss" in run.data.metrics
