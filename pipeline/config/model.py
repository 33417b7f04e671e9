"""Model and training configs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config.base import Strict


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




# What a study may tune: the model's own fields (each architecture's config says which knobs its
# builder reads) and these of train; epochs, patience and the like set the budget, not the model.
TRAIN_TUNABLES = ("learning_rate", "batch_size", "loss")


def tunable_names(model: ModelCfg) -> list[str]:
    """The knobs a search space or best_params.yaml may set for this model."""
    return [f for f in type(model).model_fields if f != "arch"] + list(TRAIN_TUNABLES)
