"""The ``tune@<experiment>`` stage: a persisted Optuna study over the space in params.yaml.

Outputs (an interface the train stage reads)::

    reports/<name>/best_params.yaml   {params, source, study, storage, best_value, n_trials}
    reports/<name>/tune/              trials.csv and Optuna's plots (PNG)

Modules: ``storage`` (where studies live, dead workers), ``objective`` (space, study name,
sampler, trial), ``runner`` (budget slots, worker processes), ``records`` (outputs).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna

from pipeline import tracking
from pipeline.config import Resolved
from pipeline.layout import read_digest
from pipeline.tuning.errors import FINISHED, DivergedError, TuneError
from pipeline.tuning.objective import (
    check_space,
    contains,
    objective_definition,
    study_name,
    untuned_values,
)
from pipeline.tuning.records import finish, untuned
from pipeline.tuning.runner import Job, check_budget, run_parallel, run_worker
from pipeline.tuning.storage import (
    carry_over,
    fail_orphaned_trials,
    fail_stale,
    mask_url,
    open_storage,
    resolve_storage,
)

__all__ = ["DivergedError", "TuneError", "fail_orphaned_trials", "fail_stale", "mask_url",
           "open_storage", "study_name", "tune_experiment", "untuned_values"]

log = logging.getLogger("audiorecon.tune")
STAGE = "tune"


def tune_experiment(
    r: Resolved,
    *,
    storage: str | None = None,
    n_trials: int | None = None,
    workers: int | None = None,
    enqueue: list[dict[str, Any]] | tuple = (),
) -> dict[str, Any]:
    """Add `n_trials` trials to the experiment's study; write best_params.yaml and tune/.

    `r` comes from ``resolve(params, name, root, tuning=True)``. Without `n_trials` the study
    is topped up to tune.n_trials finished trials. `enqueue` lists extra configurations
    (tunable -> value) to try first, after params.yaml's own values on a fresh study.
    Returns the best_params.yaml record.
    """
    if r.tune is None:
        raise TuneError("tune_experiment needs resolve(..., tuning=True)")
    cfg = r.tune
    n_new = cfg.n_trials if n_trials is None else int(n_trials)
    n_workers = cfg.workers if workers is None else int(workers)
    if n_new < 0 or n_workers < 1:
        raise TuneError(f"need n_trials >= 0 and workers >= 1, got {n_new} and {n_workers}")
    if not cfg.enabled:
        return untuned(r, "tune.enabled is false")
    if not cfg.space:
        return untuned(r, "tune.space is empty")
    check_space(cfg.space, r.exp.model, r.exp.train)
    digest = read_digest(r.paths)
    spec = resolve_storage(cfg, r.paths.root, r.name, storage, n_workers)
    sname = study_name(r, digest)
    store = open_storage(spec)
    if n_new == 0:
        try:
            study = optuna.load_study(study_name=sname, storage=store)
        except KeyError:
            return untuned(r, "n_trials is 0 and there is no study yet")
        if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            return untuned(r, "n_trials is 0 and no trial has completed")
        return finish(r, study, spec, tracking.RunHandle(None))

    tracker = tracking.setup(r.tracking, r.paths.root)
    carry_over(spec, store, sname, r.paths.root, r.name)
    study = _open_study(r, store, sname, digest, enqueue, tracker)
    if n_trials is None:  # the stage: bring the study up to tune.n_trials finished trials
        n_new = max(0, n_new - len(study.get_trials(deepcopy=False, states=FINISHED)))
        if n_new == 0:
            log.info("tune@%s: study %s already holds %d finished trials", r.name, sname,
                     cfg.n_trials)
            return finish(r, study, spec, tracking.RunHandle(None))
    return _invocation(r, study, store, spec, digest, n_new, min(n_workers, n_new), tracker)


def _open_study(r: Resolved, store, sname: str, digest: str, enqueue,
                tracker: tracking.Tracker) -> optuna.Study:
    """Create or continue the study; a fresh one tries params.yaml's own values first.
    Trials of this host's dead workers become FAIL (their MLflow runs KILLED) first."""
    study = optuna.create_study(study_name=sname, storage=store, direction="minimize",
                                load_if_exists=True)
    if not study.trials:
        study.set_user_attr("experiment", r.name)
        study.set_user_attr("objective", objective_definition(r, digest))
        defaults = untuned_values(r)
        fixed = {k: v for k, v in defaults.items() if contains(r.tune.space[k], v)}
        if len(fixed) < len(defaults):
            log.warning("params.yaml values outside tune.space are sampled instead: %s",
                        sorted(set(defaults) - set(fixed)))
        study.enqueue_trial(fixed, user_attrs={"origin": "params.yaml"})
    fail_orphaned_trials(study, tracker)
    for values in enqueue:
        study.enqueue_trial(dict(values), user_attrs={"origin": "enqueued"})
    return study


def _invocation(r: Resolved, study: optuna.Study, store, spec: str, digest: str, n_new: int,
                n_workers: int, tracker: tracking.Tracker) -> dict[str, Any]:
    """Run `n_new` trials under one MLflow parent run, then write the outputs."""
    cfg, sname, root = r.tune, study.study_name, r.paths.root
    n_existing = len(study.trials)
    # Other hosts may share a server storage: give this invocation its own sampler streams,
    # or two hosts starting together would propose the same configurations.
    shared = not spec.startswith(("sqlite", "journal:"))
    invocation = uuid.uuid4().hex[:12]
    salt = f"-{invocation}" if shared else ""
    p_hash = tracking.params_hash({"tune": cfg.model_dump(mode="json", exclude={"experiments"}),
                                   "objective": objective_definition(r, digest)})
    tags = {**tracking.standard_tags(STAGE, r.name, p_hash, digest, cwd=root),
            "study": sname, "optuna_storage": mask_url(spec), "invocation": invocation}
    run_name = f"tune-{r.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    lock = Path(tempfile.gettempdir()) / f"audiorecon-tune-{invocation}.lock"

    def seed(i: int) -> int:
        return r.seed(f"tune-sampler-{n_existing}-{i}{salt}")

    with tracker.start_run(r.name, run_name, tags) as run:
        run.log_params({"tune": cfg.model_dump(mode="json", exclude={"storage", "experiments"}),
                        "study": sname, "storage": mask_url(spec), "workers": n_workers,
                        "trials_added": n_new})
        base = Job(r=r, storage=spec, study=sname, n_trials=n_new, invocation=invocation,
                   lock=str(lock), seed=seed(0), parallel=n_workers > 1 or shared,
                   parent_run_id=run.run_id, tracking=tracker.enabled)
        try:
            if n_workers == 1:
                run_worker(base)
                dead = []
            else:
                threads = max(1, (os.cpu_count() or 1) // n_workers)
                dead = run_parallel([replace(base, threads=threads, seed=seed(i))
                                     for i in range(n_workers)])
        finally:
            lock.unlink(missing_ok=True)
        study = optuna.load_study(study_name=sname, storage=store)
        fail_orphaned_trials(study, tracker)
        check_budget(study, invocation, n_new, dead, cfg.timeout)
        return finish(r, study, spec, run)
