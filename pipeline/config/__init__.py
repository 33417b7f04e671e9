"""The params.yaml schema (pydantic, validated once) and its resolution into one experiment.

Every command line calls :func:`load_params` first, so a bad value stops the run with one
message naming the key path and the allowed range before anything is written; then
:func:`resolve` turns the experiment a stage runs into one frozen value.
"""

from pipeline.config.base import PARAMS_FILE, ParamsError, Strict, record_reads
from pipeline.config.degradations import (
    BandwidthDeg,
    BitdepthDeg,
    ClipDeg,
    Degradation,
    DropoutDeg,
    NoiseDeg,
    QuantizeDeg,
)
from pipeline.config.loading import load_params, parse_params
from pipeline.config.model import ModelCfg, TrainCfg
from pipeline.config.noises import NoiseMix, SpeechNoiseDeg
from pipeline.config.params import (
    TUNABLE,
    Base,
    Experiment,
    Params,
    QuickCfg,
    SearchDim,
    Sizes,
    TrackingCfg,
    TuneCfg,
)
from pipeline.config.resolve import Resolved, apply_overrides, derive_seed, resolve
from pipeline.config.signals import (
    CorpusSignal,
    HarmonicSignal,
    MultitoneSignal,
    Signal,
    SineSignal,
    WavSignal,
)

__all__ = [
    "PARAMS_FILE", "TUNABLE", "BandwidthDeg", "Base", "BitdepthDeg", "ClipDeg", "CorpusSignal",
    "Degradation",
    "DropoutDeg", "Experiment", "HarmonicSignal", "ModelCfg", "MultitoneSignal", "NoiseDeg",
    "Params", "ParamsError", "QuantizeDeg", "QuickCfg", "SearchDim", "Signal", "SineSignal",
    "Sizes", "Strict", "TrackingCfg", "TrainCfg", "TuneCfg", "WavSignal", "load_params",
    "parse_params", "NoiseMix", "SpeechNoiseDeg", "record_reads", "Resolved", "apply_overrides",
    "derive_seed", "resolve",
]
