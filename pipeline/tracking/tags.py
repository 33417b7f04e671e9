"""What a run is labelled with: flattened params, their hash, the git commit, DVC's context."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Mapping
from typing import Any


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mapping -> {"model.depth": "4", ...}: stable dotted names line runs up in the UI."""
    out: dict[str, str] = {}
    for key in sorted(params, key=str):
        value = params[key]
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_params(value, prefix=f"{name}."))
        elif isinstance(value, (list, tuple)):
            out[name] = json.dumps(list(value))
        else:
            out[name] = str(value)
    return out


def params_hash(params: Mapping[str, Any]) -> str:
    """Short content hash of a params mapping: equal hashes mean equal effective configs."""
    flat = flatten_params(params)
    return hashlib.sha256(json.dumps(flat, sort_keys=True).encode()).hexdigest()[:16]


def git_commit(cwd: str | os.PathLike[str] = ".") -> str | None:
    try:
        res = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = res.stdout.strip()
    return sha if res.returncode == 0 and sha else None


def standard_tags(
    stage: str,
    experiment: str,
    params_hash: str,
    data_digest: str | None,
    cwd: str | os.PathLike[str] = ".",
) -> dict[str, str]:
    """Tags that tie a run to code (git), the DVC experiment, its config and its data."""
    tags = {
        "stage": stage,
        "experiment": experiment,
        "params_hash": params_hash,
    }
    if data_digest:
        tags["data_digest"] = data_digest
    sha = git_commit(cwd)
    if sha:
        tags["git_commit"] = sha
        tags["mlflow.source.git.commit"] = sha
    dvc_exp = os.environ.get("DVC_EXP_NAME")
    if dvc_exp:
        tags["dvc_exp_name"] = dvc_exp
    return tags


