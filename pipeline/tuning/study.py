"""The ``tune@<experiment>`` stage: a persisted Optuna study over the space in params.yaml.

Outputs (an interface the train stage reads)::

    reports/<name>/best_params.yaml   {params, source, study, storage, best_value, n_trials}
    reports/<name>/tune/              trials.csv and Optuna's plots (PNG)

The study lives outside DVC (``<repo>/optuna/<name>.db`` by default), so every invocation adds
trials to it instead of starting over. Its name carries a hash of everything that defines the
objective (data, space, budget per trial, fixed config), so an edit that makes old trials
incomparable starts a fresh study instead of mixing them.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import math
import multiprocessing
import os
import socket
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
import yaml
from optuna.trial import TrialState

from pipeline import tracking
from pipeline.config import TUNABLE, ModelCfg, Params, SearchDim, TrainCfg, TuneCfg
from pipeline.config.resolve import derive_seed
from pipeline.errors import UserError
from pipeline.io.atomic import atomic_dir, atomic_write_text
from pipeline.layout import ExperimentPaths, load_split, read_digest
from pipeline.nn.fit import fit, set_determinism

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

log = logging.getLogger("audiorecon.tune")

STAGE = "tune"
STUDY_DIR = "optuna"
OBJECTIVE_VERSION = 1  # bump when the objective's code changes meaning: starts fresh studies
HEARTBEAT_S = 10  # AUDIORECON_TUNE_HEARTBEAT_S overrides (tests use 1)
GRACE_S = 30  # AUDIORECON_TUNE_GRACE_S overrides: a silent trial is FAIL after this
PRUNER_STARTUP = 2
_COUNTED = (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # what tune.n_trials / min_trials count
TPE_STARTUP = 5


class TuneError(UserError, RuntimeError):
    """A tuning problem the user can fix (storage, search space, every trial failing)."""


class DivergedError(RuntimeError):
    """A trial's loss became NaN/inf: recorded as FAIL, the study goes on."""


# ----------------------------------------------------------------------------- storage
def mask_url(url: str) -> str:
    """The storage URL with any password replaced by ***, safe for logs and output files."""
    return tracking.mask_passwords(url)


def _scrub(text: str, url: str) -> str:
    """Remove the password of `url` from an error message."""
    try:
        from sqlalchemy.engine import make_url

        pw = make_url(url).password
    except Exception:
        pw = None
    text = text.replace(url, mask_url(url))
    return text.replace(str(pw), "***") if pw else text


def _is_journal(spec: str) -> bool:
    return spec.startswith("journal:") or ("://" not in spec and spec.endswith(".journal"))


def _journal_path(spec: str, root: Path) -> Path:
    p = Path(spec.removeprefix("journal:"))
    return p if p.is_absolute() else tracking.repo_root(root) / p


def default_storage(root: str | os.PathLike[str], name: str, workers: int) -> str:
    """``<repo>/optuna/<name>.db`` (SQLite) for one worker, a journal file for several.

    Paths are absolute under the user's real repo, also from a ``dvc exp run --temp`` copy,
    so temp runs continue the same study. Once a journal exists it stays the default, so a
    later single-worker run continues the parallel study rather than an older SQLite one.
    """
    folder = tracking.repo_root(root) / STUDY_DIR
    journal = folder / f"{name}.journal"
    if workers > 1 or journal.exists():
        return f"journal:{journal}"
    return f"sqlite:///{folder / f'{name}.db'}"


def resolve_storage(
    cfg: TuneCfg, root: str | os.PathLike[str], name: str, storage: str | None, workers: int
) -> str:
    """--storage, else OPTUNA_STORAGE, else tune.storage, else the local default."""
    spec = storage or os.environ.get("OPTUNA_STORAGE") or cfg.storage
    if spec:
        return f"journal:{_journal_path(spec, Path(root))}" if _is_journal(spec) else spec
    return default_storage(root, name, workers)


def _stale_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    log.warning("trial %d of %s stopped heartbeating (worker died?): marked FAIL",
                trial.number, study.study_name)


def heartbeat_settings() -> tuple[int, int]:
    """(interval, grace period) in seconds for RDB storages, from the environment if set."""
    def read(key: str, default: int) -> int:
        raw = os.environ.get(key)
        try:
            value = int(raw) if raw else default
        except ValueError:
            raise TuneError(f"{key}={raw!r}: expected a whole number of seconds") from None
        if value < 1:
            raise TuneError(f"{key}={raw!r}: must be at least 1")
        return value

    interval = read("AUDIORECON_TUNE_HEARTBEAT_S", HEARTBEAT_S)
    grace = read("AUDIORECON_TUNE_GRACE_S", GRACE_S)
    if grace <= interval:
        raise TuneError(f"the heartbeat grace period ({grace} s) must exceed its interval "
                        f"({interval} s)")
    return interval, grace


def open_storage(spec: str) -> BaseStorage:
    """Open a journal file or any SQLAlchemy URL; TuneError (password masked) if unusable.

    RDB storages get a heartbeat, so a trial whose worker was killed becomes FAIL once its
    grace period is over, whichever host it ran on. Several hosts starting on a fresh
    database race to create Optuna's tables; a failed first attempt is retried.
    """
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    if spec.startswith("journal:"):
        path = Path(spec.removeprefix("journal:"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as err:
            raise TuneError(f"Optuna journal storage {path}: {err}") from None
    kwargs: dict[str, Any] = {}
    if spec.startswith("sqlite:///"):
        db = spec.removeprefix("sqlite:///")
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    else:  # a server: fail in seconds, not after the OS's TCP timeout
        kwargs["engine_kwargs"] = {"pool_pre_ping": True}
        if spec.startswith(("postgresql", "mysql")):
            kwargs["engine_kwargs"]["connect_args"] = {"connect_timeout": 10}
    interval, grace = heartbeat_settings()
    attempts = 1 if spec.startswith("sqlite") else 3
    try:
        for attempt in range(attempts):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return RDBStorage(
                        spec,
                        heartbeat_interval=interval,
                        grace_period=grace,
                        heartbeat_stale_trial_callback=_stale_trial,
                        **kwargs,
                    )
            except Exception as err:
                # Unreachable servers and bad URLs fail the same way every time: no retry.
                racing = any(w in str(err) for w in ("already exists", "duplicate key"))
                if attempt == attempts - 1 or not racing:
                    raise
                time.sleep(1 + attempt)
        raise AssertionError("unreachable")
    except Exception as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise TuneError(
            f"cannot open Optuna storage {mask_url(spec)}: {_scrub(first, spec)} "
            "(expected an SQLAlchemy URL such as sqlite:///path.db or "
            "postgresql://user:pw@host/db, or journal:<file>)"
        ) from None


# ----------------------------------------------------------------------------- search space
def _distribution(dim: SearchDim):
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if dim.type == "categorical":
        return CategoricalDistribution(dim.choices)
    if dim.type == "int":
        return IntDistribution(int(dim.low), int(dim.high), log=dim.log, step=int(dim.step or 1))
    return FloatDistribution(dim.low, dim.high, log=dim.log, step=dim.step)


def check_space(space: dict[str, SearchDim], model: ModelCfg, train: TrainCfg) -> None:
    """Reject spaces Optuna or the config schema would reject later in every trial."""
    base = {"model": model.model_dump(), "train": train.model_dump()}
    for key, dim in space.items():
        where = f"tune.space.{key}"
        if dim.type != "categorical" and dim.log and dim.step is not None:
            raise TuneError(f"{where}: `log` and `step` cannot be combined")
        if dim.type == "int" and any(
            v is not None and float(v) != int(v) for v in (dim.low, dim.high, dim.step)
        ):
            raise TuneError(f"{where}: int dimensions need integer low/high/step")
        try:
            _distribution(dim)
        except ValueError as err:
            raise TuneError(f"{where}: {err}") from None
        values = dim.choices if dim.type == "categorical" else [dim.low, dim.high]
        group = TUNABLE[key]
        cls = ModelCfg if group == "model" else TrainCfg
        for v in values:
            if dim.type == "int":
                v = int(v)
            try:
                cls.model_validate({**base[group], key: v})
            except Exception as err:
                msg = err.errors()[0]["msg"] if hasattr(err, "errors") else str(err)
                raise TuneError(f"{where}: value {v!r} is invalid for {group}.{key}: {msg}") from None


def suggest(trial: optuna.Trial, space: dict[str, SearchDim]) -> dict[str, Any]:
    """One value per dimension, suggested per its SearchDim."""
    out: dict[str, Any] = {}
    for key, dim in space.items():
        if dim.type == "categorical":
            out[key] = trial.suggest_categorical(key, dim.choices)
        elif dim.type == "int":
            out[key] = trial.suggest_int(
                key, int(dim.low), int(dim.high), step=int(dim.step or 1), log=dim.log
            )
        else:
            out[key] = trial.suggest_float(key, dim.low, dim.high, step=dim.step, log=dim.log)
    return out


def _contains(dim: SearchDim, value: Any) -> bool:
    if dim.type == "categorical":
        return value in dim.choices
    if not dim.low <= value <= dim.high:
        return False
    step = dim.step or (1 if dim.type == "int" else None)
    return step is None or math.isclose((value - dim.low) / step, round((value - dim.low) / step))


def apply_values(model: ModelCfg, train: TrainCfg, values: dict[str, Any]):
    """(ModelCfg, TrainCfg) with the tunables in `values` replaced."""
    groups: dict[str, dict[str, Any]] = {"model": {}, "train": {}}
    for key, value in values.items():
        groups[TUNABLE[key]][key] = value
    return (
        ModelCfg.model_validate({**model.model_dump(), **groups["model"]}),
        TrainCfg.model_validate({**train.model_dump(), **groups["train"]}),
    )


def untuned_values(params: Params, name: str) -> dict[str, Any]:
    """params.yaml's own values of the tunables in the space (the 'no tuning' answer)."""
    exp = params.experiment(name)
    cfgs = {"model": exp.model, "train": exp.train}
    return {key: getattr(cfgs[TUNABLE[key]], key) for key in params.tune.space}


# ----------------------------------------------------------------------------- study identity
def objective_definition(params: Params, name: str, digest: str) -> dict[str, Any]:
    """Everything that makes trial values comparable; its hash names the study."""
    exp = params.experiment(name)
    cfg = params.tune_settings()
    tuned = set(cfg.space)
    return {
        "version": OBJECTIVE_VERSION,
        "metric": "min val_loss",
        "data_digest": digest,
        "space": {k: cfg.space[k].model_dump(mode="json") for k in sorted(cfg.space)},
        "epochs": cfg.epochs,
        "max_train_frames": cfg.max_train_frames,
        "max_val_frames": cfg.max_val_frames,
        "seed": derive_seed(params.base.seed, name, "train"),
        "model": {k: v for k, v in exp.model.model_dump(mode="json").items() if k not in tuned},
        "train": {
            k: v
            for k, v in exp.train.model_dump(mode="json").items()
            if k not in tuned and k != "epochs"  # trials run tune.epochs, not train.epochs
        },
    }


def study_name(params: Params, name: str, digest: str) -> str:
    blob = json.dumps(objective_definition(params, name, digest), sort_keys=True)
    return f"audiorecon-{name}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


# ----------------------------------------------------------------------------- dead workers
def _proc_stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # fields from #3 (state) on


def _proc_start(pid: int) -> str | None:
    """Process start time (clock ticks since boot): tells a reused pid from the original."""
    fields = _proc_stat(pid)
    return fields[19] if fields and len(fields) > 19 else None


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _proc_stat(pid)
    if fields is None:
        return os.name != "posix" or not Path("/proc/self/stat").exists()
    if fields[0] in ("Z", "X"):
        return False
    return start is None or fields[19] == start


def fail_orphaned_trials(study: optuna.Study, tracker: tracking.Tracker = tracking.OFF) -> list[int]:
    """Mark FAIL the RUNNING trials whose local worker process is gone.

    Journal storages have no heartbeat, and an RDB heartbeat only expires after its grace
    period; the pid/host each trial records lets a restart clean up at once.
    """
    host = socket.gethostname()
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("host") != host or pid is None:
            continue
        if _alive(int(pid), t.user_attrs.get("pid_start")):
            continue
        study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
        failed.append(t.number)
        run_id = t.user_attrs.get("mlflow_run_id")
        if run_id and tracker.enabled:
            try:
                from mlflow import MlflowClient

                MlflowClient().set_terminated(run_id, "KILLED")
            except Exception as err:  # the study matters more than the run's status
                log.warning("could not mark MLflow run %s killed: %s", run_id, err)
    if failed:
        log.warning("trials %s: their worker process died; marked FAIL", failed)
    return failed


def _carry_over(spec: str, store: BaseStorage, sname: str, root: Path, name: str) -> None:
    """Copy the study from the default SQLite file into a new default journal.

    The default storage turns into a journal the first time workers > 1; copying keeps that
    run a continuation of the single-worker study instead of a fresh start.
    """
    db = tracking.repo_root(root) / STUDY_DIR / f"{name}.db"
    if spec != default_storage(root, name, 2) or not db.is_file():
        return
    if sname in optuna.get_all_study_names(store):
        return
    try:
        optuna.copy_study(from_study_name=sname, from_storage=f"sqlite:///{db}",
                          to_storage=store)
    except KeyError:  # the SQLite file holds no study for this objective
        return
    log.info("tune@%s: copied study %s from %s into the journal", name, sname, db)


# ----------------------------------------------------------------------------- samplers & pruners
def make_sampler(cfg: TuneCfg, seed: int, parallel: bool) -> optuna.samplers.BaseSampler:
    if cfg.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # constant_liar: parallel workers see each other's running trials as bad, not absent.
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=TPE_STARTUP, constant_liar=parallel
        )


def make_pruner(cfg: TuneCfg) -> optuna.pruners.BasePruner:
    if cfg.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP, n_warmup_steps=1)
    if cfg.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=cfg.epochs)
    return optuna.pruners.NopPruner()


# ----------------------------------------------------------------------------- workers
@dataclass(frozen=True)
class _Job:
    """What a worker needs; picklable, so it crosses the 'spawn' boundary."""

    params: Params
    name: str
    root: str
    storage: str
    study: str
    n_trials: int  # the invocation's budget, shared by all its workers
    invocation: str  # tag on the trials this invocation claimed
    lock: str  # file whose lock serialises claims among this invocation's workers
    timeout: float | None
    seed: int
    parallel: bool
    parent_run_id: str | None
    tracking: bool
    threads: int | None = None


def _pruning_callback(trial: optuna.Trial, run: tracking.RunHandle, curve: dict[str, list]):
    """KerasPruningCallback that also logs the curve and never reports a non-finite loss.

    Reporting NaN would make the median pruner prune it; a diverged trial must be FAIL.
    """
    from optuna_integration import KerasPruningCallback

    class TrialCallback(KerasPruningCallback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = {k: float(v) for k, v in (logs or {}).items()}
            for key in ("loss", "val_loss"):
                curve.setdefault(key, []).append(logs.get(key, math.nan))
            finite = {k: v for k, v in logs.items() if math.isfinite(v)}
            run.log_metrics(finite, step=epoch + 1)
            if not all(math.isfinite(logs.get(k, math.nan)) for k in ("loss", "val_loss")):
                self.model.stop_training = True
                return
            super().on_epoch_end(epoch, logs)

    return TrialCallback(trial, "val_loss")


def _objective(job: _Job, train_arrays, val_arrays, tracker: tracking.Tracker):
    import keras

    exp = job.params.experiment(job.name)
    space = job.params.tune_settings().space
    epochs = job.params.tune_settings().epochs
    seed = derive_seed(job.params.base.seed, job.name, "train")
    start = _proc_start(os.getpid())

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("host", socket.gethostname())
        if start is not None:
            trial.set_user_attr("pid_start", start)
        values = suggest(trial, space)
        tags = {"stage": "tune-trial", "study": job.study, "trial_number": str(trial.number)}
        t0 = time.perf_counter()
        curve: dict[str, list[float]] = {}
        outcome: BaseException | None = None
        with tracker.start_run(
            job.name, f"trial-{trial.number}", tags, nested=True, parent_run_id=job.parent_run_id
        ) as run:
            if run.run_id:
                trial.set_user_attr("mlflow_run_id", run.run_id)
            run.log_params(values)
            state = "FAIL"
            try:
                model_cfg, train_cfg = apply_values(exp.model, exp.train, values)
                set_determinism(train_cfg.jit_compile)  # a re-run proposes the same trials
                with warnings.catch_warnings():  # Keras' note on shuffle=True with a Dataset
                    warnings.filterwarnings("ignore", message=r"`shuffle=True` was passed")
                    fit(model_cfg, train_cfg, train_arrays, val_arrays, seed=seed,
                        epochs=epochs, callbacks=[_pruning_callback(trial, run, curve)])
                losses = curve.get("loss", []) + curve.get("val_loss", [])
                if not losses or not all(math.isfinite(v) for v in losses):
                    raise DivergedError(
                        f"trial {trial.number}: loss became NaN/inf with {values}"
                    )
                value = min(curve["val_loss"])
                state = "COMPLETE"
                run.log_metrics({"objective": value})
            except optuna.TrialPruned as err:
                state, outcome = "PRUNED", err  # re-raised below: the MLflow run still FINISHED
            finally:
                run.set_tags({"state": state})
                run.log_metrics({"duration_s": time.perf_counter() - t0,
                                 "epochs_run": len(curve.get("val_loss", []))})
                keras.backend.clear_session()
        if outcome is not None:
            raise outcome
        return value

    return objective


def _limit_threads(n: int | None) -> None:
    if not n:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:  # TF already initialised in this process: keep its pools
        pass


class _Budget:
    """The invocation's trial budget, shared by its local workers through a file lock.

    A worker claims a trial (``study.ask`` + an ``invocation`` tag) only while fewer than
    `n_trials` trials carry the tag, under an exclusive lock, so the workers of one invocation
    together run exactly `n_trials` trials: none twice, and a killed worker's share is taken
    over by the others (its own trial still counts, as FAIL). Workers of one invocation always
    share a host; invocations on other hosts have budgets of their own.
    """

    def __init__(self, job: _Job):
        self.job = job
        self.path = Path(job.lock)

    def _mine(self, study: optuna.Study) -> int:
        return sum(
            t.user_attrs.get("invocation") == self.job.invocation
            for t in study.get_trials(deepcopy=False, states=_COUNTED)
        )

    def claim(self, study: optuna.Study) -> optuna.Trial | None:
        import fcntl

        with self.path.open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                if self._mine(study) >= self.job.n_trials:
                    return None
                with warnings.catch_warnings():  # ask() outside optimize(): we beat ourselves
                    warnings.filterwarnings("ignore", message=".*Heartbeat.*")
                    trial = study.ask()
                trial.set_user_attr("invocation", self.job.invocation)
                return trial
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


@contextmanager
def _heartbeat(storage: BaseStorage, trial_id: int) -> Iterator[None]:
    """Record the trial's heartbeat every interval while it runs (RDB storages only).

    A worker that is SIGKILLed stops beating; after the grace period the next worker to start
    a trial (any host) marks it FAIL via ``fail_stale_trials``.
    """
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
    if not interval:  # journal files have no heartbeat: the pid check covers their host
        yield
        return
    import threading

    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                storage.record_heartbeat(trial_id)
            except Exception as err:  # a blip must not kill the trial; the next beat retries
                log.warning("heartbeat of trial id %d failed: %s", trial_id, err)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval + 5)


def _fail_stale(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # other hosts' dead workers (heartbeat)
    fail_orphaned_trials(study)  # this host's dead workers (pid), without waiting for grace


def run_worker(job: _Job) -> int:
    """Claim and run trials of `job.study` until the invocation's budget is spent; returns
    how many this process ran.

    An ask-and-tell loop rather than ``study.optimize`` so claiming a trial and counting the
    budget happen under one lock (see :class:`_Budget`).
    """
    tracker = tracking.setup(job.params.tracking, job.root) if job.tracking else tracking.OFF
    _limit_threads(job.threads)
    cfg = job.params.tune_settings()
    data_dir = Path(job.root) / "data" / job.name
    train_arrays = tuple(
        np.asarray(a, dtype=np.float32)
        for a in load_split(data_dir, "train", limit=cfg.max_train_frames)
    )
    val_arrays = tuple(
        np.asarray(a, dtype=np.float32)
        for a in load_split(data_dir, "val", limit=cfg.max_val_frames)
    )
    storage = open_storage(job.storage)
    study = optuna.load_study(
        study_name=job.study,
        storage=storage,
        sampler=make_sampler(cfg, job.seed, job.parallel),
        pruner=make_pruner(cfg),
    )
    study_id = storage.get_study_id_from_name(job.study)
    objective = _objective(job, train_arrays, val_arrays, tracker)
    budget = _Budget(job)
    t0, ran = time.monotonic(), 0
    while job.timeout is None or time.monotonic() - t0 < job.timeout:
        _fail_stale(study)
        trial = budget.claim(study)
        if trial is None:
            break
        ran += 1
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        try:
            with _heartbeat(storage, trial_id):
                value = objective(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
            log.info("trial %d pruned", trial.number)
        except (DivergedError, ValueError) as err:  # this trial's problem: the study goes on
            study.tell(trial, state=TrialState.FAIL)
            log.warning("trial %d failed: %s", trial.number, err)
        except BaseException:
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            raise
        else:
            study.tell(trial, value)
            log.info("trial %d finished: val_loss %.5g", trial.number, value)
        finally:
            gc.collect()
    return ran


def _worker_main(job: _Job) -> None:  # pragma: no cover - runs in spawned processes
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run_worker(job)


def _run_parallel(jobs: list[_Job]) -> list[str]:
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


# ----------------------------------------------------------------------------- outputs
def _record(params: dict, source: str, study: str | None, storage: str | None,
            best_value: float | None, n_trials: int,
            untuned_value: float | None = None) -> dict[str, Any]:
    return {
        "params": params,
        "source": source,
        "study": study,
        "storage": storage,
        "best_value": best_value,
        "untuned_value": untuned_value,
        "n_trials": n_trials,
    }


def _write_best(root: Path, name: str, record: dict[str, Any]) -> None:
    atomic_write_text(ExperimentPaths(Path(root), name).best_params, yaml.safe_dump(record, sort_keys=False))


def _plots(study: optuna.Study, folder: Path) -> list[Path]:
    """Optuna's matplotlib plots as PNGs; a plot that cannot be drawn is skipped, not fatal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    varied = [k for k in {k for t in done for k in t.params}
              if len({json.dumps(t.params.get(k), default=str) for t in done}) > 1]
    plots = {"optimization_history": ovm.plot_optimization_history}
    if len(done) >= 2 and len(varied) > 1:
        plots["param_importances"] = ovm.plot_param_importances
    if len(done) >= 2:
        plots["parallel_coordinate"] = ovm.plot_parallel_coordinate
    paths = []
    for label, plot in plots.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = plot(study)
            fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
            fig.set_size_inches(8, 5)
            fig.tight_layout()
            path = folder / f"{label}.png"
            fig.savefig(path, dpi=100)
            paths.append(path)
        except Exception as err:
            log.warning("skipping the %s plot: %s", label, err)
        finally:
            plt.close("all")
    return paths


def _write_tune_dir(root: Path, name: str, study: optuna.Study | None) -> list[str]:
    """reports/<name>/tune/: trials.csv (+ plots), swapped in atomically; returns file names."""
    import pandas as pd

    with atomic_dir(root / "reports" / name / "tune") as tmp:
        # Only what the trials found: their times and worker ids differ from run to run, and
        # the committed table must be the same for every clone (the study keeps the rest).
        attrs = ("number", "value", "params", "state", "user_attrs", "intermediate_values")
        df = study.trials_dataframe(attrs=attrs) if study is not None else pd.DataFrame()
        df = df.drop(columns=[c for c in df.columns if c.startswith("user_attrs_")
                              and c != "user_attrs_origin"])
        if df.empty:
            df = pd.DataFrame(columns=["number", "value", "state"])
        df.to_csv(tmp / "trials.csv", index=False)
        if study is not None:
            _plots(study, tmp)
        files = sorted(p.name for p in tmp.iterdir())
    return files


def _untuned(params: Params, name: str, root: Path, why: str) -> dict[str, Any]:
    record = _record(untuned_values(params, name), "untuned", None, None, None, 0)
    _write_best(root, name, record)
    _write_tune_dir(root, name, None)
    log.info("tune@%s: %s; wrote params.yaml's values", name, why)
    return record


# ----------------------------------------------------------------------------- stage body
def tune_experiment(
    params: Params,
    name: str,
    root: str | os.PathLike[str] = ".",
    *,
    storage: str | None = None,
    n_trials: int | None = None,
    workers: int | None = None,
    enqueue: list[dict[str, Any]] | tuple = (),
) -> dict[str, Any]:
    """Add `n_trials` trials to the experiment's study; write best_params.yaml and tune/.

    `enqueue` lists extra configurations (tunable -> value) to try first, after params.yaml's
    own values on a fresh study. Returns the best_params.yaml record.
    """
    root = Path(root).resolve()
    exp = params.experiment(name)
    cfg = params.tune_settings()
    n_new = cfg.n_trials if n_trials is None else int(n_trials)
    n_workers = cfg.workers if workers is None else int(workers)
    top_up = n_trials is None  # the stage: bring the study up to tune.n_trials finished trials
    if n_new < 0 or n_workers < 1:
        raise TuneError(f"need n_trials >= 0 and workers >= 1, got {n_new} and {n_workers}")
    if not cfg.enabled:
        return _untuned(params, name, root, "tune.enabled is false")
    if not cfg.space:
        return _untuned(params, name, root, "tune.space is empty")
    check_space(cfg.space, exp.model, exp.train)
    digest = read_digest(root / "data" / name)
    spec = resolve_storage(cfg, root, name, storage, n_workers)
    sname = study_name(params, name, digest)
    store = open_storage(spec)

    if n_new == 0:
        try:
            study = optuna.load_study(study_name=sname, storage=store)
        except KeyError:
            return _untuned(params, name, root, "n_trials is 0 and there is no study yet")
        if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            return _untuned(params, name, root, "n_trials is 0 and no trial has completed")
        return _finish(params, name, root, study, spec, tracking.RunHandle(None))

    tracker = tracking.setup(params.tracking, root)
    enabled = tracker.enabled
    _carry_over(spec, store, sname, root, name)
    study = optuna.create_study(study_name=sname, storage=store, direction="minimize",
                                load_if_exists=True)
    fresh = not study.trials
    if fresh:
        study.set_user_attr("experiment", name)
        study.set_user_attr("objective", objective_definition(params, name, digest))
        defaults = untuned_values(params, name)
        fixed = {k: v for k, v in defaults.items() if _contains(cfg.space[k], v)}
        if len(fixed) < len(defaults):
            log.warning("params.yaml values outside tune.space are sampled instead: %s",
                        sorted(set(defaults) - set(fixed)))
        study.enqueue_trial(fixed, user_attrs={"origin": "params.yaml"})
    fail_orphaned_trials(study)
    for values in enqueue:
        study.enqueue_trial(dict(values), user_attrs={"origin": "enqueued"})
    if top_up:
        n_new = max(0, n_new - len(study.get_trials(deepcopy=False, states=FINISHED)))
        if n_new == 0:
            log.info("tune@%s: study %s already holds %d finished trials", name, sname,
                     cfg.n_trials)
            return _finish(params, name, root, study, spec, tracking.RunHandle(None))

    n_existing = len(study.trials)
    n_workers = min(n_workers, n_new)
    # Other hosts may share a server storage: give this invocation its own sampler streams,
    # or two hosts starting together would propose the same configurations.
    shared = not spec.startswith(("sqlite", "journal:"))
    invocation = uuid.uuid4().hex[:12]
    salt = f"-{invocation}" if shared else ""
    p_hash = tracking.params_hash(
        {"tune": cfg.model_dump(mode="json", exclude={"experiments"}),
         "objective": objective_definition(params, name, digest)}
    )
    tags = {
        **tracking.standard_tags(STAGE, name, p_hash, digest, cwd=root),
        "study": sname,
        "optuna_storage": mask_url(spec),
        "invocation": invocation,
    }
    run_name = f"tune-{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    lock = Path(tempfile.gettempdir()) / f"audiorecon-tune-{invocation}.lock"
    with tracker.start_run(name, run_name, tags) as run:
        run.log_params({
            "tune": cfg.model_dump(mode="json", exclude={"storage", "experiments"}),
            "study": sname,
            "storage": mask_url(spec),
            "workers": n_workers,
            "trials_added": n_new,
        })
        base = _Job(
            params=params, name=name, root=str(root), storage=spec, study=sname,
            n_trials=n_new, invocation=invocation, lock=str(lock), timeout=cfg.timeout,
            seed=derive_seed(params.base.seed, name, f"tune-sampler-{n_existing}-0{salt}"),
            parallel=n_workers > 1 or shared, parent_run_id=run.run_id, tracking=enabled,
        )
        try:
            if n_workers == 1:
                run_worker(base)
                dead = []
            else:
                threads = max(1, (os.cpu_count() or 1) // n_workers)
                dead = _run_parallel([
                    replace(base, threads=threads, seed=derive_seed(
                        params.base.seed, name, f"tune-sampler-{n_existing}-{i}{salt}"))
                    for i in range(n_workers)
                ])
        finally:
            lock.unlink(missing_ok=True)
        study = optuna.load_study(study_name=sname, storage=store)
        fail_orphaned_trials(study)
        _check_budget(study, invocation, n_new, dead, cfg.timeout)
        return _finish(params, name, root, study, spec, run)


def _check_budget(study: optuna.Study, invocation: str, n_new: int, dead: list[str],
                  timeout: float | None) -> None:
    """Dead workers are fine if the others spent the budget; TuneError if trials are missing."""
    ran = [t for t in study.get_trials(deepcopy=False, states=_COUNTED)
           if t.user_attrs.get("invocation") == invocation]
    if not dead:
        return
    if len(ran) >= n_new or timeout is not None:
        failed = sorted(t.number for t in ran if t.state == TrialState.FAIL)
        log.warning("tuning worker(s) died (%s); the others ran the budget of %d trials "
                    "(FAIL: %s)", ", ".join(dead), n_new, failed or "none")
        return
    raise TuneError(
        f"tuning worker(s) failed ({', '.join(dead)}) after {len(ran)} of {n_new} trials; "
        "finished trials are kept in the study, re-run to continue"
    )


def _finish(params: Params, name: str, root: Path, study: optuna.Study, spec: str,
            run: tracking.RunHandle) -> dict[str, Any]:
    """Write the outputs from the study's best trial and log the summary to the parent run."""
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    if not done:
        raise TuneError(
            f"study {study.study_name}: no trial completed ({counts}); see the log above "
            "for why they failed (lower the learning-rate range?)"
        )
    best = study.best_trial
    untuned = [t.value for t in done if t.user_attrs.get("origin") == "params.yaml"]
    n_finished = sum(t.state in FINISHED for t in trials)
    record = _record(dict(best.params), "optuna", study.study_name, tracking.portable_uri(spec, root),
                     float(best.value), n_finished, float(untuned[0]) if untuned else None)
    files = _write_tune_dir(root, name, study)
    _write_best(root, name, record)
    folder = root / "reports" / name / "tune"
    run.log_params({"best": dict(best.params), "best_trial": best.number})
    run.log_metrics({"best_value": float(best.value), "n_trials": len(trials),
                     **{f"n_{k}": v for k, v in counts.items() if k != "waiting"}})
    for f in files:
        run.log_artifact(folder / f, "tune")
    run.log_artifact(ExperimentPaths(Path(root), name).best_params)
    log.info("tune@%s: best val_loss %.5g (trial %d of %d) %s", name, best.value, best.number,
             len(trials), best.params)
    return record
