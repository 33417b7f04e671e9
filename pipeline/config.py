"""The params.yaml schema: the only module that knows its shape.

Every stage calls :func:`load_params` first, so a bad value stops the run with one message naming the
key path and the allowed range before anything is written.
"""

from __future__ import annotations

import difflib
import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

PARAMS_FILE = "params.yaml"


class ParamsError(ValueError):
    """A params.yaml problem, phrased for the person who has to fix it."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def __getattribute__(self, name: str) -> Any:
        # Only while a test records reads (record_reads): costs one list check otherwise.
        if _RECORDERS and not name.startswith("_"):
            wrapped = _note_read(self, name)
            if wrapped is not None:
                return wrapped
        return super().__getattribute__(name)


# ----------------------------------------------------------------------------- read recording
# The dvc.yaml test runs each stage inside record_reads() and checks that every params key the
# stage read is one its `params:` list declares. Reads are keyed by the dotted path of the
# object read from, indexed once from the validated Params (derived copies are not params).
_RECORDERS: list[set[str]] = []
_PATHS: dict[int, tuple[weakref.ref, str]] = {}


def _note_read(obj: BaseModel, name: str) -> Any:
    """Record a field read; for model_dump, return a wrapper recording the dumped fields."""
    entry = _PATHS.get(id(obj))
    if entry is None or entry[0]() is not obj:
        return None
    path = entry[1]
    if name in ("model_dump", "model_dump_json"):
        dump = BaseModel.__getattribute__(obj, name)

        def recorded(*args: Any, include: Any = None, exclude: Any = None, **kwargs: Any) -> Any:
            for field in type(obj).model_fields:
                if (include is None or field in include) and (exclude is None
                                                               or field not in exclude):
                    _record(f"{path}.{field}" if path else field)
            return dump(*args, include=include, exclude=exclude, **kwargs)

        return recorded
    if name in type(obj).model_fields:
        value = object.__getattribute__(obj, name)
        if not isinstance(value, (BaseModel, dict)):  # a block: only what is read from it counts
            _record(f"{path}.{name}" if path else name)
    return None


def _record(key: str) -> None:
    for reads in _RECORDERS:
        reads.add(key)


def _index(obj: BaseModel, path: str) -> None:
    _PATHS[id(obj)] = (weakref.ref(obj), path)
    for name in type(obj).model_fields:
        value = object.__getattribute__(obj, name)
        sub = f"{path}.{name}" if path else name
        if isinstance(value, BaseModel):
            _index(value, sub)
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, BaseModel):
                    _index(item, f"{sub}.{key}")


@contextmanager
def record_reads(params: Params) -> Iterator[set[str]]:
    """Collect the dotted params keys read from `params` inside the block (tests only)."""
    _index(params, "")
    reads: set[str] = set()
    _RECORDERS.append(reads)
    try:
        yield reads
    finally:
        _RECORDERS.remove(reads)


def _range(lo: float, hi: float):
    """Validator factory for `[low, high]` pairs constrained to [lo, hi]."""

    def check(v: tuple[float, float]) -> tuple[float, float]:
        a, b = v
        if not (lo <= a <= b <= hi):
            raise ValueError(f"must be [low, high] with {lo} <= low <= high <= {hi}, got [{a}, {b}]")
        return v

    return check


FloatPair = tuple[float, float]


# ----------------------------------------------------------------------------- signals
class SineSignal(Strict):
    """The seed project's frames: one sinusoid, integer cycles per frame."""

    family: Literal["sine"] = "sine"
    f_range: tuple[int, int] = (1, 9)
    amplitude: FloatPair = (0.05, 1.0)
    phase: Literal["zero", "random"] = "zero"

    _f = field_validator("f_range")(_range(0, 1e6))
    _a = field_validator("amplitude")(_range(0.0, 1.0))


class MultitoneSignal(Strict):
    family: Literal["multitone"] = "multitone"
    n_tones: tuple[int, int] = (2, 6)
    band_hz: FloatPair = (60.0, 4000.0)
    amplitude: FloatPair = (0.05, 0.9)

    _n = field_validator("n_tones")(_range(1, 64))
    _b = field_validator("band_hz")(_range(0.0, 1e6))
    _a = field_validator("amplitude")(_range(0.0, 1.0))


class HarmonicSignal(Strict):
    """Audio-like frames: voiced harmonic tones with envelopes and vibrato, plus noisy bursts."""

    family: Literal["harmonic"] = "harmonic"
    f0_hz: FloatPair = (70.0, 900.0)
    n_harmonics: tuple[int, int] = (3, 30)
    rolloff_db_per_octave: FloatPair = (3.0, 15.0)
    vibrato_cents: FloatPair = (0.0, 80.0)
    glide_octaves: FloatPair = (-0.3, 0.3)
    noise_burst_prob: float = Field(0.25, ge=0.0, le=1.0)
    silence_prob: float = Field(0.03, ge=0.0, le=1.0)
    level_db: FloatPair = (-30.0, -3.0)

    _n = field_validator("n_harmonics")(_range(1, 200))
    _f0 = field_validator("f0_hz")(_range(1.0, 1e5))
    _l = field_validator("level_db")(_range(-120.0, 0.0))


class WavSignal(Strict):
    """Frames cut from a folder of the user's own recordings."""

    family: Literal["wav"] = "wav"
    folder: str = "recordings"
    min_rms_db: float = Field(-50.0, le=0.0)


Signal = Annotated[
    SineSignal | MultitoneSignal | HarmonicSignal | WavSignal, Field(discriminator="family")
]


# ----------------------------------------------------------------------------- degradations
class NoiseDeg(Strict):
    """Gaussian noise (per-frame std, or per-frame SNR) plus sparse ±a impulses."""

    kind: Literal["noise"] = "noise"
    std: FloatPair | None = None
    snr_db: FloatPair | None = None
    impulse_prob: FloatPair = (0.0, 1e-4)
    impulse_amp: FloatPair = (0.0, 0.5)

    _s = field_validator("std")(lambda v: v if v is None else _range(0.0, 10.0)(v))
    _r = field_validator("snr_db")(lambda v: v if v is None else _range(-60.0, 120.0)(v))
    _p = field_validator("impulse_prob")(_range(0.0, 1.0))
    _a = field_validator("impulse_amp")(_range(0.0, 10.0))

    @model_validator(mode="after")
    def _one_level(self) -> NoiseDeg:
        if (self.std is None) == (self.snr_db is None):
            raise ValueError("set exactly one of `std` or `snr_db`")
        return self


class QuantizeDeg(Strict):
    """Time quantization: sample-and-hold, y[n] = x[K * floor(n / K)]."""

    kind: Literal["quantize"] = "quantize"
    factor: int = Field(10, ge=1, le=4096)


class BitdepthDeg(Strict):
    kind: Literal["bitdepth"] = "bitdepth"
    bits: int = Field(6, ge=1, le=24)
    dither: bool = False


class BandwidthDeg(Strict):
    """Kuleshov et al.: Chebyshev I low-pass, decimate by r, cubic spline back."""

    kind: Literal["bandwidth"] = "bandwidth"
    factor: int = Field(4, ge=2, le=64)
    order: int = Field(8, ge=1, le=16)
    ripple_db: float = Field(0.05, gt=0.0, le=3.0)


class ClipDeg(Strict):
    kind: Literal["clip"] = "clip"
    level: FloatPair = (0.3, 0.8)

    _l = field_validator("level")(_range(0.01, 1.0))


class DropoutDeg(Strict):
    kind: Literal["dropout"] = "dropout"
    gap_prob: FloatPair = (0.0, 0.01)
    gap_length: tuple[int, int] = (8, 64)

    _p = field_validator("gap_prob")(_range(0.0, 1.0))
    _g = field_validator("gap_length")(_range(1, 1e6))


Degradation = Annotated[
    NoiseDeg | QuantizeDeg | BitdepthDeg | BandwidthDeg | ClipDeg | DropoutDeg,
    Field(discriminator="kind"),
]


# ----------------------------------------------------------------------------- models & training
class ModelCfg(Strict):
    arch: Literal["unet", "seed_encoder_decoder", "mlp", "stft_mask"] = "unet"
    depth: int = Field(4, ge=1, le=8)
    filters: int = Field(32, ge=1, le=4096)  # conv channels; units per layer for mlp/stft_mask
    kernel_size: int = Field(9, ge=1, le=129)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    batch_norm: bool = False
    residual: bool = True
    normalize: bool = True  # run the net on unit-RMS frames, scale back: level-independent
    n_fft: int = Field(512, ge=16, le=16_384)  # stft_mask only: window length
    # stft_mask only: windows per sample (hop n_fft / stft_overlap); more overlap averages more
    # mask estimates per sample at proportionally more compute
    stft_overlap: Literal[2, 4, 8, 16] = 4
    # stft_mask only: also feed each bin's phase advance between frames (tells partials from noise)
    phase_features: bool = False
    mask: Literal["real", "complex"] = "real"  # stft_mask only: complex also turns the phase
    # stft_mask only: upper bound of the real mask; above 1 it can restore bins that the noise
    # cancelled in part (a phase-sensitive mask's optimum exceeds 1 there)
    mask_max: float = Field(1.0, ge=1.0, le=4.0)
    # stft_mask only: the mask head also sees the input features (each bin's own level), not
    # only the `filters`-wide summary of the spectrum
    feature_skip: bool = False
    # stft_mask only: add a learned projection of the input features' and of each hidden
    # layer's average over the whole frame to every STFT frame: steady partials stand out of
    # the noise averaged over all frames, which a few-frame kernel cannot see. It also learns
    # a generator's one-voice-per-frame statistics: better on synthetic frames, worse on speech
    # and music (README, Results)
    global_context: bool = False
    # unet only: add the input filtered by the training set's Wiener FIR (odd taps; 0 = off)
    # as a second channel; it restores deterministically attenuated bands the net learns slowly
    prefilter_taps: int = Field(0, ge=0, le=4095)
    prefilter_max_gain_db: float = Field(30.0, ge=0.0, le=80.0)
    # fade the prefiltered channel to the raw input over this many samples at each frame end,
    # where a long filter only sees half its support (0: no fade)
    prefilter_ramp: int = Field(0, ge=0, le=65_536)

    @field_validator("n_fft")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        if v & (v - 1):
            raise ValueError(f"must be a power of two (got {v})")
        return v

    @field_validator("prefilter_taps")
    @classmethod
    def _odd_or_off(cls, v: int) -> int:
        if v and v % 2 == 0:
            raise ValueError(f"must be odd (centred on lag 0) or 0 for off (got {v})")
        return v

    @model_validator(mode="after")
    def _prefilter_needs_unet(self) -> ModelCfg:
        if self.prefilter_taps and self.arch != "unet":
            raise ValueError(f"prefilter_taps works with arch unet only (arch is {self.arch})")
        return self


class TrainCfg(Strict):
    epochs: int = Field(20, ge=1, le=10_000)
    batch_size: int = Field(64, ge=1, le=65_536)
    learning_rate: float = Field(1e-3, gt=0.0, le=1.0)
    loss: Literal["mse", "l1", "snr"] = "mse"
    stft_weight: float = Field(0.0, ge=0.0, le=100.0)
    patience: int = Field(4, ge=1, le=1000)
    # Halve the learning rate after this many epochs without a better val_loss (null: constant).
    lr_patience: int | None = Field(None, ge=1, le=1000)
    # Exploration only: stop after the epoch that crosses this many seconds. Results then
    # depend on machine load; meta.json and MLflow say so. No default experiment sets it.
    max_seconds: float | None = Field(None, gt=0)
    # noise degradations only: every epoch, pair each clean frame with another training frame's
    # noise, rescaled to its own noise level (same SNRs, fresh combinations: less overfitting)
    remix_noise: bool = False
    # plateau: constant, halved by lr_patience if set; cosine: decays to 5% over the run's
    # optimizer steps (epochs x batches per epoch)
    lr_schedule: Literal["plateau", "cosine"] = "plateau"
    # Polyak averaging: validate, keep and save the exponential moving average of the weights
    # (this momentum per step) instead of the last step's weights (null: off)
    ema_momentum: float | None = Field(None, gt=0.0, lt=1.0)
    # compile the training step with XLA. Keras leaves it off on CPU-only machines; it fuses
    # stft_mask's STFT and elementwise ops (1.6-1.9x the steps per second on 2 cores); the
    # U-Net's convolutions were no faster
    jit_compile: bool = False

    @model_validator(mode="after")
    def _one_schedule(self) -> TrainCfg:
        if self.lr_schedule == "cosine" and self.lr_patience is not None:
            raise ValueError("lr_patience halves the rate on plateaus, lr_schedule cosine sets it "
                             "every step: set lr_patience to null or use lr_schedule plateau")
        return self


class Sizes(Strict):
    train: int = Field(ge=1, le=10_000_000)
    val: int = Field(ge=1, le=10_000_000)
    test: int = Field(ge=1, le=10_000_000)


class Experiment(Strict):
    sample_rate: int = Field(ge=100, le=192_000)
    frame_length: int = Field(ge=8, le=65_536)
    sizes: Sizes
    signal: Signal
    degradation: Degradation
    model: ModelCfg = ModelCfg()
    train: TrainCfg = TrainCfg()

    @model_validator(mode="after")
    def _consistent(self) -> Experiment:
        d = self.degradation
        if isinstance(d, (QuantizeDeg, BandwidthDeg)) and d.factor >= self.frame_length:
            raise ValueError(f"degradation.factor ({d.factor}) must be < frame_length")
        if self.train.remix_noise and d.kind != "noise":
            raise ValueError(f"train.remix_noise needs an additive noise degradation (kind is {d.kind})")
        s = self.signal
        if isinstance(s, SineSignal) and s.f_range[1] * 2 >= self.frame_length:
            raise ValueError("signal.f_range must stay below frame_length / 2 cycles per frame")
        return self

    @property
    def task(self) -> str:
        return self.degradation.kind


# ----------------------------------------------------------------------------- tuning
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


TUNABLE = {
    "learning_rate": "train",
    "batch_size": "train",
    "loss": "train",
    "stft_weight": "train",
    "depth": "model",
    "filters": "model",
    "kernel_size": "model",
    "n_fft": "model",
    "dropout": "model",
    "batch_norm": "model",
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


# ----------------------------------------------------------------------------- loading
_FIELDS_BY_MODEL: dict[str, list[str]] = {}


def _suggest(loc: tuple[Any, ...]) -> str:
    """A 'did you mean' for a misspelt key, from the sibling names the schema allows."""
    key = str(loc[-1])
    candidates: set[str] = set()
    for model in (Params, Base, QuickCfg, TrackingCfg, TuneCfg, Experiment, Sizes, ModelCfg,
                  TrainCfg, SearchDim, SineSignal, MultitoneSignal, HarmonicSignal, WavSignal,
                  NoiseDeg, QuantizeDeg, BitdepthDeg, BandwidthDeg, ClipDeg, DropoutDeg):
        candidates.update(model.model_fields)
    close = difflib.get_close_matches(key, sorted(candidates), n=1, cutoff=0.75)
    return f" (did you mean `{close[0]}`?)" if close else ""


def _format_error(err: ValidationError, source: str) -> str:
    e = err.errors()[0]
    # Drop the union-tag segments pydantic inserts (e.g. 'noise') so the path reads like the YAML.
    loc = [str(p) for p in e["loc"] if not str(p).startswith("function-")]
    path = ".".join(loc) or "(top level)"
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] == "extra_forbidden":
        msg = f"unknown key{_suggest(tuple(loc))}"
    elif e["type"] == "union_tag_invalid":
        msg = msg.replace("Input tag", "value")
    more = f" (and {len(err.errors()) - 1} more problem(s))" if len(err.errors()) > 1 else ""
    return f"{source}: {path}: {msg}{more}"


def parse_params(raw: Any, source: str = PARAMS_FILE) -> Params:
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ParamsError(_format_error(err, source)) from None


def load_params(path: str | os.PathLike[str] = PARAMS_FILE) -> Params:
    """Read and validate params.yaml; raise ParamsError with one actionable message."""
    p = Path(path)
    if not p.is_file():
        raise ParamsError(f"{p}: params file not found (run from the repository root)")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise ParamsError(f"{p}: malformed YAML{where}: {problem}") from None
    return parse_params(raw, str(p))
