"""Model and training configs: one model config per architecture, a union on `arch`.

Each architecture's config holds only the knobs its builder reads, so a key that would be
silently ignored (e.g. `batch_norm` on an mlp) is an "unknown key" error instead, and a search
space is checked against the tuned experiment's own architecture (`tunable_names`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from pipeline.config.base import Strict

# The shared knobs: one definition each, so the ranges agree across architectures.
Depth = Annotated[int, Field(ge=1, le=8)]
Filters = Annotated[int, Field(ge=1, le=4096)]  # conv channels; units per layer for mlp/stft_mask
Kernel = Annotated[int, Field(ge=1, le=129)]
Dropout = Annotated[float, Field(ge=0.0, lt=1.0)]


class _Net(Strict):
    dropout: Dropout = 0.0
    normalize: bool = True  # run the net on unit-RMS frames, scale back: level-independent


class MlpCfg(_Net):
    """Dense layers over the whole frame (one frame length, fixed when built)."""

    arch: Literal["mlp"] = "mlp"
    depth: Depth = 4
    filters: Filters = 32
    residual: bool = True


class SeedEncoderDecoderCfg(_Net):
    """The seed notebook's conv encoder-decoder (fixed widths 8..128): the seed's reference."""

    arch: Literal["seed_encoder_decoder"] = "seed_encoder_decoder"
    kernel_size: Kernel = 9
    residual: bool = True


class PrefilterCfg(Strict):
    """The U-Net's second input channel: the input filtered by the training set's Wiener FIR.

    It restores deterministically attenuated bands that the net learns slowly.
    """

    taps: int = Field(ge=1, le=4095)  # odd: centred on lag 0
    max_gain_db: float = Field(30.0, ge=0.0, le=80.0)
    # fade the prefiltered channel to the raw input over this many samples at each frame end,
    # where a long filter only sees half its support (0: no fade)
    ramp: int = Field(0, ge=0, le=65_536)

    @field_validator("taps")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError(f"must be odd (centred on lag 0; got {v})")
        return v


class UnetCfg(_Net):
    """1-D U-Net (strided convs down, pixel shuffle up), optionally with a prefilter channel."""

    arch: Literal["unet"] = "unet"
    depth: Depth = 4
    filters: Filters = 32
    kernel_size: Kernel = 9
    batch_norm: bool = False
    residual: bool = True
    prefilter: PrefilterCfg | None = None


class StftMaskCfg(_Net):
    """A real spectral mask predicted from log-power spectra (hop n_fft/4)."""

    arch: Literal["stft_mask"] = "stft_mask"
    n_fft: int = Field(512, ge=16, le=16_384)
    depth: Depth = 4
    filters: Filters = 32
    kernel_size: Kernel = 9  # in STFT frames
    # also feed each bin's phase advance between frames (tells partials from noise)
    phase_features: bool = False
    # layer i's conv dilates by growth**i STFT frames: depth 6 and growth 2 see ~1 s of context,
    # what telling speech from babble or bursts takes (1: plain stacked convs)
    dilation_growth: int = Field(1, ge=1, le=4)

    @field_validator("n_fft")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        if v & (v - 1):
            raise ValueError(f"must be a power of two (got {v})")
        return v


ModelCfg = Annotated[MlpCfg | UnetCfg | SeedEncoderDecoderCfg | StftMaskCfg,
                     Field(discriminator="arch")]
MODEL_CFGS: tuple[type[Strict], ...] = (MlpCfg, UnetCfg, SeedEncoderDecoderCfg, StftMaskCfg)


class SpectralLossCfg(Strict):
    """A compressed-magnitude spectral term added to the sample loss.

    10 log10(sum (|Y|^p - |Y_hat|^p)^2 / sum |Y|^p^2) per frame, in dB like the SNR loss and,
    like it, independent of the frame's level. Power-law compression (p about 0.3, as in
    DeepFilterNet's and GTCRN's losses) weighs quiet time-frequency bins, the residual noise in
    speech pauses that PESQ punishes and an SNR loss barely sees.
    """

    weight: float = Field(0.5, gt=0.0, le=10.0)
    n_fft: int = Field(512, ge=16, le=8192)
    power: float = Field(0.3, gt=0.0, le=1.0)

    @field_validator("n_fft")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 4:
            raise ValueError("must be a multiple of 4 (the hop is n_fft/4)")
        return v


class TrainCfg(Strict):
    epochs: int = Field(20, ge=1, le=10_000)
    batch_size: int = Field(64, ge=1, le=65_536)
    learning_rate: float = Field(1e-3, gt=0.0, le=1.0)
    loss: Literal["mse", "l1", "snr"] = "mse"
    # null: the sample loss alone
    spectral: SpectralLossCfg | None = None
    patience: int = Field(4, ge=1, le=1000)
    # Halve the learning rate after this many epochs without a better val_loss (null: constant).
    lr_patience: int | None = Field(None, ge=1, le=1000)
    # compile the training step with XLA. Keras leaves it off on CPU-only machines; it fuses
    # stft_mask's STFT and elementwise ops (1.6-1.9x the steps per second on 2 cores); the
    # U-Net's convolutions were no faster
    jit_compile: bool = False


# What a study may tune: the model's own fields (each architecture's config says which knobs its
# builder reads) and these of train; epochs, patience and the like set the budget, not the model.
TRAIN_TUNABLES = ("learning_rate", "batch_size", "loss")


def tunable_names(model: ModelCfg) -> list[str]:
    """The knobs a search space or best_params.yaml may set for this model."""
    return [f for f in type(model).model_fields if f != "arch"] + list(TRAIN_TUNABLES)
