"""MLflow tracking: where runs go, a fail-fast backend check, and no-op-able run handles.

Every stage calls :func:`setup` before any expensive work. A required backend that is down stops
the stage with one :class:`TrackingError`; an optional one only warns, and the stage then runs
with tracking disabled (every :class:`RunHandle` method becomes a no-op, ``run_id`` is None) but
still writes its DVC outputs. A backend lost in the middle of a run (a server stopped while a
model trains) is treated the same way: TrackingError when required, else one warning and no
more logging in this process.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
from mlflow import MlflowClient

from pipeline.errors import UserError
from pipeline.tracking.tags import (  # noqa: F401  re-exported
    flatten_params,
    git_commit,
    params_hash,
    standard_tags,
)
from pipeline.tracking.uris import (  # noqa: F401  re-exported: tracking's public API
    is_local_backend,
    mask_passwords,
    portable_uri,
    public_uri,
    repo_root,
    resolve_uri,
    run_url,
)

if TYPE_CHECKING:
    import numpy as np

    from pipeline.config import TrackingCfg

log = logging.getLogger("audiorecon.tracking")

EXPERIMENT_PREFIX = "audiorecon/"
CHECK_TIMEOUT_S = 5
# When tracking is optional, a server that dies mid-run must not stall the stage for MLflow's
# default retries (minutes per call): these apply unless the user set the variables.
OPTIONAL_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}
# MLflow 3's UI opens an experiment by its kind; untagged ones land on the GenAI overview.
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


class TrackingError(UserError, RuntimeError):
    """The tracking backend is required but cannot be used."""


# ----------------------------------------------------------------------------- backend
@contextmanager
def _short_http_timeouts() -> Iterator[None]:
    """No retries and a short timeout while probing, so a dead server fails in seconds."""
    keys = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(CHECK_TIMEOUT_S),
    }
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(keys)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_DUPLICATE_KEY = re.compile(r"duplicate key|UNIQUE constraint|UniqueViolation", re.IGNORECASE)
def check_backend(uri: str, required: bool) -> bool:
    """Probe the backend once; True if usable, False (with a warning) if down and optional.

    Raises TrackingError when it is down and `required`, so the stage fails before training.
    """
    try:
        with _short_http_timeouts():
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
        return True
    except Exception as err:  # any failure mode (refused, DNS, auth, bad db) means "unusable"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        msg = mask_passwords(f"MLflow tracking backend {uri} unreachable: {first[:300]}")
        if required:
            raise TrackingError(f"{msg}; start it or set tracking.required: false") from err
        log.warning("%s; tracking disabled for this run (tracking.required is false)", msg)
        return False


# ----------------------------------------------------------------------------- sessions
@dataclass
class Tracker:
    """One stage's connection to the tracking backend (what :func:`setup` resolved).

    `enabled` turns false for good when an optional backend is lost mid-stage; every run
    handle made from this tracker then becomes a no-op.
    """

    enabled: bool = False
    required: bool = True
    uri: str | None = None
    artifacts: Path | None = None  # per-experiment artifact roots go below; local backends only

    def lost(self, what: str, err: BaseException) -> None:
        """The backend failed mid-stage: TrackingError if required, else warn, stop logging."""
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        msg = mask_passwords(f"MLflow tracking backend {self.uri} failed while {what}: "
                             f"{first[:300]}")
        if self.required:
            raise TrackingError(f"{msg}; no stage output was replaced. Restart the server and "
                                "re-run, or set tracking.required: false") from err
        if self.enabled:
            log.warning("%s; tracking disabled for the rest of this stage (tracking.required "
                        "is false)", msg)
        self.enabled = False

    def start_run(self, experiment: str, run_name: str, tags: Mapping[str, str] | None = None,
                  nested: bool = False, parent_run_id: str | None = None):
        """A run in ``audiorecon/<experiment>`` (see :func:`_run`)."""
        return _run(self, experiment, run_name, tags, nested, parent_run_id)


OFF = Tracker()  # tracking disabled: what tests and dry runs pass


def setup(cfg: TrackingCfg | None, root: str | os.PathLike[str] = ".") -> Tracker:
    """Resolve the URI, check the backend and point mlflow at it."""
    uri = resolve_uri(cfg, root)
    required = True if cfg is None else cfg.required
    enabled = check_backend(uri, required)
    artifacts_dir = cfg.artifacts if cfg is not None else "mlartifacts"
    if enabled and not required:
        for key, value in OPTIONAL_HTTP.items():
            os.environ.setdefault(key, value)
    artifacts = (repo_root(root) / artifacts_dir).resolve() if is_local_backend(uri) else None
    if enabled:
        # mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI, which would then outrank
        # params.yaml in the next setup() of this process (tests, tune trials): undo that.
        saved = os.environ.get("MLFLOW_TRACKING_URI")
        mlflow.set_tracking_uri(uri)
        if saved is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved
    return Tracker(enabled=enabled, required=required, uri=uri, artifacts=artifacts)


def experiment_name(experiment: str) -> str:
    return f"{EXPERIMENT_PREFIX}{experiment}"


def get_or_create_experiment(experiment: str, artifacts: Path | None = None) -> str:
    """Id of ``audiorecon/<experiment>``, created with artifacts in ``<repo>/mlartifacts/<exp>``.

    Tolerates a concurrent creator (queued DVC runs) and restores a soft-deleted experiment
    rather than failing on it.
    """
    client = MlflowClient()
    name = experiment_name(experiment)
    exp = client.get_experiment_by_name(name)
    if exp is None:
        location = None
        if artifacts is not None:
            location = (artifacts / experiment).as_uri()
        try:
            return client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_TAGS)
        except mlflow.exceptions.MlflowException:
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp.lifecycle_stage == "deleted":
        client.restore_experiment(exp.experiment_id)
    for key, value in EXPERIMENT_TAGS.items():  # experiments made before the tag existed
        if exp.tags.get(key) != value:
            client.set_experiment_tag(exp.experiment_id, key, value)
    return exp.experiment_id


# ----------------------------------------------------------------------------- runs
class RunHandle:
    """Logging calls for one run; every method is a no-op when tracking is disabled.

    A call that fails because the backend went away goes through :meth:`Tracker.lost`.
    """

    def __init__(self, run: mlflow.ActiveRun | None, tracker: Tracker = OFF):
        self._run, self._tracker = run, tracker

    @property
    def run_id(self) -> str | None:
        return None if self._run is None else self._run.info.run_id

    @property
    def active(self) -> bool:
        return self._run is not None and self._tracker.enabled

    def _call(self, what: str, fn, *args, **kwargs) -> Any:
        """fn's result, or None when tracking is off or the backend was lost."""
        if not self.active:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            self._tracker.lost(what, err)
            return None

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._call("logging params", mlflow.log_params, flatten_params(params))

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None,
                    model_id: str | None = None, dataset: Any = None) -> None:
        """`model_id` and `dataset` link the values to a logged model and a logged dataset."""
        links = {k: v for k, v in (("model_id", model_id), ("dataset", dataset)) if v is not None}
        self._call("logging metrics", mlflow.log_metrics,
                   {k: float(v) for k, v in metrics.items()}, step=step, **links)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._call("setting tags", mlflow.set_tags, dict(tags))

    def log_dict(self, data: Any, artifact_file: str) -> None:
        self._call(f"logging {artifact_file}", mlflow.log_dict, data, artifact_file)

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        self._call(f"logging {Path(path).name}", mlflow.log_artifact, str(path), artifact_path)

    def log_dataset(
        self,
        features: np.ndarray,
        targets: np.ndarray,
        digest: str,
        name: str,
        source: str | os.PathLike[str],
        context: str = "training",
    ) -> Any:
        """Record the frames a model saw: MLflow stores the digest, shape and schema, not data.
        Returns the MLflow dataset (None when tracking is off), for metrics linked to it.

        MLflow's dataset digest column holds 36 characters, so the sha256 is cut to 32 hex
        digits there; the full digest travels in the `data_digest` tag.
        """
        if not self.active:
            return None
        with warnings.catch_warnings():
            # A local path matches both the "" and "file" source classes; either is right.
            warnings.filterwarnings("ignore", message=".*interpreted in multiple ways.*")
            ds = mlflow.data.from_numpy(
                features,
                targets=targets,
                source=str(Path(source).resolve()),
                name=name,
                digest=digest[:32],
            )
        def log_input() -> None:
            try:
                mlflow.log_input(ds, context=context)
            except mlflow.exceptions.MlflowException as err:
                # Two runs (queued experiments) logging the same new dataset at once race on
                # the server's dataset key; the loser finds the row on a second try.
                if not _DUPLICATE_KEY.search(str(err)):
                    raise
                mlflow.log_input(ds, context=context)

        self._call("logging the dataset", log_input)
        return ds if self.active else None

    def log_keras_model(self, model: Any, example: np.ndarray, name: str = "model") -> str | None:
        """Log `model` with a signature; the input example goes in as a plain run artifact.

        ``log_model(input_example=...)`` crashes in MLflow 3.17's keras flavor (it writes the
        example into a folder it has not created yet), hence the separate artifact. The time
        axis is left free (-1) because the nets accept frames of any length.
        """
        if not self.active:
            return None
        import numpy as np
        from mlflow.models import ModelSignature
        from mlflow.types import Schema, TensorSpec

        example = np.asarray(example, dtype=np.float32)
        spec = TensorSpec(np.dtype(np.float32), (-1, -1, 1))
        signature = ModelSignature(inputs=Schema([spec]), outputs=Schema([spec]))
        info = self._call("logging the model", mlflow.keras.log_model, model, name=name,
                          signature=signature, pip_requirements=_pip_requirements())
        self.log_dict({"inputs": example.tolist()}, "input_example.json")
        return getattr(info, "model_id", None)


def _pip_requirements() -> list[str]:
    """Pinned from the running env: MLflow's own inference reloads the model in a subprocess."""
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for pkg in ("keras", "tensorflow-cpu", "tensorflow", "numpy"):
        try:
            reqs.append(f"{pkg}=={version(pkg)}")
        except PackageNotFoundError:
            continue
    if any(r.startswith("tensorflow-cpu==") for r in reqs):
        reqs = [r for r in reqs if not r.startswith("tensorflow==")]
    return reqs


@contextmanager
def _run(tracker: Tracker, experiment: str, run_name: str, tags: Mapping[str, str] | None,
         nested: bool, parent_run_id: str | None) -> Iterator[RunHandle]:
    """A run in ``audiorecon/<experiment>``; yields a no-op handle when tracking is disabled.

    An exception inside the block marks the run FAILED (KILLED for Ctrl-C) and propagates.
    """
    if not tracker.enabled:
        yield RunHandle(None)
        return
    try:
        exp_id = get_or_create_experiment(experiment, tracker.artifacts)
        active = mlflow.start_run(
            experiment_id=exp_id,
            run_name=run_name,
            tags=dict(tags or {}),
            nested=nested,
            parent_run_id=parent_run_id,
        )
    except Exception as err:
        tracker.lost(f"starting run {run_name!r}", err)
        yield RunHandle(None)
        return
    try:
        yield RunHandle(active, tracker)
    except BaseException as exc:
        try:  # the stage's own error is the one to report; a dead backend must not delay it
            with _short_http_timeouts():
                mlflow.end_run("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        except Exception as err:
            log.warning("could not mark run %s failed: %s", active.info.run_id, err)
        raise
    if not tracker.enabled:  # lost mid-run (optional tracking): drop the run, keep the stage
        with suppress(Exception), _short_http_timeouts():
            mlflow.end_run("FAILED")
        return
    try:
        mlflow.end_run("FINISHED")
    except Exception as err:
        tracker.lost(f"ending run {run_name!r}", err)
