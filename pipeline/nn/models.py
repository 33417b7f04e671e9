"""Keras models and losses that map degraded frames (batch, T, 1) to clean ones.

Every custom piece is registered under the ``audiorecon`` package, so a saved ``model.keras``
loads with ``keras.models.load_model(path, safe_mode=True)`` once this module is imported. No
Lambda layers: safe mode refuses to deserialize them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import keras
from keras import layers, ops

if TYPE_CHECKING:
    from pipeline.config import ModelCfg, TrainCfg

PACKAGE = "audiorecon"
EPS = 1e-8
register = keras.saving.register_keras_serializable(package=PACKAGE)


# ----------------------------------------------------------------------------- layers
@register
class PadToMultiple(layers.Layer):
    """Zero-pad the time axis at the end to a multiple of `multiple`.

    Strided/pooled stacks need T divisible by their total stride; padding inside the model lets
    one set of weights serve frames of any length.
    """

    def __init__(self, multiple: int, **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)

    def call(self, x):
        m = self.multiple
        if m == 1:
            return x
        t = ops.shape(x)[1]
        target = ((t + m - 1) // m) * m
        # Pad by the static maximum, then cut to the dynamic target: works with T unknown.
        padded = ops.pad(x, [[0, 0], [0, m - 1], [0, 0]])
        return padded[:, :target, :]

    def compute_output_shape(self, input_shape):
        b, t, c = input_shape
        if t is not None:
            t = -(-t // self.multiple) * self.multiple
        return (b, t, c)

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


@register
class CropLike(layers.Layer):
    """Crop the time axis of the first input to the length of the second (undoes the pad)."""

    def call(self, inputs):
        x, ref = inputs
        return x[:, : ops.shape(ref)[1], :]

    def compute_output_shape(self, input_shape):
        (b, _, c), (_, t, _) = input_shape
        return (b, t, c)


@register
class SubPixel1D(layers.Layer):
    """1-D pixel shuffle: (b, T, C*r) -> (b, T*r, C), as in Kuleshov et al. (2017).

    Upsampling by reshuffling learnt channels avoids the checkerboard artefacts of transposed
    convolutions.
    """

    def __init__(self, factor: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)

    def call(self, x):
        c = x.shape[-1]
        if c % self.factor:
            raise ValueError(f"SubPixel1D: channels ({c}) not divisible by {self.factor}")
        b, t = ops.shape(x)[0], ops.shape(x)[1]
        return ops.reshape(x, (b, t * self.factor, c // self.factor))

    def compute_output_shape(self, input_shape):
        b, t, c = input_shape
        return (b, None if t is None else t * self.factor, c // self.factor)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@register
class FrameRMS(layers.Layer):
    """Per-frame RMS + eps, shaped (b, 1, 1): the scale used to normalise and de-normalise."""

    def __init__(self, eps: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.eps = float(eps)

    def call(self, x):
        return ops.sqrt(ops.mean(ops.square(x), axis=(1, 2), keepdims=True)) + self.eps

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1, 1)

    def get_config(self):
        return {**super().get_config(), "eps": self.eps}


@register
class Scale(layers.Layer):
    """Multiply (or divide) a signal by a per-frame scale of shape (b, 1, 1)."""

    def __init__(self, divide: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.divide = bool(divide)

    def call(self, inputs):
        x, s = inputs
        return x / s if self.divide else x * s

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "divide": self.divide}


class _STFTLayer(layers.Layer):
    """Shared by the STFT layers: window `n_fft` and `hop` (n_fft/4 by default, which saved
    models from before the hop was configurable rely on)."""

    def __init__(self, n_fft: int = 512, hop: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.n_fft = int(n_fft)
        self.hop = int(hop or n_fft // 4)

    def get_config(self):
        return {**super().get_config(), "n_fft": self.n_fft, "hop": self.hop}


@register
class Spectrogram(_STFTLayer):
    """Hann STFT of (b, T, 1) frames -> [real, imag, log-power], each (b, frames, n_fft//2 + 1).

    T must be a multiple of the hop (default n_fft/4; `PadToMultiple` sees to it). Both ends
    are zero-padded by n_fft - hop, so every sample lies under all n_fft/hop overlapping
    windows and `MaskedISTFT` with a unit mask returns the input exactly, edges included (the
    usual centre padding of n_fft/2 leaves the outer samples short of one window).
    """

    def call(self, x):
        n, hop = self.n_fft, self.hop
        x = ops.pad(x[..., 0], [[0, 0], [n - hop, n - hop]])
        re, im = ops.stft(x, sequence_length=n, sequence_stride=hop, fft_length=n, center=False)
        log_power = ops.log(ops.square(re) + ops.square(im) + 1e-6)
        return re, im, log_power

    def compute_output_shape(self, input_shape):
        b, t, _ = input_shape
        hop = self.hop
        frames = None if t is None else (t + 2 * (self.n_fft - hop) - self.n_fft) // hop + 1
        shape = (b, frames, self.n_fft // 2 + 1)
        return shape, shape, shape


@register
class FixedFIR(layers.Layer):
    """A fixed (non-trainable) zero-phase FIR over time: (b, T, 1) -> (b, T, 1).

    The frame is extended at both ends by odd reflection (2 x[0] - x[k]), which keeps value and
    slope continuous; zero padding would put a step at each edge whose broadband content a steep
    boost turns into loud artefacts. `taps` are convolution taps centred on lag 0 (odd length),
    kept in the config so a saved model carries them.
    """

    def __init__(self, taps, **kwargs):
        super().__init__(**kwargs)
        self.taps = [float(v) for v in taps]
        if len(self.taps) % 2 == 0:
            raise ValueError(f"FixedFIR needs an odd number of taps (got {len(self.taps)})")
        # conv is a cross-correlation: hence the reversed taps, shaped once for every call.
        self._kernel = ops.reshape(ops.convert_to_tensor(self.taps[::-1], dtype="float32"), (-1, 1, 1))

    def call(self, x):
        half = len(self.taps) // 2
        if half == 0:
            return x * self.taps[0]
        t = ops.shape(x)[1]
        k = ops.arange(1, half + 1)
        left_idx = ops.minimum(k[::-1], t - 1)  # x[half], ..., x[1] (clipped for short frames)
        right_idx = ops.maximum(t - 1 - k, 0)  # x[T-2], ..., x[T-1-half]
        first, last = x[:, :1], x[:, -1:]
        left = 2.0 * first - ops.take(x, left_idx, axis=1)
        right = 2.0 * last - ops.take(x, right_idx, axis=1)
        padded = ops.concatenate([left, x, right], axis=1)
        return ops.conv(padded, ops.cast(self._kernel, x.dtype), padding="valid")

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "taps": self.taps}


@register
class EdgeBlend(layers.Layer):
    """[x, g] -> x + w (g - x): g in the frame's interior, x at its ends, linear over `ramp`.

    For a prefilter whose long response is only trustworthy away from the frame edges.
    """

    def __init__(self, ramp: int, **kwargs):
        super().__init__(**kwargs)
        self.ramp = int(ramp)

    def call(self, inputs):
        x, g = inputs
        t = ops.shape(x)[1]
        n = ops.cast(ops.arange(t), x.dtype)
        dist = ops.minimum(n, ops.cast(t - 1, x.dtype) - n)
        w = ops.clip(dist / float(max(self.ramp, 1)), 0.0, 1.0)
        return x + ops.reshape(w, (1, -1, 1)) * (g - x)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "ramp": self.ramp}


@register
class PhaseAdvance(_STFTLayer):
    """Phase advance of each STFT bin between consecutive frames, relative to the bin centre.

    [real, imag] -> (b, frames, 2 * bins): cos and sin of arg(z_t conj z_{t-1}) - 2 pi k hop / n
    (hop defaults to n/4).
    A steady partial near bin k advances by a consistent amount from frame to frame; noise does
    not. Log power alone cannot tell a weak partial from noise of the same level; this can. The
    first frame has no predecessor and gets zeros.
    """

    def call(self, inputs):
        re, im = inputs
        a, b, c, d = re[:, 1:], im[:, 1:], re[:, :-1], im[:, :-1]
        p, q = a * c + b * d, b * c - a * d  # z_t * conj(z_{t-1})
        norm = ops.sqrt(ops.square(p) + ops.square(q)) + 1e-12
        # Remove the advance of a partial at the bin centre: 2 pi k hop / n.
        step = 2.0 * math.pi * self.hop / self.n_fft
        theta = ops.arange(self.n_fft // 2 + 1, dtype=re.dtype) * step
        cos_t, sin_t = ops.cos(theta), ops.sin(theta)
        rot_re = (p * cos_t + q * sin_t) / norm
        rot_im = (q * cos_t - p * sin_t) / norm
        feats = ops.concatenate([rot_re, rot_im], axis=-1)
        return ops.pad(feats, [[0, 0], [1, 0], [0, 0]])

    def compute_output_shape(self, input_shape):
        b, frames, bins = input_shape[0]
        return (b, frames, 2 * bins)


@register
class MaskedISTFT(_STFTLayer):
    """Apply a mask to an STFT and invert it: [real, imag, mask(, mask_imag)] -> (b, T', 1).

    With a fourth input the mask is complex (mask + j mask_imag): it can also turn the phase,
    which a real mask leaves noisy.
    """

    def call(self, inputs):
        re, im, mask = inputs[:3]
        n, hop = self.n_fft, self.hop
        if len(inputs) == 4:
            mask_im = inputs[3]
            re, im = re * mask - im * mask_im, re * mask_im + im * mask
        else:
            re, im = re * mask, im * mask
        y = ops.istft((re, im), sequence_length=n, sequence_stride=hop, fft_length=n,
                      center=False)
        return y[:, n - hop : -(n - hop), None]  # undo Spectrogram's padding

    def compute_output_shape(self, input_shape):
        b, frames, _ = input_shape[0]
        hop = self.hop
        t = None if frames is None else (frames - 1) * hop + self.n_fft - 2 * (self.n_fft - hop)
        return (b, t, 1)


# ----------------------------------------------------------------------------- architectures
def _seed_body(x, cfg: ModelCfg):
    """The seed notebook's conv encoder-decoder, with a linear output so it can go negative."""
    k = cfg.kernel_size
    widths = (8, 16, 32, 64)

    def block(h, f):
        for _ in range(2):
            h = layers.Conv1D(f, k, padding="same", activation="relu")(h)
        return layers.Dropout(cfg.dropout)(h) if cfg.dropout else h

    h = x
    for f in widths:
        h = layers.MaxPooling1D(2)(block(h, f))
    h = block(h, 128)
    for f in reversed(widths):
        h = block(layers.UpSampling1D(2)(h), f)
    return _head(x, h, k, cfg.residual), len(widths)


def _head(x, h, kernel: int, residual: bool):
    """Linear 1-channel output; with `residual` the net predicts y - x and x is added back.

    The residual head starts at zero, so the untrained net is the identity: training starts from
    "output the degraded input" instead of from noise.
    """
    init = "zeros" if residual else "glorot_uniform"
    y = layers.Conv1D(1, kernel, padding="same", kernel_initializer=init, name="head")(h)
    return layers.Add(name="residual")([x, y]) if residual else y


def unet_plan(cfg: ModelCfg) -> list[tuple[int, int]]:
    """(filters, kernel) per down block: filters double (capped at 8x), kernels shrink (min 3)."""
    plan = []
    for i in range(cfg.depth):
        f = min(cfg.filters * 2**i, cfg.filters * 8)
        k = max(3, (cfg.kernel_size // 2**i) | 1)  # keep kernels odd so 'same' is centred
        plan.append((f, k))
    return plan


def _unet_body(x, cfg: ModelCfg, extra=None):
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
    return _head(x, h, plan[0][1], cfg.residual), cfg.depth


def _mlp_body(x, cfg: ModelCfg, frame_length: int):
    """Dense layers over the whole frame (`depth` layers of `filters` units).

    A lone sinusoid spans the frame, so telling its frequency from noise needs every sample at
    once; a dense layer sees them all, where a conv stack sees a window. The price: one frame
    length only, fixed when the model is built.
    """
    h = layers.Flatten(name="frame")(x)
    for i in range(cfg.depth):
        h = layers.Dense(cfg.filters, activation="relu", name=f"dense_{i}")(h)
        if cfg.dropout:
            h = layers.Dropout(cfg.dropout)(h)
    init = "zeros" if cfg.residual else "glorot_uniform"
    y = layers.Dense(frame_length, kernel_initializer=init, name="head")(h)
    y = layers.Reshape((frame_length, 1))(y)
    return layers.Add(name="residual")([x, y]) if cfg.residual else y


def _add_frame_context(h, source, filters: int, *names: str):
    """h + Dense(mean of `source` over the frame's STFT frames), broadcast to every one of them.

    Zero-initialised, so a net starts as the one without context. `names`: pool, dense, add.
    """
    pool, dense, add = names
    g = layers.GlobalAveragePooling1D(keepdims=True, name=pool)(source)
    g = layers.Dense(filters, kernel_initializer="zeros", name=dense)(g)
    return layers.Add(name=add)([h, g])


def _stft_mask_body(x, cfg: ModelCfg):
    """A spectral mask from log-power spectra, applied to the STFT and inverted.

    Each STFT frame's whole spectrum enters a 1-D conv over time (kernel `kernel_size` frames),
    so the net can use harmonic structure across frequency, which a per-bin Wiener gain cannot.
    The sigmoid head starts open (mask 0.98), so training starts near the identity. About
    a tenth of a U-Net's multiply-adds per second of audio. `global_context` adds, to the first
    layer's pre-activation and after each hidden layer, a projection of the input's (the
    layer's) mean over all STFT frames of the frame: one dense layer per frame, nearly free.
    `phase_features` adds each bin's phase advance between STFT frames (`PhaseAdvance`) to the
    first layer through a 1x1 projection.
    """
    hop = cfg.n_fft // cfg.stft_overlap
    re, im, log_power = Spectrogram(cfg.n_fft, hop, name="stft")(x)
    phase = PhaseAdvance(cfg.n_fft, hop, name="phase")([re, im]) if cfg.phase_features else None
    h = log_power
    for i in range(cfg.depth):
        h_in = h
        h = layers.Conv1D(cfg.filters, cfg.kernel_size, padding="same", name=f"conv_{i}")(h)
        if i == 0 and phase is not None:
            # The phase advances (2 per bin) enter through a 1x1 projection, a third of the
            # cost of a kernel-3 conv; the next layer compares neighbouring frames anyway.
            p = layers.Conv1D(cfg.filters, 1, use_bias=False, name="phase_in")(phase)
            h = layers.Add(name="with_phase")([h, p])
        if i == 0 and cfg.global_context:  # the input features' frame mean too
            h = _add_frame_context(h, h_in, cfg.filters, "input_mean", "input_context",
                                   "with_input_context")
        h = layers.LeakyReLU(0.2)(h)
        if cfg.global_context:
            h = _add_frame_context(h, h, cfg.filters, f"frame_mean_{i}", f"context_{i}",
                                   f"with_context_{i}")
        if cfg.dropout:
            h = layers.Dropout(cfg.dropout)(h)
    # Start open: mask = sigmoid(4) = 0.982 whatever mask_max is.
    open_fraction = 1.0 / (1.0 + math.exp(-4.0)) / cfg.mask_max
    bias = math.log(open_fraction / (1.0 - open_fraction))
    if cfg.feature_skip:  # each bin's own features reach the mask head directly
        features = [log_power] if phase is None else [log_power, phase]
        h = layers.Concatenate(name="skip")([h, *features])
    mask = layers.Conv1D(cfg.n_fft // 2 + 1, 1, activation="sigmoid", name="mask",
                         kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(bias))(h)
    if cfg.mask_max != 1.0:
        mask = layers.Rescaling(cfg.mask_max, name="mask_range")(mask)
    if cfg.mask == "real":
        return MaskedISTFT(cfg.n_fft, hop, name="istft")([re, im, mask])
    # The imaginary part starts at zero, so training starts from the real mask.
    mask_im = layers.Conv1D(cfg.n_fft // 2 + 1, 1, activation="tanh", name="mask_imag",
                            kernel_initializer="zeros")(h)
    return MaskedISTFT(cfg.n_fft, hop, name="istft")([re, im, mask, mask_im])


def build_model(cfg: ModelCfg, frame_length: int | None = None, prefilter=None) -> keras.Model:
    """Build `cfg.arch` for inputs (batch, T, 1); the output has the input's shape.

    Conv archs take any T; `frame_length` is only checked (a net whose total stride exceeds the
    frame would see mostly padding at its bottleneck). `mlp` takes exactly `frame_length`.
    `cfg.residual` applies to unet, mlp and the seed net (false gives the notebook's plain net).
    `prefilter` (unet only; FIR taps, e.g. from `filters.wiener_fir`) adds the filtered input
    as a second input channel; the residual still adds the unfiltered input.
    """
    if prefilter is not None and cfg.arch != "unet":
        raise ValueError(f"a prefilter channel is only wired for arch unet (got {cfg.arch})")
    if cfg.prefilter_taps and (prefilter is None or len(prefilter) != cfg.prefilter_taps):
        raise ValueError(f"model.prefilter_taps = {cfg.prefilter_taps} needs that many FIR taps; "
                         "train designs them from the training frames (pipeline.dsp.filters.wiener_fir)")
    if cfg.arch == "mlp" and frame_length is None:
        raise ValueError("arch mlp needs frame_length: its dense layers see one frame length")
    time_axis = frame_length if cfg.arch == "mlp" else None
    inp = keras.Input(shape=(time_axis, 1), dtype="float32", name="degraded")
    x, scale = inp, None
    if cfg.normalize:
        scale = FrameRMS(name="frame_rms")(inp)
        x = Scale(divide=True, name="to_unit_rms")([inp, scale])
    mlp = cfg.arch == "mlp"
    y = _mlp_body(x, cfg, frame_length) if mlp else _conv_body(x, cfg, frame_length, prefilter)
    if scale is not None:
        y = Scale(name="from_unit_rms")([y, scale])
    return keras.Model(inp, y, name=cfg.arch)


def _conv_body(x, cfg: ModelCfg, frame_length: int | None, prefilter=None):
    """Pad to the arch's block size, run its body, crop back: one net for any frame length."""
    multiple = {"seed_encoder_decoder": 2**4, "unet": 2**cfg.depth,
                "stft_mask": cfg.n_fft // cfg.stft_overlap}[cfg.arch]
    if frame_length is not None and multiple > frame_length:
        raise ValueError(
            f"{cfg.arch} works in blocks of {multiple} samples, more than frame_length {frame_length}; "
            "lower model.depth (or model.n_fft)"
        )
    padded = PadToMultiple(multiple, name="pad")(x)
    if cfg.arch == "seed_encoder_decoder":
        y, _ = _seed_body(padded, cfg)
    elif cfg.arch == "unet":
        extra = None
        if prefilter is not None:
            g = FixedFIR(prefilter, name="prefilter")(x)
            if cfg.prefilter_ramp:
                g = EdgeBlend(cfg.prefilter_ramp, name="edge_blend")([x, g])
            extra = PadToMultiple(multiple, name="pad_prefiltered")(g)
        y, _ = _unet_body(padded, cfg, extra)
    elif cfg.arch == "stft_mask":
        y = _stft_mask_body(padded, cfg)
    else:  # pragma: no cover - the schema forbids it
        raise ValueError(f"unknown arch {cfg.arch}")
    return CropLike(name="crop")([y, x])


# ----------------------------------------------------------------------------- losses
def stft_resolutions(frame_length: int | None) -> list[int]:
    """FFT sizes for the multi-resolution STFT loss: powers of two from T/4 down, at least 8."""
    base = 256 if frame_length is None else 2 ** int(math.log2(max(frame_length // 4, 8)))
    return sorted({n for n in (base, base // 2, base // 4) if n >= 8})


@register
class ReconLoss(keras.losses.Loss):
    """Per-frame reconstruction loss ("mse", "l1" or "snr") plus optional multi-res STFT term.

    "snr" is the negative per-frame SNR in dB, so every frame counts the same whatever its level.
    The STFT term (spectral convergence + log-magnitude L1) penalises spectral errors that a
    sample-wise loss barely sees, e.g. missing high-frequency content after bandwidth loss.
    """

    def __init__(
        self,
        kind: str = "mse",
        stft_weight: float = 0.0,
        fft_sizes: tuple[int, ...] | list[int] = (64, 128, 256),
        name: str | None = None,
        **kwargs,
    ):
        if kind not in ("mse", "l1", "snr"):
            raise ValueError(f"unknown loss `{kind}`; use mse, l1 or snr")
        super().__init__(name=name or f"recon_{kind}", **kwargs)
        self.kind = kind
        self.stft_weight = float(stft_weight)
        self.fft_sizes = [int(n) for n in fft_sizes]

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        err = y_true - y_pred
        if self.kind == "mse":
            loss = ops.mean(ops.square(err), axis=(1, 2))
        elif self.kind == "l1":
            loss = ops.mean(ops.abs(err), axis=(1, 2))
        else:
            loss = snr_loss(y_true, y_pred)
        if self.stft_weight:
            loss = loss + self.stft_weight * self._stft(y_true[..., 0], y_pred[..., 0])
        return loss

    def _stft(self, y, y_hat):
        total = 0.0
        for n in self.fft_sizes:
            s, s_hat = _magnitude(y, n), _magnitude(y_hat, n)
            sc = ops.sqrt(ops.sum(ops.square(s - s_hat), axis=(1, 2))) / (
                ops.sqrt(ops.sum(ops.square(s), axis=(1, 2))) + 1e-6
            )
            mag = ops.mean(ops.abs(ops.log(s + 1e-5) - ops.log(s_hat + 1e-5)), axis=(1, 2))
            total = total + sc + mag
        return total / len(self.fft_sizes)

    def get_config(self):
        return {
            **super().get_config(),
            "kind": self.kind,
            "stft_weight": self.stft_weight,
            "fft_sizes": self.fft_sizes,
        }


def snr_loss(y_true, y_pred):
    """-10 log10(sum y^2 / (sum (y - y_hat)^2 + eps) + eps) per frame, shape (batch,)."""
    sig = ops.sum(ops.square(y_true), axis=(1, 2))
    noise = ops.sum(ops.square(y_true - y_pred), axis=(1, 2))
    return -10.0 * ops.log(sig / (noise + EPS) + EPS) / math.log(10.0)


def _magnitude(x, n_fft: int):
    re, im = ops.stft(x, sequence_length=n_fft, sequence_stride=n_fft // 4, fft_length=n_fft)
    return ops.sqrt(ops.maximum(ops.square(re) + ops.square(im), 1e-10))


def make_loss(train_cfg: TrainCfg, frame_length: int | None = None) -> ReconLoss:
    """The loss named by `train_cfg`, with STFT resolutions suited to `frame_length`."""
    return ReconLoss(
        kind=train_cfg.loss,
        stft_weight=train_cfg.stft_weight,
        fft_sizes=stft_resolutions(frame_length),
    )


def make_optimizer(train_cfg: TrainCfg) -> keras.optimizers.Optimizer:
    """Adam; with `ema_momentum` it also keeps the weights' moving average (see train.fit)."""
    if train_cfg.ema_momentum is None:
        return keras.optimizers.Adam(learning_rate=train_cfg.learning_rate)
    return keras.optimizers.Adam(learning_rate=train_cfg.learning_rate, use_ema=True,
                                 ema_momentum=train_cfg.ema_momentum)


def compile_model(model: keras.Model, train_cfg: TrainCfg, frame_length: int | None = None):
    """Compile with the configured loss and Adam; returns the model for chaining."""
    model.compile(optimizer=make_optimizer(train_cfg), loss=make_loss(train_cfg, frame_length),
                  jit_compile=train_cfg.jit_compile)
    return model
