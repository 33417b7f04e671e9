"""What every baseline shares: the protocol evaluation relies on, shape/chunk plumbing, tuning subset.

A baseline maps degraded frames ``(n, T)`` to reconstructions ``(n, T)`` (float32). ``fit`` tunes
the few knobs each method has by minimising MSE on (clean, degraded) pairs, on a deterministic
subset of about ``tune_samples`` samples: a handful of knobs does not need thousands of frames.
Calls run in chunks of about ``_CHUNK_SAMPLES`` samples so long audio frames stay within memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Baseline", "BaselineBase", "Identity", "as_frames", "chunked", "mean_power", "mse",
           "tuning_subset"]


@runtime_checkable
class Baseline(Protocol):
    """What the evaluation stage needs from a baseline: a name, a fit and a call."""

    name: str

    def fit(self, clean: np.ndarray, degraded: np.ndarray) -> Baseline: ...

    def __call__(self, degraded: np.ndarray) -> np.ndarray: ...


_CHUNK_SAMPLES = 1 << 20


def as_frames(x: Any) -> tuple[np.ndarray, tuple[int, ...]]:
    """(…, T) -> (n, T) view in the input dtype plus the original shape (1-D = one frame)."""
    a = np.asarray(x)
    if a.ndim == 0:
        raise ValueError("frames need a time axis")
    return a.reshape(-1, a.shape[-1]), a.shape


def chunked(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """Apply ``fn`` (float64 (m, T) -> (m, T)) over frame chunks into a float32 array.

    Bounds peak memory (spectra of thousands of long frames would not fit); each chunk is still
    fully vectorised.
    """
    out = np.empty(x.shape, dtype=np.float32)
    step = max(1, _CHUNK_SAMPLES // max(x.shape[-1], 1))
    for start in range(0, len(x), step):
        out[start : start + step] = fn(np.asarray(x[start : start + step], dtype=np.float64))
    return out


def mean_power(
    transform: Callable[[np.ndarray], np.ndarray], x: np.ndarray, minus: np.ndarray | None = None
) -> np.ndarray:
    """Mean over frames of |transform(x - minus)|^2, accumulated over chunks."""
    total = None
    step = max(1, _CHUNK_SAMPLES // max(x.shape[-1], 1))
    for start in range(0, len(x), step):
        chunk = np.asarray(x[start : start + step], np.float64)
        if minus is not None:
            chunk = chunk - minus[start : start + step]
        p = np.sum(np.abs(transform(chunk)) ** 2, axis=0)
        total = p if total is None else total + p
    return total / len(x)


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a - b) ** 2))


def tuning_subset(clean: np.ndarray, degraded: np.ndarray, samples: int) -> tuple[np.ndarray, ...]:
    """Deterministic evenly spaced float64 subset of about ``samples`` samples (>= 16 frames).

    Reproducible, and bounds tuning time independently of how many frames the caller passes.
    """
    n, t = clean.shape
    limit = max(16, samples // max(t, 1))
    idx = np.arange(n) if n <= limit else np.linspace(0, n - 1, limit).round().astype(int)
    return clean[idx].astype(np.float64), degraded[idx].astype(np.float64)


class BaselineBase:
    """Common plumbing: shape handling, float32 output, subset for tuning, ``params``."""

    name = "base"
    tune_samples = 1 << 19

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}

    def fit(self, clean: np.ndarray, degraded: np.ndarray) -> BaselineBase:
        c, _ = as_frames(clean)
        d, _ = as_frames(degraded)
        if len(c) == 0:
            raise ValueError("fit needs at least one frame")
        if c.shape != d.shape:
            raise ValueError(f"clean {c.shape} and degraded {d.shape} differ")
        self._fit(c, d)
        return self

    def _fit(self, clean: np.ndarray, degraded: np.ndarray) -> None:
        """Default: nothing to tune."""

    def __call__(self, degraded: np.ndarray) -> np.ndarray:
        d, shape = as_frames(degraded)
        return chunked(self._apply, d).reshape(shape)

    def _apply(self, degraded: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, params={self.params})"


class Identity(BaselineBase):
    """The degraded input itself: the floor every method must beat."""

    name = "identity"

    def _apply(self, degraded: np.ndarray) -> np.ndarray:
        return degraded
