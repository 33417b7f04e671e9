"""Shared fixtures: temp repositories with quick params, so stages run for real in seconds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, quick_params

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("GIT_AUTHOR_NAME", "audiorecon tests")
os.environ.setdefault("GIT_AUTHOR_EMAIL", "tests@audiorecon.invalid")
os.environ.setdefault("GIT_COMMITTER_NAME", "audiorecon tests")
os.environ.setdefault("GIT_COMMITTER_EMAIL", "tests@audiorecon.invalid")
# Stages call `python -m pipeline` and `dvc`: use this interpreter's environment.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
# Tests must never log into the developer's own store.
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("OPTUNA_STORAGE", None)


@pytest.fixture
def make_repo(tmp_path):
    """Factory: a temp project with params.yaml and, on request, code, dvc.yaml, git and dvc."""

    def make(experiments=None, with_dvc: bool = False, **overrides) -> Path:
        repo = tmp_path / "repo"
        repo.mkdir(exist_ok=True)
        params = quick_params(repo, experiments, **overrides)
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        if with_dvc:
            for package in ("pipeline", "benchmarks"):  # benchmarks: the anchors stage
                shutil.copytree(ROOT / package, repo / package,
                                ignore=shutil.ignore_patterns("__pycache__"))
            dvc_yaml = yaml.safe_load((ROOT / "dvc.yaml").read_text())
            for table in dvc_yaml["vars"]:  # per-experiment tables follow params' experiments
                for key, rows in table.items():
                    table[key] = {k: v for k, v in rows.items() if k in params["experiments"]}
            (repo / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml, sort_keys=False))
            (repo / ".gitignore").write_text("mlflow.db\nmlartifacts/\noptuna/\n")
            subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
            subprocess.run(["dvc", "init", "-q"], cwd=repo, check=True)
            subprocess.run(["dvc", "config", "core.analytics", "false"], cwd=repo, check=True)
            subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
            subprocess.run(["git", "commit", "-qm", "init"], cwd=repo, check=True)
        return repo

    return make
