"""Known-signal oracles, bounds and task facts: what no method can beat, and why.

``oracle`` uses knowledge of the signal family (a single sinusoid from a known dictionary) that no
real system has; it is an upper bound. ``oracle_task_facts`` reports the degeneracies (atoms
invisible or confusable under the degradation) that bound any method, ``bandwidth_task_facts``
what bandwidth reduction leaves predictable, and ``ideal_mask_bound`` the ceiling of real-valued
STFT masks. All take the typed signal/degradation configs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy import signal as sps

from pipeline.config import (
    BandwidthDeg,
    BitdepthDeg,
    ClipDeg,
    Degradation,
    DropoutDeg,
    HarmonicSignal,
    NoiseDeg,
    QuantizeDeg,
    Signal,
    SineSignal,
)
from pipeline.dsp.baselines.base import as_frames, chunked
from pipeline.dsp.baselines.repair import zero_runs

__all__ = ["bandwidth_task_facts", "ideal_mask_bound", "oracle", "oracle_task_facts"]


def _int_range(bounds) -> np.ndarray:
    lo, hi = bounds
    return np.arange(math.ceil(lo), math.floor(hi) + 1)


def _held_mask(t: int, factor: int) -> np.ndarray:
    return (np.arange(t) % max(int(factor), 1)) == 0


def _first_minimum(resid: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Index of the lowest-frequency atom whose residual ties the minimum.

    Aliased atoms (e.g. f and K - f seen only at held instants) fit equally well; rounding
    would otherwise pick one at random, while preferring the lowest frequency is the usual
    band-limited reading of ambiguous samples and makes the oracle deterministic.
    """
    tol = 1e-9 * energy + 1e-12
    return np.argmax(resid <= resid.min(axis=1, keepdims=True) + tol, axis=1)


def _all_samples(deg: Degradation, y: np.ndarray) -> np.ndarray:
    return np.ones_like(y, dtype=bool)


def _held_samples(deg: QuantizeDeg, y: np.ndarray) -> np.ndarray:
    return np.broadcast_to(_held_mask(y.shape[-1], deg.factor), y.shape)


def _unclipped_samples(deg: ClipDeg, y: np.ndarray) -> np.ndarray:
    level = np.max(np.abs(y), axis=1, keepdims=True)
    return np.abs(y) < level * (1 - 1e-6)


def _non_gap_samples(deg: DropoutDeg, y: np.ndarray) -> np.ndarray:
    return ~zero_runs(y)


# Degradations the oracle models, each with the samples (n, T) -> mask it may trust. Bandwidth is
# absent: its anti-alias filter response would have to be modelled exactly.
_TRUSTED: dict[type, Callable[[Degradation, np.ndarray], np.ndarray]] = {
    NoiseDeg: _all_samples,
    QuantizeDeg: _held_samples,
    BitdepthDeg: _all_samples,
    ClipDeg: _unclipped_samples,
    DropoutDeg: _non_gap_samples,
}


class _SineOracle:
    """Masked least-squares fit of the known sine dictionary, vectorised over frames.

    For each atom the amplitude (zero phase) or the sin/cos pair (random phase) is fitted on the
    trusted samples only (all samples for noise and bit depth, the held instants for
    sample-and-hold, unclipped samples for clipping, non-gap samples for dropout), constrained to
    the known amplitude range, and the atom with the smallest masked residual wins. For noise the
    fit is refitted twice after masking samples with robust-outlier residuals (impulses).
    Amplitudes that no trusted sample constrains take their conditional mean: mid-range for a
    zero-phase atom, zero for a phase component that is invisible.
    """

    name = "oracle"

    def __init__(self, signal: SineSignal, degradation: Degradation) -> None:
        self.freqs = _int_range(signal.f_range)
        self.amp_lo, self.amp_hi = (float(a) for a in signal.amplitude)
        self.random_phase = signal.phase == "random"
        self.degradation = degradation
        self._trusted = _TRUSTED[type(degradation)]

    def _weights(self, y: np.ndarray) -> np.ndarray:
        return self._trusted(self.degradation, y)

    def _fit(self, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        t = y.shape[-1]
        phase = 2 * np.pi * np.outer(self.freqs, np.arange(t)) / t
        sin, cos = np.sin(phase), np.cos(phase)
        w = w.astype(np.float64)
        wy = w * y
        yy = np.sum(wy * y, axis=1, keepdims=True)
        tiny = 1e-9 * np.maximum(np.sum(w, axis=1, keepdims=True), 1.0)
        if not self.random_phase:
            num, den = wy @ sin.T, w @ (sin**2).T
            visible = den > tiny
            amp = np.where(visible, num / np.where(visible, den, 1.0), 0.5 * (self.amp_lo + self.amp_hi))
            amp = np.clip(amp, self.amp_lo, self.amp_hi)
            resid = yy - 2 * amp * num + amp**2 * den
            best = _first_minimum(resid, yy)
            rows = np.arange(len(y))
            return amp[rows, best][:, None] * sin[best]
        b = np.stack([wy @ sin.T, wy @ cos.T], axis=-1)  # (n, F, 2)
        gss, gcc, gsc = w @ (sin**2).T, w @ (cos**2).T, w @ (sin * cos).T
        gram = np.stack([np.stack([gss, gsc], -1), np.stack([gsc, gcc], -1)], -2)
        scale = np.maximum(gss + gcc, tiny)[..., None, None]
        coef = np.einsum(
            "nfij,nfj->nfi",
            np.linalg.pinv(gram / scale, rcond=1e-9, hermitian=True),
            b / scale[..., 0],
        )
        amp = np.linalg.norm(coef, axis=-1, keepdims=True)
        full_rank = (np.abs(gss * gcc - gsc**2) > 1e-9 * scale[..., 0, 0] ** 2)[..., None]
        target = np.clip(amp, self.amp_lo, self.amp_hi)
        target = np.where(full_rank | (amp > self.amp_hi), target, amp)
        coef = coef * np.where(amp > 0, target / np.where(amp > 0, amp, 1.0), 0.0)
        resid = yy - 2 * np.sum(coef * b, -1) + np.einsum("nfi,nfij,nfj->nf", coef, gram, coef)
        best = _first_minimum(resid, yy)
        c = coef[np.arange(len(y)), best]
        return c[:, :1] * sin[best] + c[:, 1:] * cos[best]

    def __call__(self, degraded: np.ndarray) -> np.ndarray:
        y, shape = as_frames(degraded)
        return chunked(self._estimate, y).reshape(shape)

    def _estimate(self, y: np.ndarray) -> np.ndarray:
        w = self._weights(y)
        est = self._fit(y, w)
        if isinstance(self.degradation, NoiseDeg):
            for _ in range(2):
                r = np.abs(y - est)
                sigma = 1.4826 * np.median(r, axis=1, keepdims=True)
                inlier = (r <= 4 * sigma) | (sigma == 0)
                est = self._fit(y, w & inlier)
        return est


def oracle(signal: Signal, degradation: Degradation) -> Callable[[np.ndarray], np.ndarray] | None:
    """Known-dictionary oracle for the ``sine`` family, or None where no oracle is defined.

    Defined for noise, quantize (sample-and-hold), bitdepth, clip and dropout; not for bandwidth.
    """
    if not isinstance(signal, SineSignal) or type(degradation) not in _TRUSTED:
        return None
    return _SineOracle(signal, degradation)


def _static_trusted(degradation: Degradation, t: int) -> tuple[np.ndarray, str] | None:
    """Trusted-sample mask of one frame and how to name it, where it does not depend on the data."""
    if isinstance(degradation, QuantizeDeg):
        mask = _held_mask(t, degradation.factor)
        return mask, f"the {int(mask.sum())} held instants n = {degradation.factor}*m"
    if isinstance(degradation, (NoiseDeg, BitdepthDeg)):
        return np.ones(t, dtype=bool), f"all {t} samples"
    return None  # clip and dropout trust data-dependent samples; bandwidth has no oracle


def _alias_fact(factor: int, t: int, freqs: np.ndarray) -> str:
    nyq = t / (2 * factor)
    above = [int(f) for f in freqs if f > nyq]
    return (
        f"quantize K={factor}, T={t}: held-sample Nyquist is {nyq:g} cycles/frame"
        + (f"; atoms f={above} lie above it and alias" if above else "")
    )


def _zero_phase_facts(
    freqs: np.ndarray, n: np.ndarray, t: int, where: str, amplitude: tuple[float, float]
) -> list[str]:
    """Invisible atoms and pairs that coincide or are opposite on the trusted samples ``n``."""
    tol = 1e-9 * max(len(n), 1)
    amp_lo, amp_hi = amplitude
    facts: list[str] = []
    atoms = np.sin(2 * np.pi * np.outer(freqs, n) / t)
    energy = np.sum(atoms**2, axis=1)
    visible = energy > tol
    for f in freqs[~visible]:
        facts.append(f"atom f={f} is zero at {where}: invisible, amplitude unobservable")
    unit = atoms / np.sqrt(np.where(visible, energy, 1.0))[:, None]
    cos_sim = unit @ unit.T
    for i, j in zip(*np.triu_indices(len(freqs), 1), strict=True):
        if not (visible[i] and visible[j]):
            continue
        fi, fj = int(freqs[i]), int(freqs[j])
        if cos_sim[i, j] > 1 - 1e-9:
            facts.append(f"atoms f={fi} and f={fj} are identical at {where}: indistinguishable")
        elif cos_sim[i, j] < -1 + 1e-9:
            sign_note = (
                "the amplitude range is one-signed, so it resolves them"
                if amp_lo * amp_hi > 0
                else "the amplitude range allows both signs, so they are indistinguishable"
            )
            facts.append(
                f"atoms f={fi} and f={fj} are equal up to sign at {where}: distinguishable "
                f"only through the amplitude's sign ({sign_note})"
            )
    return facts


def _random_phase_facts(freqs: np.ndarray, n: np.ndarray, t: int, where: str) -> list[str]:
    """Atoms whose sin/cos plane collapses on the trusted samples ``n``, and pairs sharing one."""
    tol = 1e-9 * max(len(n), 1)
    facts: list[str] = []
    projections, ranks = [], []
    for f in freqs:
        basis = np.stack([np.sin(2 * np.pi * f * n / t), np.cos(2 * np.pi * f * n / t)], axis=1)
        u, s, _ = np.linalg.svd(basis, full_matrices=False)
        rank = int(np.sum(s**2 > tol))
        ranks.append(rank)
        projections.append(u[:, :rank] @ u[:, :rank].T)
        if rank == 0:
            facts.append(f"atom f={f} is zero at {where}: invisible for every phase")
        elif rank == 1:
            facts.append(f"atom f={f} shows a single phase component at {where}: phase ambiguous")
    for i, j in zip(*np.triu_indices(len(freqs), 1), strict=True):
        if ranks[i] == 0 or ranks[i] != ranks[j]:
            continue
        if np.allclose(projections[i], projections[j], atol=1e-8):
            facts.append(
                f"atoms f={int(freqs[i])} and f={int(freqs[j])} span the same sin/cos plane at "
                f"{where}: indistinguishable (the random phase absorbs the difference)"
            )
    return facts


def oracle_task_facts(signal: Signal, degradation: Degradation, frame_length: int) -> list[str]:
    """Degeneracies of the sine dictionary on the samples the degradation leaves trustworthy.

    Computed from the atoms restricted to the static trusted samples (the held instants for
    sample-and-hold, every sample for noise and bit depth): atoms with ~zero energy there are
    invisible, and pairs whose restricted atoms coincide or are opposite (zero phase), or span the
    same sin/cos plane (random phase), cannot be told apart by any method. Kinds whose trusted
    samples depend on the data (clip, dropout) or have no oracle yield no facts.
    """
    t = int(frame_length)
    trusted = _static_trusted(degradation, t) if isinstance(signal, SineSignal) else None
    if trusted is None:
        return []
    mask, where = trusted
    freqs = _int_range(signal.f_range)
    n = np.arange(t)[mask]
    facts = [_alias_fact(degradation.factor, t, freqs)] if isinstance(degradation, QuantizeDeg) else []
    if signal.phase == "random":
        return facts + _random_phase_facts(freqs, n, t, where)
    return facts + _zero_phase_facts(freqs, n, t, where, signal.amplitude)


def bandwidth_task_facts(signal: Signal, degradation: Degradation, sample_rate: int) -> list[str]:
    """What bandwidth reduction leaves predictable, for the report next to the bound's gain."""
    if not isinstance(degradation, BandwidthDeg):
        return []
    cutoff = sample_rate / (2 * degradation.factor)
    facts = [f"bandwidth factor {degradation.factor} at {sample_rate} Hz: nothing above "
             f"{cutoff:g} Hz survives"]
    if isinstance(signal, HarmonicSignal):
        facts.append(
            "the harmonic family draws each harmonic's phase independently, so harmonics above "
            f"{cutoff:g} Hz cannot be predicted from the band below; what a model can restore is "
            "the filter's transition band and what leaks across the cutoff within a frame"
        )
    return facts

def ideal_mask_bound(clean: np.ndarray, degraded: np.ndarray, nperseg: int = 512) -> np.ndarray:
    """Phase-sensitive ideal mask: the best any real-valued STFT gain can do, given the clean.

    Per bin, the real gain g in [0, 1] minimising |g D - S|^2 is Re(S D*) / |D|^2 (clipped).
    A real mask on this STFT (Hann, `nperseg`, hop nperseg/4) keeps the noisy phase, so its
    error is at least this one's: the ceiling for such masks (a mask on other frames, like the
    stft_mask net's, is bounded only approximately), and not a method itself.
    """
    c = np.asarray(clean, dtype=np.float64)
    d = np.asarray(degraded, dtype=np.float64)
    t = c.shape[-1]
    nperseg = int(min(nperseg, 2 ** int(math.log2(max(t // 2, 8)))))
    kw = {"nperseg": nperseg, "noverlap": 3 * nperseg // 4, "axis": -1}
    s, z = sps.stft(c, **kw)[2], sps.stft(d, **kw)[2]
    gain = np.clip(np.real(s * np.conj(z)) / (np.abs(z) ** 2 + 1e-20), 0.0, 1.0)
    y = sps.istft(gain * z, nperseg=nperseg, noverlap=3 * nperseg // 4)[1]
    return y[..., :t].astype(np.float32)
