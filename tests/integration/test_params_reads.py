"""Every params key a stage reads is declared in its dvc.yaml `params:` (or the stage depends on
params.yaml whole), so changing any key re-runs exactly the stages that read it.

The stages run for real on a tiny repo (not quick mode: quick's caps would read keys the full
pipeline does not), inside `record_reads`, which notes each params field read. `tracking.*`
is exempt by design: where runs are logged never changes a result.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, quick_params

from pipeline.config import load_params, record_reads, resolve

pytestmark = pytest.mark.timeout(600)
TUNED, PLAIN = "seed-noise", "audio-bandwidth"


def _declared(stage: str, experiment: str | None) -> tuple[list[str], bool]:
    """(params keys, depends on params.yaml whole) of one stage of dvc.yaml."""
    body = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]
    body = body.get("do", body)
    keys = [k for k in body.get("params", []) if isinstance(k, str)]
    if experiment is not None:
        keys = [k.replace("${key}", experiment).replace("${item}", experiment) for k in keys]
    return keys, "params.yaml" in body.get("deps", [])


def _undeclared(reads: set[str], declared: list[str]) -> list[str]:
    return sorted(r for r in reads if not r.startswith("tracking.")
                  and not any(r == d or r.startswith(d + ".") for d in declared))


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("reads")
    tiny = {"sizes": {"train": 192, "val": 64, "test": 64}}
    raw = quick_params(root, [TUNED, PLAIN], **{
        "base.quick": False, "tracking.required": False,
        "tune.n_trials": 2, "tune.min_trials": 2, "tune.epochs": 1,
        "tune.max_train_frames": 128, "tune.max_val_frames": 64,
        f"experiments.{TUNED}.sizes": tiny["sizes"], f"experiments.{PLAIN}.sizes": tiny["sizes"],
        f"experiments.{TUNED}.train.epochs": 1, f"experiments.{PLAIN}.train.epochs": 1,
        f"experiments.{PLAIN}.model.prefilter.taps": 31,
    })
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return root


def _run(repo, stage: str, experiment: str | None):
    from pipeline.layout import RepoPaths
    from pipeline.stages.evaluate import evaluate_experiment
    from pipeline.stages.generate import generate_experiment
    from pipeline.stages.report import build_report
    from pipeline.stages.summary import write_summary
    from pipeline.stages.train import train_experiment
    from pipeline.tuning import tune_experiment

    calls = {"generate": generate_experiment, "tune": tune_experiment,
             "train": train_experiment, "evaluate": evaluate_experiment}
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    params = load_params(repo / "params.yaml")
    with record_reads(params) as reads:
        if stage in calls:  # resolving is part of the stage: the CLI does it first
            calls[stage](resolve(params, experiment, repo, tuned=stage == "train",
                                 tuning=stage == "tune"))
        elif stage == "summary":
            write_summary(params, RepoPaths(Path(repo)))
        else:
            build_report(params, RepoPaths(Path(repo)))
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    return reads


STEPS = [("generate", TUNED), ("generate", PLAIN), ("tune", TUNED), ("train", TUNED),
         ("train", PLAIN), ("evaluate", TUNED), ("evaluate", PLAIN), ("summary", None),
         ("report", None)]


def test_every_stage_reads_only_declared_params(repo):
    problems = {}
    for stage, experiment in STEPS:  # in pipeline order: each stage needs the one before
        reads = _run(repo, stage, experiment)
        assert reads, f"{stage}: nothing recorded (is record_reads working?)"
        declared, whole_file = _declared(stage, experiment)
        missing = [] if whole_file else _undeclared(reads, declared)
        if missing:
            problems[f"{stage}@{experiment}" if experiment else stage] = missing
    assert not problems, f"stages read params their dvc.yaml entry does not declare: {problems}"


def test_the_recorder_catches_an_undeclared_read(repo):
    """The check can fail: a read outside the declared keys is reported."""
    params = load_params(repo / "params.yaml")
    with record_reads(params) as reads:
        _ = params.tune.sampler, params.experiment(TUNED).train.patience
    declared, _ = _declared("generate", TUNED)
    assert _undeclared(reads, declared) == [f"experiments.{TUNED}.train.patience", "tune.sampler"]
