"""Reproducibility: `dvc repro` from scratch in two fresh copies of one repository gives the
same data (digests and dvc.lock hashes of `generate`) and the same training result.

Tolerance: training runs with TensorFlow op determinism and seeds derived from base.seed, so
on one machine the two best validation losses are expected to be identical; the test allows a
relative 1e-6 so that a different BLAS thread split cannot fail it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
TARGETS = ["train@seed-noise", "generate@seed-quantize"]
REL_TOL = 1e-6


def _repro(repo: Path) -> float:
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "dvc", "repro", *TARGETS], cwd=repo,
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return time.monotonic() - t0


def _generate_locks(repo: Path) -> dict[str, dict]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {name: {"outs": stage["outs"], "deps": stage["deps"], "params": stage["params"]}
            for name, stage in lock.items() if name.startswith("generate@")}


def test_repro_from_scratch_twice_is_identical(make_repo, tmp_path):
    first = make_repo(experiments=["seed-noise", "seed-quantize"], with_dvc=True)
    second = tmp_path / "second"
    shutil.copytree(first, second, symlinks=True)  # before any stage ran: from scratch too
    raw = yaml.safe_load((second / "params.yaml").read_text())
    raw["tracking"]["uri"] = f"sqlite:///{second / 'mlflow.db'}"
    (second / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))

    times = [_repro(first), _repro(second)]
    for name in ("seed-noise", "seed-quantize"):
        a = json.loads((first / "data" / name / "digest.json").read_text())
        b = json.loads((second / "data" / name / "digest.json").read_text())
        assert a["digest"] == b["digest"], name
    lock_a, lock_b = _generate_locks(first), _generate_locks(second)
    assert set(lock_a) == {"generate@seed-noise", "generate@seed-quantize"}
    assert lock_a == lock_b

    meta_a = json.loads((first / "models/seed-noise/meta.json").read_text())
    meta_b = json.loads((second / "models/seed-noise/meta.json").read_text())
    assert meta_a["data_digest"] == meta_b["data_digest"]
    assert meta_a["params_hash"] == meta_b["params_hash"]
    assert meta_a["best_val_loss"] == pytest.approx(meta_b["best_val_loss"], rel=REL_TOL)
    assert meta_a["epochs_run"] == meta_b["epochs_run"]
    exact = meta_a["best_val_loss"] == meta_b["best_val_loss"]
    print(f"dvc repro {' '.join(TARGETS)}: {times[0]:.0f} s and {times[1]:.0f} s; best val loss "
          f"{meta_a['best_val_loss']!r} vs {meta_b['best_val_loss']!r} ({'exact' if exact else 'close'})")
