"""The top level of params.yaml: experiments, tuning, tracking, quick caps."""

from __future__ import annotations

import difflib
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config.base import ParamsError, Strict
from pipeline.config.corpus import CorpusCfg
from pipeline.config.degradations import BandwidthDeg, Degradation, QuantizeDeg
from pipeline.config.model import MODEL_CFGS, TRAIN_TUNABLES, ModelCfg, TrainCfg, UnetCfg, tunable_names
from pipeline.config.signals import Signal, SineSignal


class Sizes(Strict):
    train: int = Field(ge=1, le=10_000_000)
    val: int = Field(ge=1, le=10_000_000)
    test: int = Field(ge=1, le=10_000_000)


# What evaluate scores per test frame (`experiments.E.metrics`): snr and si_sdr always fit;
# pesq (PESQ-WB) and stoi are speech metrics on whole frames resampled to 16 kHz; lsd is the
# log-spectral distance (lower is better), bandwidth's figure.
MetricName = Literal["snr", "si_sdr", "pesq", "stoi", "lsd"]
SPEECH_METRICS = ("pesq", "stoi")
SPEECH_MIN_RATE = 8000  # below it a frame has no speech band to score


class Experiment(Strict):
    sample_rate: int = Field(ge=100, le=192_000)
    frame_length: int = Field(ge=8, le=65_536)
    sizes: Sizes
    signal: Signal
    degradation: Degradation
    model: ModelCfg = UnetCfg()
    train: TrainCfg = TrainCfg()
    metrics: list[MetricName] = ["snr", "si_sdr"]

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("metrics: list at least one of snr, si_sdr, pesq, stoi, lsd")
        dup = sorted({m for m in v if v.count(m) > 1})
        if dup:
            raise ValueError(f"metrics: {', '.join(dup)} listed twice")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Experiment:
        speech = [m for m in self.metrics if m in SPEECH_METRICS]
        if speech and self.sample_rate < SPEECH_MIN_RATE:
            raise ValueError(f"metrics: {', '.join(speech)} need speech audio, sample_rate >= "
                             f"{SPEECH_MIN_RATE} (this experiment has {self.sample_rate})")
        d = self.degradation
        if isinstance(d, (QuantizeDeg, BandwidthDeg)) and d.factor >= self.frame_length:
            raise ValueError(f"degradation.factor ({d.factor}) must be < frame_length")
        s = self.signal
        if isinstance(s, SineSignal) and s.f_range[1] * 2 >= self.frame_length:
            raise ValueError("signal.f_range must stay below frame_length / 2 cycles per frame")
        return self

    @property
    def task(self) -> str:
        return self.degradation.kind


class SearchDim(Strict):
    """One dimension of an Optuna search space."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _shape(self) -> SearchDim:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("categorical dimensions need a non-empty `choices` list")
        elif self.low is None or self.high is None or self.low > self.high:
            raise ValueError("numeric dimensions need `low` <= `high`")
        elif self.log and self.low <= 0:
            raise ValueError("log-scaled dimensions need `low` > 0")
        return self


# Every name some architecture may tune (TuneCfg's first check, before experiments are known);
# what one experiment may tune is `tunable_names(model)`, checked per tuned experiment by
# Params._space_fits_models.
TUNABLE = {
    **{f: "model" for cls in MODEL_CFGS for f in cls.model_fields if f != "arch"},
    **{f: "train" for f in TRAIN_TUNABLES},
}


class TuneCfg(Strict):
    enabled: bool = True
    # the experiments whose train stage applies a study's best values; the others train on
    # params.yaml's values and have no tune stage (dvc.yaml's tune foreach lists the same)
    experiments: list[str] = []
    # the study size the tune stage brings each study up to (finished trials, resumed after a
    # kill); `audiorecon tune --n-trials N` adds N more for exploration
    n_trials: int = Field(20, ge=0, le=100_000)
    timeout: float | None = Field(None, gt=0)
    workers: int = Field(1, ge=1, le=64)
    sampler: Literal["tpe", "random"] = "tpe"
    pruner: Literal["median", "hyperband", "none"] = "median"
    epochs: int = Field(3, ge=1, le=1000)
    max_train_frames: int = Field(4096, ge=1)
    max_val_frames: int = Field(1024, ge=1)
    storage: str | None = None  # SQLAlchemy URL; OPTUNA_STORAGE / --storage override
    # train uses the study's best values only once it holds this many finished trials: the
    # best of a few short trials is noise, and short trials favour fast starters.
    min_trials: int = Field(20, ge=0, le=100_000)

    @model_validator(mode="after")
    def _counts(self) -> TuneCfg:
        if self.enabled and self.experiments and self.n_trials < self.min_trials:
            raise ValueError(f"n_trials ({self.n_trials}) is below min_trials ({self.min_trials}): "
                             "train would ignore the study; raise n_trials or lower min_trials")
        return self
    space: dict[str, SearchDim] = {}

    @field_validator("space")
    @classmethod
    def _known(cls, v: dict[str, SearchDim]) -> dict[str, SearchDim]:
        for name in v:
            if name not in TUNABLE:
                raise ValueError(f"unknown tunable `{name}`; allowed: {', '.join(TUNABLE)}")
        return v


# ----------------------------------------------------------------------------- top level
class Base(Strict):
    seed: int = Field(ge=0, lt=2**63)
    quick: bool = False


class QuickCfg(Strict):
    """Caps applied when base.quick is true: the tests' and smoke runs' budget."""

    train: int = Field(256, ge=1)
    val: int = Field(64, ge=1)
    test: int = Field(64, ge=1)
    epochs: int = Field(2, ge=1)
    n_trials: int = Field(2, ge=0)
    tune_epochs: int = Field(1, ge=1)


class TrackingCfg(Strict):
    uri: str | None = None  # MLFLOW_TRACKING_URI overrides; default sqlite:///<repo>/mlflow.db
    artifacts: str = "mlartifacts"
    required: bool = True


class Params(Strict):
    base: Base
    quick: QuickCfg = QuickCfg()
    tracking: TrackingCfg = TrackingCfg()
    tune: TuneCfg = TuneCfg()
    corpus: CorpusCfg = CorpusCfg()
    experiments: dict[str, Experiment]

    @field_validator("experiments")
    @classmethod
    def _names(cls, v: dict[str, Experiment]) -> dict[str, Experiment]:
        if not v:
            raise ValueError("list at least one experiment")
        for name in v:
            if not name or not all(c.isalnum() or c in "-_" for c in name):
                raise ValueError(f"experiment name `{name}` may use letters, digits, - and _ only")
        return v

    @model_validator(mode="after")
    def _tuned_exist(self) -> Params:
        unknown = [n for n in self.tune.experiments if n not in self.experiments]
        if unknown:
            raise ValueError(f"tune.experiments: {unknown} not in experiments "
                             f"({', '.join(self.experiments)})")
        return self

    @model_validator(mode="after")
    def _space_fits_models(self) -> Params:
        """Every space key must be a knob of each tuned experiment's own architecture: a key
        its builder does not read would make trials that differ in name only."""
        for name in self.tune.experiments:
            if name not in self.experiments:
                continue  # _tuned_exist names it
            model = self.experiments[name].model
            allowed = tunable_names(model)
            for key in self.tune.space:
                if key not in allowed:
                    raise ValueError(f"tune.space.{key} is not a tunable of experiment {name} "
                                     f"(arch {model.arch}); allowed: {', '.join(allowed)}")
        return self

    def tunes(self, name: str) -> bool:
        """Whether experiment `name` tunes: its train stage applies the study's best values."""
        return self.tune.enabled and name in self.tune.experiments

    def experiment(self, name: str) -> Experiment:
        """The experiment `name`, with the quick caps applied when base.quick is on."""
        if name not in self.experiments:
            close = difflib.get_close_matches(name, self.experiments, n=1)
            hint = f" (did you mean `{close[0]}`?)" if close else ""
            known = ", ".join(self.experiments)
            raise ParamsError(f"unknown experiment `{name}`{hint}; params.yaml lists: {known}")
        exp = self.experiments[name]
        if not self.base.quick:
            return exp
        q = self.quick
        sizes = Sizes(
            train=min(exp.sizes.train, q.train),
            val=min(exp.sizes.val, q.val),
            test=min(exp.sizes.test, q.test),
        )
        train = exp.train.model_copy(update={"epochs": min(exp.train.epochs, q.epochs)})
        return exp.model_copy(update={"sizes": sizes, "train": train})

    def tune_settings(self) -> TuneCfg:
        if not self.base.quick:
            return self.tune
        q = self.quick
        return self.tune.model_copy(
            update={
                "n_trials": min(self.tune.n_trials, q.n_trials),
                # the smoke study counts too, so quick runs exercise tuned training
                "min_trials": min(self.tune.min_trials, q.n_trials),
                "epochs": min(self.tune.epochs, q.tune_epochs),
                "max_train_frames": min(self.tune.max_train_frames, q.train),
                "max_val_frames": min(self.tune.max_val_frames, q.val),
            }
        )


