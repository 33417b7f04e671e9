"""The four architectures, each registered as the builder of its config class.

Every net maps degraded frames (batch, T, 1) to clean ones of the same shape. `build_model`
looks the builder up by the config's type (see pipeline/config/model.py), so an architecture
is one config class plus one `@builds` function. Layer creation order is part of the contract:
with one seed it fixes the initial weights, hence every trained result.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
from keras import layers

from pipeline.config.model import MlpCfg, SeedEncoderDecoderCfg, StftMaskCfg, UnetCfg
from pipeline.nn.layers import (
    CropLike,
    EdgeBlend,
    FixedFIR,
    FrameRMS,
    MaskedISTFT,
    PadToMultiple,
    PhaseAdvance,
    Scale,
    Spectrogram,
    SubPixel1D,
)

Builder = Callable[..., keras.Model]
BUILDERS: dict[type, Builder] = {}


def builds(cfg_cls: type) -> Callable[[Builder], Builder]:
    """Register the decorated function as the builder of `cfg_cls`."""
    def register(fn: Builder) -> Builder:
        BUILDERS[cfg_cls] = fn
        return fn
    return register


def build_model(cfg, frame_length: int | None = None, prefilter=None) -> keras.Model:
    """Build the architecture `cfg` configures, for inputs (batch, T, 1).

    Conv archs take any T; `frame_length` is only checked (a net whose total stride exceeds the
    frame would see mostly padding at its bottleneck). `mlp` takes exactly `frame_length`.
    `prefilter` (unet with model.prefilter only): the FIR taps, designed by train from the
    training frames (`pipeline.dsp.filters.wiener_fir`).
    """
    builder = BUILDERS.get(type(cfg))
    if builder is None:
        raise TypeError(f"no builder registered for {type(cfg).__name__}")
    if prefilter is not None and not isinstance(cfg, UnetCfg):
        raise ValueError(f"a prefilter channel is only wired for arch unet (got {cfg.arch})")
    return builder(cfg, frame_length, prefilter)


# ----------------------------------------------------------------------------- shared parts
def _normalized(cfg, time_axis: int | None, body: Callable) -> keras.Model:
    """Input -> (unit-RMS frames if cfg.normalize) -> body -> original level -> output."""
    inp = keras.Input(shape=(time_axis, 1), dtype="float32", name="degraded")
    x, scale = inp, None
    if cfg.normalize:
        scale = FrameRMS(name="frame_rms")(inp)
        x = Scale(divide=True, name="to_unit_rms")([inp, scale])
    y = body(x)
    if scale is not None:
        y = Scale(name="from_unit_rms")([y, scale])
    return keras.Model(inp, y, name=cfg.arch)


def _check_blocks(arch: str, multiple: int, frame_length: int | None) -> None:
    if frame_length is not None and multiple > frame_length:
        raise ValueError(
            f"{arch} works in blocks of {multiple} samples, more than frame_length {frame_length}; "
            "lower model.depth (or model.n_fft)"
        )


def _in_blocks(x, multiple: int, body: Callable):
    """Pad to the arch's block size, run `body`, crop back: one net for any frame length."""
    padded = PadToMultiple(multiple, name="pad")(x)
    return CropLike(name="crop")([body(padded), x])


def _head(x, h, kernel: int, residual: bool):
    """Linear 1-channel output; with `residual` the net predicts y - x and x is added back.

    The residual head starts at zero, so the untrained net is the identity: training starts from
    "output the degraded input" instead of from noise.
    """
    init = "zeros" if residual else "glorot_uniform"
    y = layers.Conv1D(1, kernel, padding="same", kernel_initializer=init, name="head")(h)
    return layers.Add(name="residual")([x, y]) if residual else y


# ----------------------------------------------------------------------------- mlp
@builds(MlpCfg)
def build_mlp(cfg: MlpCfg, frame_length: int | None, prefilter=None) -> keras.Model:
    """Dense layers over the whole frame (`depth` layers of `filters` units).

    A lone sinusoid spans the frame, so telling its frequency from noise needs every sample at
    once; a dense layer sees them all, where a conv stack sees a window. The price: one frame
    length only, fixed when the model is built.
    """
    if frame_length is None:
        raise ValueError("arch mlp needs frame_length: its dense layers see one frame length")

    def body(x):
        h = layers.Flatten(name="frame")(x)
        for i in range(cfg.depth):
            h = layers.Dense(cfg.filters, activation="relu", name=f"dense_{i}")(h)
            if cfg.dropout:
                h = layers.Dropout(cfg.dropout)(h)
        init = "zeros" if cfg.residual else "glorot_uniform"
        y = layers.Dense(frame_length, kernel_initializer=init, name="head")(h)
        y = layers.Reshape((frame_length, 1))(y)
        return layers.Add(name="residual")([x, y]) if cfg.residual else y

    return _normalized(cfg, frame_length, body)


# ----------------------------------------------------------------------------- seed net
SEED_WIDTHS = (8, 16, 32, 64)


@builds(SeedEncoderDecoderCfg)
def build_seed_encoder_decoder(cfg: SeedEncoderDecoderCfg, frame_length: int | None,
                               prefilter=None) -> keras.Model:
    """The seed notebook's conv encoder-decoder, with a linear output so it can go negative."""
    k, multiple = cfg.kernel_size, 2 ** len(SEED_WIDTHS)
    _check_blocks(cfg.arch, multiple, frame_length)

    def block(h, f):
        for _ in range(2):
            h = layers.Conv1D(f, k, padding="same", activation="relu")(h)
        return layers.Dropout(cfg.dropout)(h) if cfg.dropout else h

    def net(x):
        h = x
        for f in SEED_WIDTHS:
            h = layers.MaxPooling1D(2)(block(h, f))
        h = block(h, 128)
        for f in reversed(SEED_WIDTHS):
            h = block(layers.UpSampling1D(2)(h), f)
        return _head(x, h, k, cfg.residual)

    return _normalized(cfg, None, lambda x: _in_blocks(x, multiple, net))


# ----------------------------------------------------------------------------- unet
def unet_plan(cfg: UnetCfg) -> list[tuple[int, int]]:
    """(filters, kernel) per down block: filters double (capped at 8x), kernels shrink (min 3)."""
    plan = []
    for i in range(cfg.depth):
        f = min(cfg.filters * 2**i, cfg.filters * 8)
        k = max(3, (cfg.kernel_size // 2**i) | 1)  # keep kernels odd so 'same' is centred
        plan.append((f, k))
    return plan


def _unet_body(x, cfg: UnetCfg, extra=None):
    """1-D U-Net after Kuleshov, Enam & Ermon (2017): strided convs down, pixel shuffle up.

    `extra` (same length as x) joins x as more input channels; the residual adds x alone.
    """
    plan = unet_plan(cfg)

    def norm(h):
        return layers.BatchNormalization()(h) if cfg.batch_norm else h

    def drop(h):
        return layers.Dropout(cfg.dropout)(h) if cfg.dropout else h

    skips = []
    h = x if extra is None else layers.Concatenate(name="channels")([x, extra])
    for f, k in plan:
        skips.append(h)
        h = layers.Conv1D(f, k, strides=2, padding="same")(h)
        h = layers.LeakyReLU(0.2)(norm(h))
    f_b, k_b = plan[-1]
    h = layers.Conv1D(f_b, k_b, padding="same")(h)
    h = layers.LeakyReLU(0.2)(drop(norm(h)))
    for (f, k), skip in zip(reversed(plan), reversed(skips), strict=True):
        h = layers.Conv1D(2 * f, k, padding="same")(h)
        h = layers.ReLU()(drop(norm(h)))
        h = SubPixel1D(2)(h)
        h = layers.Concatenate()([h, skip])
    return _head(x, h, plan[0][1], cfg.residual)


@builds(UnetCfg)
def build_unet(cfg: UnetCfg, frame_length: int | None, prefilter=None) -> keras.Model:
    """The U-Net; with `model.prefilter` the FIR-filtered input (faded to the raw input over
    `ramp` samples at the frame ends) joins it as a second channel."""
    pf, multiple = cfg.prefilter, 2**cfg.depth
    if pf is not None and (prefilter is None or len(prefilter) != pf.taps):
        raise ValueError(f"model.prefilter.taps = {pf.taps} needs that many FIR taps; train "
                         "designs them from the training frames (pipeline.dsp.filters.wiener_fir)")
    if pf is None and prefilter is not None:
        raise ValueError("FIR taps were given but the unet config has no model.prefilter")
    _check_blocks(cfg.arch, multiple, frame_length)

    def body(x):
        def net(padded):
            extra = None
            if pf is not None:
                g = FixedFIR(prefilter, name="prefilter")(x)
                if pf.ramp:
                    g = EdgeBlend(pf.ramp, name="edge_blend")([x, g])
                extra = PadToMultiple(multiple, name="pad_prefiltered")(g)
            return _unet_body(padded, cfg, extra)

        return _in_blocks(x, multiple, net)

    return _normalized(cfg, None, body)


# ----------------------------------------------------------------------------- stft_mask
def _stft_mask_body(x, cfg: StftMaskCfg):
    """A spectral mask from log-power spectra, applied to the STFT and inverted.

    Each STFT frame's whole spectrum enters a 1-D conv over time (kernel `kernel_size` frames),
    so the net can use harmonic structure across frequency, which a per-bin Wiener gain cannot.
    The sigmoid head starts open (mask 0.98), so training starts near the identity.
    `phase_features` adds each bin's phase advance between STFT frames (`PhaseAdvance`) to the
    first layer through a 1x1 projection.
    """
    hop = cfg.n_fft // 4
    re, im, log_power = Spectrogram(cfg.n_fft, hop, name="stft")(x)
    phase = PhaseAdvance(cfg.n_fft, hop, name="phase")([re, im]) if cfg.phase_features else None
    h = log_power
    for i in range(cfg.depth):
        h = layers.Conv1D(cfg.filters, cfg.kernel_size, padding="same",
                          dilation_rate=cfg.dilation_growth**i, name=f"conv_{i}")(h)
        if i == 0 and phase is not None:
            # The phase advances (2 per bin) enter through a 1x1 projection, a third of the
            # cost of a kernel-3 conv; the next layer compares neighbouring frames anyway.
            p = layers.Conv1D(cfg.filters, 1, use_bias=False, name="phase_in")(phase)
            h = layers.Add(name="with_phase")([h, p])
        h = layers.LeakyReLU(0.2)(h)
        if cfg.dropout:
            h = layers.Dropout(cfg.dropout)(h)
    open_fraction = 1.0 / (1.0 + math.exp(-4.0))  # sigmoid(4): the bias is logit(it), ~4
    bias = math.log(open_fraction / (1.0 - open_fraction))
    mask = layers.Conv1D(cfg.n_fft // 2 + 1, 1, activation="sigmoid", name="mask",
                         kernel_initializer="zeros",
                         bias_initializer=keras.initializers.Constant(bias))(h)
    return MaskedISTFT(cfg.n_fft, hop, name="istft")([re, im, mask])


@builds(StftMaskCfg)
def build_stft_mask(cfg: StftMaskCfg, frame_length: int | None, prefilter=None) -> keras.Model:
    """The STFT mask net for any frame length (padded to a multiple of the hop, n_fft/4)."""
    multiple = cfg.n_fft // 4
    _check_blocks(cfg.arch, multiple, frame_length)
    return _normalized(cfg, None, lambda x: _in_blocks(x, multiple, lambda p: _stft_mask_body(p, cfg)))
