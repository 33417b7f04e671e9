"""Running an invocation's trials: budget slots, local worker processes, and Optuna's loop.

Optuna runs each trial (``study.optimize(n_trials=1)``: its heartbeat on RDB storages, its
stale-trial sweep, its tell); this module only decides how many trials an invocation adds.
"""

from __future__ import annotations

import fcntl
import logging
import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna

from pipeline import tracking
from pipeline.config import Resolved
from pipeline.layout import load_split
from pipeline.tuning.errors import COUNTED, DivergedError, TuneError
from pipeline.tuning.objective import make_objective, make_pruner, make_sampler
from pipeline.tuning.storage import fail_orphaned_trials, open_storage

log = logging.getLogger("audiorecon.tune")


@dataclass(frozen=True)
class Job:
    """What a worker needs; picklable (a Resolved, not Params), so it crosses 'spawn'."""

    r: Resolved
    storage: str
    study: str
    n_trials: int  # the invocation's budget, shared by all its workers
    invocation: str  # tag on the trials this invocation ran
    lock: str  # file holding the count of claimed slots, locked while it changes
    seed: int
    parallel: bool
    parent_run_id: str | None
    tracking: bool
    threads: int | None = None


class Slots:
    """The invocation's trial budget, shared by its local workers through a locked counter.

    A worker runs a trial only after taking a slot, so the workers of one invocation together
    start exactly `n_trials` trials: none twice, and a killed worker's share is taken over by
    the others (its own trial still counts, as FAIL). Workers of one invocation always share
    a host; invocations on other hosts have budgets (and counter files) of their own.
    """

    def __init__(self, path: str | os.PathLike[str], n_trials: int):
        self.path, self.n_trials = Path(path), n_trials

    def claim(self) -> bool:
        with self.path.open("a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                fh.seek(0)
                taken = int(fh.read().strip() or 0)
                if taken >= self.n_trials:
                    return False
                fh.seek(0)
                fh.truncate()
                fh.write(str(taken + 1))
                fh.flush()
                return True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def _limit_threads(n: int | None) -> None:
    if not n:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:  # TF already initialised in this process: keep its pools
        pass


def _arrays(r: Resolved) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(train, val) (clean, degraded) pairs, capped at the tune stage's frame limits."""
    def split(name: str, limit: int):
        return tuple(np.asarray(a, dtype=np.float32) for a in load_split(r.paths, name, limit=limit))

    return split("train", r.tune.max_train_frames), split("val", r.tune.max_val_frames)


def run_worker(job: Job) -> int:
    """Take slots and run one trial per slot until the budget (or tune.timeout) is spent;
    returns how many trials this process ran."""
    r = job.r
    tracker = tracking.setup(r.tracking, r.paths.root) if job.tracking else tracking.OFF
    _limit_threads(job.threads)
    train_arrays, val_arrays = _arrays(r)
    study = optuna.load_study(study_name=job.study, storage=open_storage(job.storage),
                              sampler=make_sampler(r.tune, job.seed, job.parallel),
                              pruner=make_pruner(r.tune))
    objective = make_objective(job, (train_arrays, val_arrays), tracker)
    slots = Slots(job.lock, job.n_trials)
    t0, ran = time.monotonic(), 0
    while r.tune.timeout is None or time.monotonic() - t0 < r.tune.timeout:
        fail_orphaned_trials(study, tracker)  # this host's dead workers; optimize sweeps heartbeats
        if not slots.claim():
            break
        ran += 1
        # DivergedError and invalid values are this trial's problem: FAIL, the study goes on.
        study.optimize(objective, n_trials=1, catch=(DivergedError, ValueError),
                       gc_after_trial=True)
    return ran


def _worker_main(job: Job) -> None:  # pragma: no cover - runs in spawned processes
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run_worker(job)


def run_parallel(jobs: list[Job]) -> list[str]:
    """One spawned process per job; returns a line per worker that did not exit cleanly."""
    ctx = multiprocessing.get_context("spawn")  # fork + TensorFlow threads deadlocks
    procs = [ctx.Process(target=_worker_main, args=(job,), name=f"tune-{i}")
             for i, job in enumerate(jobs)]
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join()
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join()
    return [f"{p.name} (pid {p.pid}) exit code {p.exitcode}" for p in procs if p.exitcode != 0]


def check_budget(study: optuna.Study, invocation: str, n_new: int, dead: list[str],
                 timeout: float | None) -> None:
    """Dead workers are fine if the others spent the budget; TuneError if trials are missing."""
    ran = [t for t in study.get_trials(deepcopy=False, states=COUNTED)
           if t.user_attrs.get("invocation") == invocation]
    if not dead:
        return
    if len(ran) >= n_new or timeout is not None:
        failed = sorted(t.number for t in ran if t.state == optuna.trial.TrialState.FAIL)
        log.warning("tuning worker(s) died (%s); the others ran the budget of %d trials "
                    "(FAIL: %s)", ", ".join(dead), n_new, failed or "none")
        return
    raise TuneError(
        f"tuning worker(s) failed ({', '.join(dead)}) after {len(ran)} of {n_new} trials; "
        "finished trials are kept in the study, re-run to continue"
    )
