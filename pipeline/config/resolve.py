"""Resolve once: params.yaml plus one experiment name become the frozen value a stage runs on.

The command line validates params.yaml, then calls :func:`resolve`; the stage receives the
:class:`Resolved` value (configs with the quick caps and, for training, the tuned values
applied; seeds; paths) and nothing below it looks at params.yaml again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from pipeline.config.base import ParamsError
from pipeline.config.model import ModelCfg, TrainCfg, tunable_names
from pipeline.config.params import Experiment, Params, TrackingCfg, TuneCfg
from pipeline.layout import BestParams, ConfigSource, DataError, ExperimentPaths


def derive_seed(base_seed: int, name: str, purpose: str) -> int:
    """A 32-bit seed from base.seed, the experiment name and the purpose (train, tune, ...).

    Stable across processes (no Python hash randomisation) and independent of the data
    generator's (experiment, split) streams.
    """
    words = [int.from_bytes(hashlib.sha256(s.encode()).digest()[:8], "big") for s in (name, purpose)]
    return int(np.random.SeedSequence([base_seed, *words]).generate_state(1)[0])


def apply_overrides(model: ModelCfg, train: TrainCfg, values: dict[str, Any],
                    source: str) -> tuple[ModelCfg, TrainCfg]:
    """`model` and `train` with tunable `values` applied (a study's best trial, or one trial).

    The one place tuned values are merged: each name must be a field the experiment's model
    config or train config has, and the result is validated again.
    """
    model_fields, allowed = type(model).model_fields, tunable_names(model)
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ParamsError(f"{source}: unknown tunable(s) {unknown} for the {model.arch} model; "
                          f"allowed: {', '.join(allowed)}")
    on_model = {k: v for k, v in values.items() if k in model_fields}
    on_train = {k: v for k, v in values.items() if k not in model_fields}
    try:
        if on_model:
            model = type(model).model_validate({**model.model_dump(), **on_model})
        if on_train:
            train = TrainCfg.model_validate({**train.model_dump(), **on_train})
    except ValidationError as err:
        e = err.errors()[0]
        raise ParamsError(f"{source}: {'.'.join(map(str, e['loc']))}: {e['msg']}") from None
    return model, train


@dataclass(frozen=True)
class Tuning:
    """Where a run's tunable values came from (meta.json's config_source, MLflow tags)."""

    tuned: bool = False
    record: ConfigSource = ConfigSource()
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Resolved:
    """One experiment, ready to run: what a stage receives instead of (Params, name, root)."""

    name: str
    exp: Experiment  # quick caps applied; exp.model / exp.train are params.yaml's own values
    model: ModelCfg  # what to build: exp.model with any tuned values applied
    train: TrainCfg
    paths: ExperimentPaths
    base_seed: int
    quick: bool
    tracking: TrackingCfg
    tuning: Tuning = Tuning()
    tune: TuneCfg | None = None  # the tune stage's settings (quick caps applied)

    def seed(self, purpose: str) -> int:
        return derive_seed(self.base_seed, self.name, purpose)


def _tuned(params: Params, name: str, exp: Experiment, paths: ExperimentPaths
           ) -> tuple[ModelCfg, TrainCfg, Tuning]:
    """params.yaml's values, or for an experiment in tune.experiments its study's best ones
    once the study holds tune.min_trials finished trials."""
    if not params.tunes(name):
        return exp.model, exp.train, Tuning()
    rel = paths.relative(paths.best_params)
    if not paths.best_params.is_file():
        raise DataError(f"{rel} is missing, and tune.experiments lists {name}: run "
                        f"`dvc repro tune@{name}` (or take {name} out of tune.experiments)")
    best = BestParams.read(paths.best_params)
    record = ConfigSource(study=best.study, best_value=best.best_value,
                          untuned_value=best.untuned_value)
    min_trials = params.tune_settings().min_trials
    if best.source == "optuna" and best.n_trials is not None and best.n_trials < min_trials:
        note = (f"params.yaml (study {best.study} has {best.n_trials} of the {min_trials} "
                "finished trials tune.min_trials asks for before its values are used)")
        return exp.model, exp.train, Tuning(record=record.model_copy(update={"source": note}))
    model, train = apply_overrides(exp.model, exp.train, best.params, rel)
    record = record.model_copy(update={"source": best.source or "optuna", "path": rel})
    return model, train, Tuning(tuned=bool(best.params) and best.source != "untuned",
                                record=record, overrides=dict(best.params))


def resolve(params: Params, name: str, root: str | Path = ".", *, tuned: bool = False,
            tuning: bool = False) -> Resolved:
    """Experiment `name` of validated `params`, under repository root `root`.

    `tuned` (the train stage) applies the study's best values from best_params.yaml;
    `tuning` (the tune stage) adds the tune settings. Either reads only what that stage
    declares in dvc.yaml (tests/integration/test_params_reads.py checks).
    """
    exp = params.experiment(name)  # ParamsError for unknown names, before anything else
    paths = ExperimentPaths(Path(root).resolve(), name)
    model, train, how = _tuned(params, name, exp, paths) if tuned else (exp.model, exp.train,
                                                                         Tuning())
    return Resolved(name=name, exp=exp, model=model, train=train, paths=paths,
                    base_seed=params.base.seed, quick=params.base.quick,
                    tracking=params.tracking, tuning=how,
                    tune=params.tune_settings() if tuning else None)
