"""The whole DVC pipeline on quick params: every stage for real, then a no-op second repro.

The report it ends with is opened in headless Chromium (images, audio, console), and
`audiorecon compare` reads the runs it logged.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from browser import check_page

# Several minutes on 2 cores: `make test-slow` (CI runs it); test_report.py covers the page fast.
pytestmark = pytest.mark.slow


def _dvc(repo, *args, check=True):
    res = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True,
                         text=True)
    if check and res.returncode:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}")
    return res.stdout


def test_dvc_repro_end_to_end(make_repo, tmp_path):
    repo = make_repo(with_dvc=True)
    _dvc(repo, "repro")
    names = list(yaml.safe_load((repo / "params.yaml").read_text())["experiments"])
    for name in names:
        assert (repo / f"data/{name}/train_clean.npy").is_file()
        tuned = name in yaml.safe_load((repo / "params.yaml").read_text())["tune"]["experiments"]
        assert (repo / f"reports/{name}/best_params.yaml").is_file() == tuned  # no tune, no output
        meta = json.loads((repo / f"models/{name}/meta.json").read_text())
        assert meta["experiment"] == name and meta["mlflow_run_id"]
        metrics = json.loads((repo / f"reports/{name}/metrics.json").read_text())
        assert "model_gain_db" in metrics
    assert (repo / "reports/summary.md").is_file()
    bounds = {n: json.loads((repo / f"reports/{n}/metrics.json").read_text())["bound"] for n in names}
    assert bounds == {"seed-noise": None, "seed-quantize": None, "audio-noise": "ideal_mask",
                      "audio-bandwidth": None, "speech-denoise": "ideal_mask",
                      "speech-bandwidth": None}
    page = check_page(repo / "reports/index.html", tmp_path / "report.png")
    # 4 versions x 3 examples per experiment, plus one set per noise kind for speech-denoise
    kinds = json.loads((repo / "reports/speech-denoise/audio/noise_kinds.json").read_text())
    assert len(page.audio) == 4 * len(names) * 3 + 4 * len(kinds["examples"])
    anchors = pd.read_csv(repo / "reports/speech-denoise/anchors.csv")
    assert {"deepfilternet3", "rnnoise", "wiener_dd"} <= set(anchors["method"])
    size = sum(p.stat().st_size for p in (repo / "reports").rglob("*") if p.is_file())
    print(f"reports/ of the quick pipeline: {size / 1e6:.2f} MB; screenshot {tmp_path / 'report.png'}")
    assert size < 40e6  # the speech listening examples are 2-s float WAVs
    again = _dvc(repo, "repro")
    assert "Running stage" not in again
    shown = _dvc(repo, "metrics", "show")
    assert "model_gain_db" in shown and "key_metrics.json" in shown and "meta.json" not in shown
    # Every train run is in the tracking store the params point at.
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    for name in names:
        exp = mlflow.get_experiment_by_name(f"audiorecon/{name}")
        assert exp is not None
        runs = mlflow.search_runs([exp.experiment_id], filter_string="tags.stage = 'train'")
        assert len(runs) == 1
    res = subprocess.run([sys.executable, "-m", "pipeline", "compare", "-e", names[0], "--csv",
                          str(tmp_path / "cmp.csv")], cwd=repo, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    table = pd.read_csv(tmp_path / "cmp.csv")
    assert len(table) == 1 and table["model_gain_db"].notna().all()  # train run + its evaluation
    _bad_params_change_nothing(repo)


def _snapshot(repo: Path) -> dict[str, bytes]:
    return {p.relative_to(repo).as_posix(): p.read_bytes()
            for folder in ("data", "models", "reports") for p in sorted((repo / folder).rglob("*"))
            if p.is_file()}


BAD_PARAMS = [  # (dotted key, value, what the one message must name)
    ("tuning", {"n_trials": 3}, "params.yaml: tuning: unknown key"),
    ("experiments.seed-noise.train.epochs", "many", "experiments.seed-noise.train.epochs"),
    ("experiments.seed-noise.sizes.train", -5, "experiments.seed-noise.sizes.train"),
]


def _bad_params_change_nothing(repo: Path) -> None:
    """DVC removes a stage's outs before its command runs unless they are persisted; with
    `persist: true` the command validates first, so nothing written before is lost."""
    good = (repo / "params.yaml").read_text()
    before = _snapshot(repo)
    for key, value, needle in BAD_PARAMS:
        raw = yaml.safe_load(good)
        node = raw
        *head, last = key.split(".")
        for k in head:
            node = node[k]
        node[last] = value
        (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        res = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=repo,
                             capture_output=True, text=True)
        assert res.returncode != 0, key
        errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
        assert errors and needle in errors[0], res.stdout + res.stderr
        assert _snapshot(repo) == before, key
    (repo / "params.yaml").write_text(good)
    # The same through `dvc exp run -S` (which edits params.yaml itself).
    res = subprocess.run([sys.executable, "-m", "dvc", "exp", "run", "-S",
                          "experiments.seed-noise.sizes.train=-5"], cwd=repo,
                         capture_output=True, text=True)
    assert res.returncode != 0
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert errors and "experiments.seed-noise.sizes.train" in errors[0], res.stdout + res.stderr
    assert _snapshot(repo) == before
    (repo / "params.yaml").write_text(good)
