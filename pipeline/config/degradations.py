"""params.yaml's degradations (discriminated by `kind`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config.base import FloatPair, Strict, _range
from pipeline.config.noises import SpeechNoiseDeg


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
    NoiseDeg | QuantizeDeg | BitdepthDeg | BandwidthDeg | ClipDeg | DropoutDeg | SpeechNoiseDeg,
    Field(discriminator="kind"),
]


