"""Perceptual speech metrics (PESQ wideband, STOI) next to our own SI-SDR and LSD, per clip.

SNR-like numbers flatter Wiener filters on stationary noise; PESQ-WB (ITU-T P.862.2, the
``pesq`` package) and STOI (``pystoi``) are what speech-enhancement papers report, so anchors
and our models are compared on those too. Unlike ``dsp.metrics`` these work on whole clips
(1-D arrays of seconds of audio), not on batches of short frames: both need utterance-length
input (PESQ at least 1/4 s, STOI a few hundred ms of speech-active frames).

PESQ is undefined when its voice-activity detector finds no utterance (a silent or near-silent
reference): ``pesq_wb`` then returns NaN and warns instead of raising, so one silent clip does
not abort a table; ``stoi`` does the same for an all-zero reference. The warning is a plain
``RuntimeWarning`` (pipeline exception classes must be ``UserError``s) whose message names the
metric and the reason. ``np.nanmean`` skips such clips; a plain mean shows one was unscoreable.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from pesq import NoUtterancesError
from pesq import pesq as _pesq
from pystoi import stoi as _stoi
from scipy import signal as sps

from pipeline.dsp.metrics import lsd, si_sdr_db

__all__ = [
    "PESQ_RATE",
    "clip_scores",
    "pesq_wb",
    "pesq_wb_batch",
    "resample_to",
    "stoi",
    "stoi_batch",
]

PESQ_RATE = 16000  # P.862.2 wideband is defined at 16 kHz only


def _clip_pair(est, ref) -> tuple[np.ndarray, np.ndarray]:
    e = np.asarray(est, dtype=np.float64)
    r = np.asarray(ref, dtype=np.float64)
    if e.ndim != 1 or e.shape != r.shape:
        raise ValueError(f"expected two 1-D clips of equal length, got {e.shape} and {r.shape}")
    return e, r


def resample_to(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Polyphase resampling (linear-phase FIR, so no added delay) from ``rate`` to ``target``."""
    if rate == target:
        return np.asarray(x, dtype=np.float64)
    g = math.gcd(int(rate), int(target))
    return sps.resample_poly(np.asarray(x, dtype=np.float64), target // g, rate // g)


def pesq_wb(est, ref, sample_rate: int) -> float:
    """Wideband PESQ (MOS-LQO, about 1.0 to 4.64) of ``est`` against ``ref``.

    Clips at another rate are resampled to 16 kHz first. A reference in which PESQ finds no
    utterance gives NaN and a ``RuntimeWarning`` saying so (PESQ has no score for silence); a clip
    shorter than 1/4 s still raises, since that is a caller error.
    """
    e, r = _clip_pair(est, ref)
    e, r = resample_to(e, sample_rate, PESQ_RATE), resample_to(r, sample_rate, PESQ_RATE)
    try:
        return float(_pesq(PESQ_RATE, r, e, "wb"))
    except NoUtterancesError:
        warnings.warn("PESQ-WB is NaN: no utterance detected in the reference (silent or too quiet)",
                      RuntimeWarning, stacklevel=2)
        return float("nan")


def stoi(est, ref, sample_rate: int, extended: bool = False) -> float:
    """Short-time objective intelligibility (0 to 1; ``extended`` gives ESTOI) via ``pystoi``.

    pystoi resamples to 10 kHz and drops frames 40 dB below the loudest itself. An all-zero
    reference has no frames to compare: NaN and a ``RuntimeWarning`` rather than pystoi's 0.
    """
    e, r = _clip_pair(est, ref)
    if not np.any(r):
        warnings.warn("STOI is NaN: the reference is silent", RuntimeWarning, stacklevel=2)
        return float("nan")
    return float(_stoi(r, e, int(sample_rate), extended=extended))


def pesq_wb_batch(ests: Sequence[np.ndarray], refs: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
    """``pesq_wb`` per clip (clips may differ in length), as a float64 array."""
    _same_count(ests, refs)
    return np.array([pesq_wb(e, r, sample_rate) for e, r in zip(ests, refs, strict=True)])


def stoi_batch(ests: Sequence[np.ndarray], refs: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
    """``stoi`` per clip (clips may differ in length), as a float64 array."""
    _same_count(ests, refs)
    return np.array([stoi(e, r, sample_rate) for e, r in zip(ests, refs, strict=True)])


def clip_scores(ests: Sequence[np.ndarray], refs: Sequence[np.ndarray], sample_rate: int,
                with_lsd: bool = False) -> dict[str, np.ndarray]:
    """SI-SDR (dB), PESQ-WB and STOI per clip (plus LSD if asked), one array per metric.

    SI-SDR and LSD are the project's own ``dsp.metrics`` functions applied to each whole clip,
    so speech tables and frame tables use one definition.
    """
    _same_count(ests, refs)
    pairs = [_clip_pair(e, r) for e, r in zip(ests, refs, strict=True)]
    out = {
        "si_sdr_db": np.array([float(si_sdr_db(e, r)) for e, r in pairs]),
        "pesq_wb": np.array([pesq_wb(e, r, sample_rate) for e, r in pairs]),
        "stoi": np.array([stoi(e, r, sample_rate) for e, r in pairs]),
    }
    if with_lsd:
        out["lsd"] = np.array([float(lsd(e, r)) for e, r in pairs])
    return out


def _same_count(ests: Sequence, refs: Sequence) -> None:
    if len(ests) != len(refs):
        raise ValueError(f"{len(ests)} estimates for {len(refs)} references")
