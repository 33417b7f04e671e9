"""params.yaml's speech-denoising block: which real-world noises, their knob ranges and weights.

`SpeechNoiseDeg` is the `speech_noise` member of the `Degradation` union. Every
`(low, high)` pair is drawn uniformly per clip (integers inclusive); lists are choices; a kind's
`weight` is its relative probability per clip (0 switches it off).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config.base import FloatPair, Strict, _range

IntPair = tuple[int, int]
NoiseBase = Literal["white", "colored", "hum"]


class _Kind(Strict):
    weight: float = Field(1.0, ge=0.0, le=1000.0)


class WhiteNoise(_Kind):
    """Stationary white Gaussian noise."""


class ColoredNoise(_Kind):
    """1/f^a noise: a ~ 1 pink, ~ 2 brown (power spectral slope -a)."""

    exponent: FloatPair = (0.5, 2.0)

    _e = field_validator("exponent")(_range(0.0, 3.0))


class HumNoise(_Kind):
    """Mains hum: f0 and harmonics, levels decaying by `decay_db` per harmonic, plus hiss."""

    mains_hz: list[Literal[50, 60]] = Field(default_factory=lambda: [50, 60], min_length=1)
    harmonics: IntPair = (1, 10)
    decay_db: FloatPair = (2.0, 12.0)
    level_jitter_db: FloatPair = (0.0, 3.0)
    jitter: FloatPair = (0.0, 0.004)  # relative std of the slow f0 drift (0.004 ~ 0.2 Hz at 50 Hz)
    hiss_db: FloatPair = (-40.0, -15.0)  # broadband hiss relative to the hum

    _h = field_validator("harmonics")(_range(1, 40))
    _d = field_validator("decay_db")(_range(0.0, 40.0))
    _l = field_validator("level_jitter_db")(_range(0.0, 20.0))
    _j = field_validator("jitter")(_range(0.0, 0.05))
    _s = field_validator("hiss_db")(_range(-120.0, 20.0))


class BabbleNoise(_Kind):
    """Other speakers of the same split, summed."""

    talkers: IntPair = (3, 10)
    talker_level_db: FloatPair = (-3.0, 3.0)  # each talker's level (unit RMS = 0 dB) is drawn here

    _t = field_validator("talkers")(_range(1, 64))
    _l = field_validator("talker_level_db")(_range(-40.0, 40.0))


class MusicNoise(_Kind):
    """Music under speech; needs a music corpus, so off unless weighted."""

    weight: float = Field(0.0, ge=0.0, le=1000.0)


class BurstNoise(_Kind):
    """A stationary base noise gated into bursts (Poisson onsets, random durations)."""

    base: list[NoiseBase] = Field(default_factory=lambda: ["white", "colored"], min_length=1)
    rate_hz: FloatPair = (0.5, 3.0)
    duration_s: FloatPair = (0.05, 0.5)
    floor_db: FloatPair = (-60.0, -20.0)  # level between bursts

    _r = field_validator("rate_hz")(_range(0.01, 100.0))
    _d = field_validator("duration_s")(_range(0.001, 60.0))
    _f = field_validator("floor_db")(_range(-120.0, 0.0))


class ModulatedNoise(_Kind):
    """A stationary base noise under a slow random level envelope (amplitude modulation)."""

    base: list[NoiseBase] = Field(default_factory=lambda: ["white", "colored", "hum"], min_length=1)
    rate_hz: FloatPair = (0.5, 4.0)
    depth_db: FloatPair = (6.0, 20.0)  # std of the envelope in dB

    _r = field_validator("rate_hz")(_range(0.01, 100.0))
    _d = field_validator("depth_db")(_range(0.0, 60.0))


class ClickNoise(_Kind):
    """Sparse ±a clicks plus crackle: dense small impulses through a short decaying filter."""

    click_prob: FloatPair = (1e-5, 2e-4)
    click_amp: FloatPair = (0.2, 1.0)
    crackle_prob: FloatPair = (1e-3, 2e-2)
    crackle_amp: FloatPair = (0.01, 0.1)
    crackle_decay_ms: FloatPair = (0.1, 1.0)

    _p = field_validator("click_prob", "crackle_prob")(_range(0.0, 1.0))
    _a = field_validator("click_amp", "crackle_amp")(_range(0.0, 10.0))
    _d = field_validator("crackle_decay_ms")(_range(0.01, 20.0))


class NoiseMix(Strict):
    """One block per kind; a clip's kind is drawn with probability weight / sum of weights."""

    white: WhiteNoise = WhiteNoise()
    colored: ColoredNoise = ColoredNoise()
    hum: HumNoise = HumNoise()
    babble: BabbleNoise = BabbleNoise()
    music: MusicNoise = MusicNoise()
    bursts: BurstNoise = BurstNoise()
    am: ModulatedNoise = ModulatedNoise()
    clicks: ClickNoise = ClickNoise()

    @model_validator(mode="after")
    def _some_weight(self) -> NoiseMix:
        if not any(getattr(self, k).weight > 0 for k in type(self).model_fields):
            raise ValueError("at least one noise kind needs a weight > 0")
        return self

    def kinds(self) -> dict[str, dict[str, Any]]:
        """Every kind as a plain mapping, the form `dsp.mixing.speech_noise_mix` takes.

        Weight-0 kinds stay in so that `bursts`/`am` draw their base noise's knobs from them.
        """
        return {k: getattr(self, k).model_dump() for k in type(self).model_fields}


class SpeechNoiseDeg(Strict):
    """Speech plus a real-world noise at a per-clip SNR measured on the speech-active frames."""

    kind: Literal["speech_noise"] = "speech_noise"
    snr_db: FloatPair = (-5.0, 20.0)
    vad_db: float = Field(40.0, ge=1.0, le=120.0)  # active frames: within this of the loudest
    frame_ms: float = Field(20.0, ge=1.0, le=200.0)
    noises: NoiseMix = NoiseMix()

    _r = field_validator("snr_db")(_range(-60.0, 120.0))
