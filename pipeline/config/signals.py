"""params.yaml's signal families (discriminated by `family`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from pipeline.config.base import FloatPair, Strict, _range


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


class CorpusSignal(Strict):
    """Frames of real speech from the corpus stage's split of the same name (data/corpus).

    Each frame starts at a random sample of the split's clips laid end to end and is scaled to
    an RMS level drawn from `level_db` (dBFS), so the nets see every level a user may bring.
    """

    family: Literal["corpus"] = "corpus"
    kind: Literal["speech"] = "speech"
    level_db: FloatPair = (-35.0, -15.0)

    _l = field_validator("level_db")(_range(-80.0, 0.0))


Signal = Annotated[
    SineSignal | MultitoneSignal | HarmonicSignal | WavSignal | CorpusSignal,
    Field(discriminator="family"),
]


