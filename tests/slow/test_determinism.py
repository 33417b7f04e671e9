"""Same commit, same machine: the same weights and the same metrics, whatever else runs.

Trains and evaluates two quick experiments twice, the second time beside two busy-looping
processes (so TensorFlow's thread pools are scheduled differently), and compares the saved
weights bit for bit and every number of metrics.json exactly. audio-noise trains with XLA,
seed-noise with TensorFlow's op determinism: both paths are covered.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import quick_params

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
EXPERIMENTS = ["seed-noise", "audio-noise"]
BUSY = "while True: pass"


def _stage(repo: Path, *args: str) -> None:
    res = subprocess.run([sys.executable, "-m", "pipeline.stages", *args], cwd=repo,
                         capture_output=True, text=True, timeout=900, env=_env())
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]


def _env() -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return {**env, "CI": "true", "TF_CPP_MIN_LOG_LEVEL": "2"}


def _weights(path: Path) -> list[np.ndarray]:
    import keras

    import pipeline.nn.layers  # noqa: F401  (custom layers)

    return keras.models.load_model(path, safe_mode=True, compile=False).get_weights()


def _numbers(path: Path) -> dict:
    m = json.loads(path.read_text())
    return {k: v for k, v in m.items() if k not in ("mlflow_run_id", "train_run_id")}


def test_training_and_evaluation_are_bit_identical_under_load(tmp_path):
    quiet = tmp_path / "quiet"
    quiet.mkdir()
    raw = quick_params(quiet, EXPERIMENTS, **{"tune.experiments": [], "tracking.required": False})
    (quiet / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    for name in EXPERIMENTS:
        _stage(quiet, "generate", "-e", name)
    loaded = tmp_path / "loaded"
    shutil.copytree(quiet, loaded)
    raw["tracking"]["uri"] = f"sqlite:///{loaded / 'mlflow.db'}"
    (loaded / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))

    for name in EXPERIMENTS:
        _stage(quiet, "train", "-e", name)
        _stage(quiet, "evaluate", "-e", name)
    hogs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(2)]
    try:
        for name in EXPERIMENTS:
            _stage(loaded, "train", "-e", name)
            _stage(loaded, "evaluate", "-e", name)
    finally:
        for h in hogs:
            h.kill()
            h.wait()

    for name in EXPERIMENTS:
        a = _weights(quiet / "models" / name / "model.keras")
        b = _weights(loaded / "models" / name / "model.keras")
        assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True)), name
        ma = json.loads((quiet / "models" / name / "meta.json").read_text())
        mb = json.loads((loaded / "models" / name / "meta.json").read_text())
        assert ma["best_val_loss"] == mb["best_val_loss"] and ma["epochs_run"] == mb["epochs_run"]
        assert _numbers(quiet / "reports" / name / "metrics.json") == _numbers(
            loaded / "reports" / name / "metrics.json"), name
        assert (quiet / "models" / name / "history.csv").read_text().splitlines()[0] == (
            loaded / "models" / name / "history.csv").read_text().splitlines()[0]
