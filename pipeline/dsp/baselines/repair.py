"""Repair of samples known to be wrong: clipped runs (at the frame's peak) and dropout gaps (zeros).

``zero_runs`` is also the oracle's notion of an untrusted sample, so both agree on what a gap is.
"""

from __future__ import annotations

import numpy as np

from pipeline.dsp.baselines.base import BaselineBase, mse, tuning_subset

__all__ = ["ClipRepair", "GapFill", "fill_runs", "run_lengths", "zero_runs"]


def run_lengths(mask: np.ndarray) -> np.ndarray:
    """Length of the run of True values each element belongs to (0 where False), per row."""
    n, t = mask.shape
    padded = np.zeros((n, t + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)  # +1 at run start, -1 one past run end
    starts = np.flatnonzero(edges.ravel() == 1)
    ends = np.flatnonzero(edges.ravel() == -1)
    lengths = np.zeros(n * (t + 1), dtype=np.int64)
    run_len = ends - starts
    # mark each run by +len at start and -len at end; a cumulative sum spreads it over the run
    np.add.at(lengths, starts, run_len)
    np.add.at(lengths, ends, -run_len)
    out = np.cumsum(lengths.reshape(n, t + 1), axis=1)[:, :t]
    return np.where(mask, out, 0)


def fill_runs(y: np.ndarray, mask: np.ndarray, method: str) -> np.ndarray:
    """Replace masked samples by interpolation from the nearest unmasked neighbours.

    ``linear`` joins the last good sample before a run to the first after it. ``cubic`` passes a
    cubic through two good samples on each side (Hermite-like, so slopes at the run ends are
    respected) and falls back to linear where those are missing. Runs touching a frame edge are
    held at the nearest good value because nothing constrains an extrapolation.
    """
    n, t = y.shape
    idx = np.arange(t)
    good = ~mask
    prev = np.maximum.accumulate(np.where(good, idx, -1), axis=1)
    nxt = np.minimum.accumulate(np.where(good, idx, t)[:, ::-1], axis=1)[:, ::-1]
    rows = np.arange(n)[:, None]
    has_p, has_q = prev >= 0, nxt < t
    p1, q1 = np.clip(prev, 0, t - 1), np.clip(nxt, 0, t - 1)
    yp1, yq1 = y[rows, p1], y[rows, q1]
    span = np.maximum(q1 - p1, 1)
    lin = yp1 + (idx - p1) / span * (yq1 - yp1)
    fill = np.where(has_p & has_q, lin, np.where(has_p, yp1, np.where(has_q, yq1, y)))
    if method == "cubic":
        p0, q2 = p1 - 1, q1 + 1
        ok = has_p & has_q & (p0 >= 0) & (q2 < t)
        p0c, q2c = np.clip(p0, 0, t - 1), np.clip(q2, 0, t - 1)
        ok &= good[rows, p0c] & good[rows, q2c]
        nodes = np.stack([p0, p1, q1, q2]).astype(np.float64)
        values = np.stack([y[rows, p0c], yp1, yq1, y[rows, q2c]])
        cubic = np.zeros_like(y)
        for i in range(4):  # Lagrange basis over the 4 nodes (fixed loop, vectorised inside)
            basis = np.ones_like(y)
            for j in range(4):
                if j != i:
                    denom = nodes[i] - nodes[j]
                    denom = np.where(denom == 0, 1.0, denom)
                    basis *= (idx - nodes[j]) / denom
            cubic += basis * values[i]
        fill = np.where(ok, cubic, fill)
    elif method != "linear":
        raise ValueError(f"unknown fill method {method!r}")
    return np.where(mask, fill, y)


class ClipRepair(BaselineBase):
    """Re-interpolate clipped runs (|y| at the frame's peak) with a local cubic.

    The clip level is the frame's own peak, so clipped samples are those within a relative 1e-6
    of it. Repaired values are forced to keep the clipped sign and at least the clip magnitude,
    because the true signal must have exceeded the level there. Runs shorter than ``min_run``
    are left alone (a single sample at the peak is usually an unclipped maximum); ``min_run`` is
    tuned by MSE.
    """

    name = "cubic"
    min_runs = (1, 2, 3)

    def __init__(self) -> None:
        super().__init__()
        self.min_run = 2

    def _repair(self, y: np.ndarray, min_run: int) -> np.ndarray:
        level = np.max(np.abs(y), axis=1, keepdims=True)
        clipped = (np.abs(y) >= level * (1 - 1e-6)) & (level > 0)
        clipped &= run_lengths(clipped) >= min_run
        filled = fill_runs(y, clipped, "cubic")
        sign = np.where(y >= 0, 1.0, -1.0)
        repaired = sign * np.maximum(np.abs(filled) * (np.sign(filled) == sign), level)
        return np.where(clipped, repaired, y)

    def _fit(self, clean: np.ndarray, degraded: np.ndarray) -> None:
        c, d = tuning_subset(clean, degraded, self.tune_samples)
        errs = [mse(self._repair(d, r), c) for r in self.min_runs]
        self.min_run = self.min_runs[int(np.argmin(errs))]
        self.params = {"min_run": self.min_run}

    def _apply(self, degraded: np.ndarray) -> np.ndarray:
        return self._repair(degraded, self.min_run)


def zero_runs(y: np.ndarray, min_run: int = 2) -> np.ndarray:
    """Runs of exact zeros of at least ``min_run`` samples: dropped packets, not zero crossings."""
    zero = y == 0.0
    return zero & (run_lengths(zero) >= min_run)


class GapFill(BaselineBase):
    """Fill dropout gaps (runs of >= 2 exact zeros) by linear or local cubic interpolation."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        if kind not in ("linear", "cubic"):
            raise ValueError(kind)
        self.name = kind

    def _apply(self, degraded: np.ndarray) -> np.ndarray:
        return fill_runs(degraded, zero_runs(degraded), self.name)
