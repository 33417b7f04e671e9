"""What a trial is: the search space, the study's identity, sampler/pruner and the objective.

The study name carries a hash of everything that defines the objective (data, space, budget
per trial, fixed config), so an edit that makes old trials incomparable starts a fresh study
instead of mixing them.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import optuna

from pipeline import tracking
from pipeline.config import ModelCfg, Resolved, SearchDim, TrainCfg, TuneCfg
from pipeline.config.resolve import apply_overrides
from pipeline.nn.fit import fit, set_determinism
from pipeline.tuning.errors import DivergedError, TuneError
from pipeline.tuning.storage import worker_attrs

if TYPE_CHECKING:
    from pipeline.tuning.runner import Job

OBJECTIVE_VERSION = 1  # bump when the objective's code changes meaning: starts fresh studies
PRUNER_STARTUP = 2
TPE_STARTUP = 5


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
    """Reject, before any trial runs, spaces Optuna or the config schema would reject in every
    trial. The params schema checks each dimension's shape; the end points and choices are
    checked here through :func:`apply_overrides`, the merge every trial uses."""
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
        for v in values:
            v = int(v) if dim.type == "int" else v
            try:
                apply_overrides(model, train, {key: v}, f"{where}: value {v!r}")
            except ValueError as err:
                raise TuneError(str(err)) from None


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


def contains(dim: SearchDim, value: Any) -> bool:
    if dim.type == "categorical":
        return value in dim.choices
    if not dim.low <= value <= dim.high:
        return False
    step = dim.step or (1 if dim.type == "int" else None)
    return step is None or math.isclose((value - dim.low) / step, round((value - dim.low) / step))


def untuned_values(r: Resolved) -> dict[str, Any]:
    """params.yaml's own values of the tunables in the space (the 'no tuning' answer)."""
    model = r.exp.model
    return {key: getattr(model if key in type(model).model_fields else r.exp.train, key)
            for key in r.tune.space}


# ----------------------------------------------------------------------------- study identity
def objective_definition(r: Resolved, digest: str) -> dict[str, Any]:
    """Everything that makes trial values comparable; its hash names the study."""
    cfg, tuned = r.tune, set(r.tune.space)
    return {
        "version": OBJECTIVE_VERSION,
        "metric": "min val_loss",
        "data_digest": digest,
        "space": {k: cfg.space[k].model_dump(mode="json") for k in sorted(cfg.space)},
        "epochs": cfg.epochs,
        "max_train_frames": cfg.max_train_frames,
        "max_val_frames": cfg.max_val_frames,
        "seed": r.seed("train"),
        "model": {k: v for k, v in r.exp.model.model_dump(mode="json").items() if k not in tuned},
        "train": {
            k: v
            for k, v in r.exp.train.model_dump(mode="json").items()
            if k not in tuned and k != "epochs"  # trials run tune.epochs, not train.epochs
        },
    }


def study_name(r: Resolved, digest: str) -> str:
    blob = json.dumps(objective_definition(r, digest), sort_keys=True)
    return f"audiorecon-{r.name}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


# ----------------------------------------------------------------------------- samplers & pruners
def make_sampler(cfg: TuneCfg, seed: int, parallel: bool) -> optuna.samplers.BaseSampler:
    if cfg.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():  # constant_liar is marked experimental
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


# ----------------------------------------------------------------------------- objective
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


def _train(r: Resolved, trial: optuna.Trial, values: dict[str, Any], arrays, run,
           curve: dict[str, list[float]]) -> float:
    """Fit one trial's configuration; its best val_loss, DivergedError on NaN/inf."""
    model_cfg, train_cfg = apply_overrides(r.exp.model, r.exp.train, values,
                                           f"trial {trial.number}")
    set_determinism(train_cfg.jit_compile)  # a re-run proposes the same trials
    with warnings.catch_warnings():  # Keras' note on shuffle=True with a Dataset
        warnings.filterwarnings("ignore", message=r"`shuffle=True` was passed")
        fit(model_cfg, train_cfg, arrays[0], arrays[1], seed=r.seed("train"),
            epochs=r.tune.epochs, callbacks=[_pruning_callback(trial, run, curve)])
    losses = curve.get("loss", []) + curve.get("val_loss", [])
    if not losses or not all(math.isfinite(v) for v in losses):
        raise DivergedError(f"trial {trial.number}: loss became NaN/inf with {values}")
    return min(curve["val_loss"])


def make_objective(job: Job, arrays, tracker: tracking.Tracker) -> Callable[[optuna.Trial], float]:
    """The function ``study.optimize`` calls: tags the trial with its invocation and worker,
    trains, and logs it as a nested MLflow run of the invocation's parent run."""
    import keras

    r, attrs = job.r, worker_attrs()

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("invocation", job.invocation)
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        values = suggest(trial, r.tune.space)
        tags = {"stage": "tune-trial", "study": job.study, "trial_number": str(trial.number)}
        t0, curve, state = time.perf_counter(), {}, "FAIL"
        outcome: BaseException | None = None
        with tracker.start_run(r.name, f"trial-{trial.number}", tags, nested=True,
                               parent_run_id=job.parent_run_id) as run:
            if run.run_id:
                trial.set_user_attr("mlflow_run_id", run.run_id)
            run.log_params(values)
            try:
                value = _train(r, trial, values, arrays, run, curve)
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
