"""Classical DSP baselines the networks are scored against, chosen per degradation config class.

Every baseline gets the same supervision as the model (``fit`` on clean/degraded pairs), so a model
that cannot beat them has learned nothing a textbook method would not. ``classical_baselines``
dispatches on the typed degradation config (``REGISTRY``); ``best_classical`` is the one rule for
picking the winner on validation gains.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from pipeline.config import (
    BandwidthDeg,
    BitdepthDeg,
    ClipDeg,
    Degradation,
    DropoutDeg,
    NoiseDeg,
    QuantizeDeg,
    SpeechNoiseDeg,
)
from pipeline.dsp.baselines.base import Baseline, Identity
from pipeline.dsp.baselines.repair import ClipRepair, GapFill
from pipeline.dsp.baselines.retained import BandlimitedInterp, HoldInterp
from pipeline.dsp.baselines.smoothing import Lowpass, MedianLowpass, SavitzkyGolay
from pipeline.dsp.baselines.wiener import (
    Wiener,
    WienerSTFTDecisionDirected,
    WienerSTFTNoiseTracking,
)

__all__ = [
    "REGISTRY",
    "BandlimitedInterp",
    "Baseline",
    "ClipRepair",
    "GapFill",
    "HoldInterp",
    "Identity",
    "Lowpass",
    "MedianLowpass",
    "SavitzkyGolay",
    "Wiener",
    "WienerSTFTDecisionDirected",
    "WienerSTFTNoiseTracking",
    "best_classical",
    "classical_baselines",
]

# (degradation config, sample rate, frame length or None) -> unfitted baselines besides identity
Factory = Callable[[Degradation, int, "int | None"], list[Baseline]]


def _noise(deg: NoiseDeg, sample_rate: int, frame_length: int | None) -> list[Baseline]:
    out: list[Baseline] = [Lowpass(sample_rate), Wiener(), MedianLowpass(sample_rate), SavitzkyGolay()]
    # the decision-directed gain needs several STFT windows per frame to smooth across
    if frame_length is None or frame_length >= 512:
        out.append(WienerSTFTDecisionDirected())
    return out


def _speech_noise(deg: SpeechNoiseDeg, sample_rate: int, frame_length: int | None) -> list[Baseline]:
    # Real noises differ clip to clip: the tracking Wiener estimates each clip's own noise PSD;
    # the training-average one shows what that adaptivity is worth.
    return [WienerSTFTDecisionDirected(), WienerSTFTNoiseTracking()]


def _retained(deg: QuantizeDeg | BandwidthDeg, sample_rate: int, frame_length: int | None) -> list[Baseline]:
    return [HoldInterp(deg.factor, "linear"), HoldInterp(deg.factor, "cubic"), BandlimitedInterp(deg.factor)]


def _bitdepth(deg: BitdepthDeg, sample_rate: int, frame_length: int | None) -> list[Baseline]:
    return [Lowpass(sample_rate), SavitzkyGolay()]


def _clip(deg: ClipDeg, sample_rate: int, frame_length: int | None) -> list[Baseline]:
    return [ClipRepair()]


def _dropout(deg: DropoutDeg, sample_rate: int, frame_length: int | None) -> list[Baseline]:
    return [GapFill("linear"), GapFill("cubic")]


REGISTRY: dict[type, Factory] = {
    NoiseDeg: _noise,
    SpeechNoiseDeg: _speech_noise,
    QuantizeDeg: _retained,
    BandwidthDeg: _retained,
    BitdepthDeg: _bitdepth,
    ClipDeg: _clip,
    DropoutDeg: _dropout,
}


def classical_baselines(
    degradation: Degradation, sample_rate: int, frame_length: int | None = None
) -> list[Baseline]:
    """Unfitted baselines that make physical sense for ``degradation``; ``identity`` first.

    A config class missing from ``REGISTRY`` gets only ``identity``, so a new degradation does not
    break evaluation. A dict (a ``model_dump()``) is refused rather than silently treated as
    unknown.
    """
    if isinstance(degradation, Mapping):
        raise TypeError("classical_baselines takes the typed degradation config, not a dict")
    factory = REGISTRY.get(type(degradation))
    extra = factory(degradation, sample_rate, frame_length) if factory else []
    return [Identity(), *extra]


def best_classical(val_gains: Mapping[str, float]) -> str:
    """Name of the method with the highest validation gain.

    Ties go to the earliest entry (``classical_baselines`` puts identity first, so doing nothing
    wins a tie). Non-finite gains (NaN from a baseline that produced NaN, or infinities) cannot
    be compared honestly and never win; if no gain is finite this raises ``ValueError``.
    """
    best: str | None = None
    for name, gain in val_gains.items():
        if math.isfinite(gain) and (best is None or gain > val_gains[best]):
            best = name
    if best is None:
        raise ValueError(f"no finite validation gain among {list(val_gains)}")
    return best
