"""Custom Keras layers of the audiorecon models, registered for safe-mode loading.

Importing this module is what a saved ``model.keras`` needs to load with
``keras.models.load_model(path, safe_mode=True, compile=False)``: every layer is registered
under the ``audiorecon`` package with its class name, as files written before the split of
``pipeline.nn.models`` expect. No Lambda layers: safe mode refuses to deserialize them.
"""

from __future__ import annotations

import math

import keras
from keras import layers, ops

PACKAGE = "audiorecon"
register = keras.saving.register_keras_serializable(package=PACKAGE)


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


# From this many taps FixedFIR convolves by FFT: a 1-channel conv of a 511-tap filter took a third
# of the prefiltered U-Net's inference time (filters 8) on 2 cores; by FFT it is a few per cent.
FFT_MIN_TAPS = 64


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
        if len(self.taps) < FFT_MIN_TAPS:
            return ops.conv(padded, ops.cast(self._kernel, x.dtype), padding="valid")
        return self._fft_valid(padded[..., 0], t)[..., None]

    def _fft_valid(self, padded, t):
        """The 'valid' part of padded * taps by FFT (length: the power of two >= the padded frame).

        A circular convolution of length n >= len(padded) only wraps into the first taps - 1
        outputs of the full convolution, which 'valid' drops.
        """
        half = len(self.taps) // 2
        length = ops.cast(ops.shape(padded)[1], "float32")
        n = ops.cast(2.0 ** ops.ceil(ops.log2(length)), "int32")
        xr, xi = ops.rfft(padded, fft_length=n)
        hr, hi = ops.rfft(ops.convert_to_tensor([self.taps], dtype=padded.dtype), fft_length=n)
        y = ops.irfft((xr * hr - xi * hi, xr * hi + xi * hr), fft_length=n)
        return y[:, 2 * half : 2 * half + t]

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
    """Apply a real mask to an STFT and invert it: [real, imag, mask] -> (b, T', 1)."""

    def call(self, inputs):
        if len(inputs) != 3:  # a fourth input was the imaginary part of the retired complex mask
            raise ValueError("MaskedISTFT takes [real, imag, mask]; complex masks were retired "
                             "(docs/experiments.md, Retired options)")
        re, im, mask = inputs
        n, hop = self.n_fft, self.hop
        y = ops.istft((re * mask, im * mask), sequence_length=n, sequence_stride=hop,
                      fft_length=n, center=False)
        return y[:, n - hop : -(n - hop), None]  # undo Spectrogram's padding

    def compute_output_shape(self, input_shape):
        b, frames, _ = input_shape[0]
        hop = self.hop
        t = None if frames is None else (frames - 1) * hop + self.n_fft - 2 * (self.n_fft - hop)
        return (b, t, 1)
