"""Where studies live: storage URLs, opening them, carrying a study over, dead workers.

The study lives outside DVC (``<repo>/optuna/<name>.db`` by default), so every invocation adds
trials to it instead of starting over.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import psutil
from optuna.trial import TrialState

from pipeline import tracking
from pipeline.config import TuneCfg
from pipeline.layout import RepoPaths
from pipeline.tuning.errors import TuneError

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

log = logging.getLogger("audiorecon.tune")

HEARTBEAT_S = 10  # AUDIORECON_TUNE_HEARTBEAT_S overrides (tests use 1)
GRACE_S = 30  # AUDIORECON_TUNE_GRACE_S overrides: a silent trial is FAIL after this


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


def _study_dir(root: str | os.PathLike[str]) -> Path:
    return RepoPaths(tracking.repo_root(root)).optuna


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
    folder = _study_dir(root)
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


def _engine_kwargs(spec: str) -> dict[str, Any]:
    """SQLite waits for a busy file; a server must fail in seconds, not the OS's TCP timeout."""
    if spec.startswith("sqlite:///"):
        db = spec.removeprefix("sqlite:///")
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        return {"connect_args": {"timeout": 60}}
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if spec.startswith(("postgresql", "mysql")):
        kwargs["connect_args"] = {"connect_timeout": 10}
    return kwargs


def _rdb(spec: str) -> BaseStorage:
    """An RDBStorage with Optuna's heartbeat, so ``optimize`` fails a killed worker's trial
    once its grace period is over, whichever host it ran on. Several processes starting on a
    fresh database (hosts on one server, or a reader beside the first worker on a new SQLite
    file) race to create Optuna's tables; the loser's attempt is retried."""
    from optuna.storages import RDBStorage

    interval, grace = heartbeat_settings()
    attempts = 3
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():  # heartbeat_interval is marked experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(spec, engine_kwargs=_engine_kwargs(spec),
                                  heartbeat_interval=interval, grace_period=grace,
                                  heartbeat_stale_trial_callback=_stale_trial)
        except Exception as err:
            # Unreachable servers and bad URLs fail the same way every time: no retry.
            racing = any(w in str(err) for w in ("already exists", "duplicate key",
                                                 "UNIQUE constraint"))
            if attempt == attempts - 1 or not racing:
                raise
            time.sleep(1 + attempt)
    raise AssertionError("unreachable")


def open_storage(spec: str) -> BaseStorage:
    """Open a journal file or any SQLAlchemy URL; TuneError (password masked) if unusable."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if spec.startswith("journal:"):
        path = Path(spec.removeprefix("journal:"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as err:
            raise TuneError(f"Optuna journal storage {path}: {err}") from None
    try:
        return _rdb(spec)
    except Exception as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise TuneError(
            f"cannot open Optuna storage {mask_url(spec)}: {_scrub(first, spec)} "
            "(expected an SQLAlchemy URL such as sqlite:///path.db or "
            "postgresql://user:pw@host/db, or journal:<file>)"
        ) from None


def carry_over(spec: str, store: BaseStorage, sname: str, root: Path, name: str) -> None:
    """Copy the study from the default SQLite file into a new default journal.

    The default storage turns into a journal the first time workers > 1; copying keeps that
    run a continuation of the single-worker study instead of a fresh start.
    """
    db = _study_dir(root) / f"{name}.db"
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


# ----------------------------------------------------------------------------- dead workers
def worker_attrs() -> dict[str, Any]:
    """What a trial records about its worker, so a later run on this host can tell whether the
    worker is gone: pid plus its creation time (a reused pid is another process)."""
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "pid_created": psutil.Process().create_time()}


def _alive(pid: int, created: float | None) -> bool:
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return created is None or abs(proc.create_time() - float(created)) < 0.005
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # someone else's live process
        return True


def fail_orphaned_trials(study: optuna.Study, tracker: tracking.Tracker = tracking.OFF) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker process on this host is gone.

    Journal storages have no heartbeat, and an RDB heartbeat only expires after its grace
    period; the pid/host each trial records lets a restart clean up at once.
    """
    host = socket.gethostname()
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("host") != host or pid is None:
            continue
        if _alive(int(pid), t.user_attrs.get("pid_created")):
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


def fail_stale(study: optuna.Study) -> None:
    """Fail dead workers' trials: other hosts' by Optuna's heartbeat (RDB storages; a no-op
    on journals), this host's by pid, without waiting for a grace period."""
    with warnings.catch_warnings():  # fail_stale_trials is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    fail_orphaned_trials(study)
