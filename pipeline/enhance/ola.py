"""Overlap-add over frames: seamless frame-model inference on signals of any length (numpy)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

Predict = Callable[[np.ndarray], np.ndarray]
Progress = Callable[[int, int], None]


def _window(name: str | None, n: int) -> np.ndarray:
    """Periodic windows: their shifted copies sum to a constant, so normalisation is mild."""
    if name is None or name in ("rect", "boxcar", "ones"):
        return np.ones(n, dtype=np.float32)
    if name in ("hann", "hanning"):
        k = np.arange(n, dtype=np.float64)
        return (0.5 - 0.5 * np.cos(2.0 * np.pi * k / n)).astype(np.float32)
    raise ValueError(f"unknown window {name!r}; use 'hann' or 'rect'")


def _edge_pads_from(
    first: np.ndarray, last: np.ndarray, n: int, left: int, right: int, mode: str
) -> tuple[np.ndarray, np.ndarray]:
    """Padding arrays from the signal's first and last ``k`` samples (see :meth:`OLAPlan.edge_k`)."""
    if mode == "constant":
        return np.zeros(left, np.float32), np.zeros(right, np.float32)
    if mode != "reflect":
        raise ValueError(f"unknown pad_mode {mode!r}; use 'reflect' or 'constant'")
    first = np.asarray(first, dtype=np.float32)
    last = np.asarray(last, dtype=np.float32)
    head = np.pad(first, (left, 0), mode="reflect")[:left] if n > 1 else np.repeat(first, left)
    tail = np.pad(last, (0, right), mode="reflect")[last.shape[0] :] if n > 1 else np.repeat(
        last, right
    )
    return head.astype(np.float32), tail.astype(np.float32)


def _edge_pads(x: np.ndarray, left: int, right: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Build only the (short) padding arrays instead of a padded copy of the whole signal."""
    n = x.shape[0]
    k = min(n, max(left, right) + 1)  # enough samples to reflect without repeating
    return _edge_pads_from(x[:k], x[n - k :], n, left, right, mode)


def padded_range(head: np.ndarray, read: Callable[[int, int], np.ndarray], tail: np.ndarray,
                 n: int, a: int, b: int) -> np.ndarray:
    """Samples [a, b) of the virtual signal ``head + x + tail``, where x has ``n`` samples and
    ``read(xa, xb)`` returns x[xa:xb]: only the slices [a, b) touches are built."""
    left = head.shape[0]
    parts = []
    if a < left:
        parts.append(head[a : min(b, left)])
    xa, xb = max(a - left, 0), min(b - left, n)
    if xa < xb:
        parts.append(read(xa, xb))
    if b > left + n:
        parts.append(tail[max(a - left - n, 0) : b - left - n])
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


class OLAPlan:
    """Index arithmetic of :func:`overlap_add` for a signal of ``n`` samples.

    Frames of ``frame_length`` T start every ``hop`` samples (default T//2) on a grid fixed
    by ``n`` alone: frame k covers padded samples [k*hop, k*hop + T), where the signal is
    virtually padded by ``left`` = T-hop samples on the left (and ``right`` on the right).
    :meth:`run` computes any output range [A, B) from the input samples
    :meth:`input_range` names, so a long signal can be processed block by block with results
    equal to the whole-signal call (same frames, same windows, same normalisation).
    """

    def __init__(
        self,
        n: int,
        frame_length: int,
        hop: int | None = None,
        window: str | None = "hann",
        batch_frames: int = 256,
        pad_mode: str = "reflect",
    ) -> None:
        T = int(frame_length)
        hop = T // 2 if hop is None else int(hop)
        if T < 1 or hop < 1:
            raise ValueError(f"need frame_length >= 1 and hop >= 1, got T={T}, hop={hop}")
        if hop > T:
            raise ValueError(f"hop {hop} > frame_length {T} would leave samples uncovered")
        if batch_frames < 1:
            raise ValueError(f"batch_frames must be >= 1, got {batch_frames}")
        if pad_mode not in ("reflect", "constant"):
            raise ValueError(f"unknown pad_mode {pad_mode!r}; use 'reflect' or 'constant'")
        self.n, self.T, self.hop = int(n), T, hop
        self.batch_frames, self.pad_mode = int(batch_frames), pad_mode
        w = _window(window, T)
        reps = -(-T // hop)  # frames overlapping any one sample, at most
        wpad = np.zeros(reps * hop, np.float32)
        wpad[:T] = w
        norm = wpad.reshape(reps, hop).sum(axis=0, dtype=np.float64)  # weight sum per phase
        if norm.min() < 1e-3 * norm.max():
            raise ValueError(f"window {window!r} with hop {hop} (T={T}) does not overlap-add "
                             "to a usable weight; use a smaller hop (e.g. T//2)")
        self.w, self.reps = w, reps
        self.inv_norm = (1.0 / norm).astype(np.float32)
        self.left = T - hop
        last = self.left + self.n - 1  # padded index of the last real sample
        self.n_frames = last // hop + 1 if self.n > 0 else 0
        self.right = (self.n_frames - 1) * hop + T - self.left - self.n if self.n > 0 else 0

    def edge_k(self) -> int:
        """How many first and last input samples :meth:`edge_pads` needs."""
        return min(self.n, max(self.left, self.right) + 1)

    def edge_pads(self, first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Head/tail padding from x[:edge_k()] and x[n - edge_k():]."""
        return _edge_pads_from(first, last, self.n, self.left, self.right, self.pad_mode)

    def _frames(self, A: int, B: int) -> tuple[int, int]:
        """First and last (inclusive) frame covering output samples [A, B)."""
        hop, left = self.hop, self.left
        k_lo = max(0, -(-(A + left - self.T + 1) // hop))
        k_hi = min(self.n_frames - 1, (B - 1 + left) // hop)
        return k_lo, k_hi

    def input_range(self, A: int, B: int) -> tuple[int, int]:
        """Input samples [a, b) (clipped to the signal) that output range [A, B) depends on."""
        k_lo, k_hi = self._frames(A, B)
        a = max(k_lo * self.hop - self.left, 0)
        b = min(k_hi * self.hop + self.T - self.left, self.n)
        return a, b

    def run(
        self,
        xs: np.ndarray,
        offset: int,
        A: int,
        B: int,
        predict: Predict,
        head: np.ndarray,
        tail: np.ndarray,
        progress: Progress | None = None,
    ) -> np.ndarray:
        """Output samples [A, B); ``xs`` holds input x[offset : offset + len(xs)] and must
        cover :meth:`input_range` (A, B); ``head``/``tail`` come from :meth:`edge_pads`."""
        n, T, hop, left, reps = self.n, self.T, self.hop, self.left, self.reps
        xs = np.asarray(xs, dtype=np.float32)
        if not 0 <= A < B <= n:
            raise ValueError(f"output range [{A}, {B}) outside [0, {n})")
        k_lo, k_hi = self._frames(A, B)
        xa_need, xb_need = self.input_range(A, B)
        if offset > xa_need or offset + xs.shape[0] < xb_need:
            raise ValueError(f"input slice [{offset}, {offset + xs.shape[0]}) does not cover "
                             f"[{xa_need}, {xb_need})")

        def padded(a: int, b: int) -> np.ndarray:
            return padded_range(head, lambda xa, xb: xs[xa - offset : xb - offset], tail, n, a, b)

        base = k_lo * hop  # padded index of acc[0]; a multiple of hop, so phases line up
        acc = np.zeros((k_hi - k_lo + reps) * hop, np.float32)
        for k0 in range(k_lo, k_hi + 1, self.batch_frames):
            k1 = min(k0 + self.batch_frames, k_hi + 1)
            m = k1 - k0
            seg = padded(k0 * hop, (k1 - 1) * hop + T)
            frames = np.ascontiguousarray(sliding_window_view(seg, T)[::hop])
            y = np.asarray(predict(frames), dtype=np.float32)
            if y.shape != frames.shape:
                raise ValueError(f"predict returned shape {y.shape} for frames {frames.shape}")
            yw = np.zeros((m, reps * hop), np.float32)
            yw[:, :T] = y * self.w
            # Vectorised overlap-add: split each frame into `reps` hop-sized pieces; piece r
            # of frame k lands on hop-slot k + r.
            region = acc[k0 * hop - base : (k1 + reps - 1) * hop - base].reshape(m + reps - 1,
                                                                                  hop)
            for r in range(reps):
                region[r : r + m] += yw[:, r * hop : (r + 1) * hop]
            if progress is not None:
                progress(min(max(k1 * hop - left, 0), n), n)
        acc.reshape(-1, hop)[...] *= self.inv_norm
        return acc[A + left - base : B + left - base]


def overlap_add(
    x: np.ndarray,
    predict: Predict,
    frame_length: int,
    hop: int | None = None,
    window: str | None = "hann",
    batch_frames: int = 256,
    progress: Progress | None = None,
    pad_mode: str = "reflect",
) -> np.ndarray:
    """Run ``predict`` on overlapping frames of ``x`` and overlap-add the windowed outputs.

    Frames of ``frame_length`` T start every ``hop`` samples (default T//2). The signal is
    virtually padded by T-hop samples on the left (and enough on the right) so that every
    output sample is covered by the same full set of frames; the summed window weight is
    then periodic in ``hop`` and bounded away from 0, which makes dividing by it safe and an
    identity model reconstruct ``x`` exactly for any length (even 1). Frames are fed raw, as
    in training; only outputs are windowed. Work proceeds in blocks of ``batch_frames``
    frames, so beyond the output array memory is O(batch_frames * T). This is
    :meth:`OLAPlan.run` over the whole range [0, n); the streaming enhancer calls it on
    sub-ranges.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"overlap_add expects a 1-D signal, got shape {x.shape}")
    n = x.shape[0]
    plan = OLAPlan(n, frame_length, hop=hop, window=window, batch_frames=batch_frames,
                   pad_mode=pad_mode)
    if n == 0:
        return np.zeros(0, np.float32)
    k = plan.edge_k()
    head, tail = plan.edge_pads(x[:k], x[n - k :])
    return plan.run(x, 0, 0, n, predict, head, tail, progress=progress)


def naive_frames(
    x: np.ndarray, predict: Predict, frame_length: int, batch_frames: int = 256
) -> np.ndarray:
    """Disjoint frames, outputs concatenated (zero-padded tail): the seamed baseline."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"naive_frames expects a 1-D signal, got shape {x.shape}")
    n, T = x.shape[0], int(frame_length)
    n_frames = -(-n // T)
    out = np.zeros(n_frames * T, np.float32)
    for k0 in range(0, n_frames, batch_frames):
        k1 = min(k0 + batch_frames, n_frames)
        frames = np.zeros((k1 - k0) * T, np.float32)
        chunk = x[k0 * T : k1 * T]
        frames[: chunk.size] = chunk
        y = np.asarray(predict(frames.reshape(k1 - k0, T)), dtype=np.float32)
        out[k0 * T : k1 * T] = y.reshape(-1)
    return out[:n]


def seam_ratio(error: np.ndarray, frame_length: int, hop: int, halfwidth: int = 8) -> float:
    """How much the reconstruction error jumps at frame boundaries (1 = no seams).

    Computes d = diff(error) and returns mean(d**2) over samples within ``halfwidth`` of a
    boundary (a multiple of ``hop``; pass ``hop=frame_length`` for naive concatenation)
    divided by mean(d**2) everywhere else. The first difference matters: a per-frame bias
    spreads the same error energy over the whole frame, so a plain energy ratio is ~1, but
    it changes abruptly at the boundary, which the difference concentrates there.
    ``frame_length`` is accepted for symmetry with the other functions; boundaries of
    overlap-add frames coincide with multiples of ``hop`` when hop divides it.
    """
    e = np.asarray(error, dtype=np.float64).reshape(-1)
    hop = int(hop)
    if hop < 1 or halfwidth < 0:
        raise ValueError("hop must be >= 1 and halfwidth >= 0")
    if 2 * halfwidth + 1 >= hop:
        raise ValueError(f"halfwidth {halfwidth} too large for hop {hop}: no samples left")
    d2 = np.diff(e) ** 2
    if d2.size < hop:
        raise ValueError(f"error signal ({e.size} samples) shorter than one hop ({hop})")
    # d[i] is the step between samples i and i+1; assign it to sample p = i+1 (a jump at
    # boundary b shows up as d[b-1]). Positions near p = 0 (the signal start) are skipped.
    pos = np.arange(1, d2.size + 1)
    phase = pos % hop
    dist = np.minimum(phase, hop - phase)
    valid = pos > halfwidth
    near = valid & (dist <= halfwidth)
    far = valid & ~near
    e_near = d2[near].mean() if near.any() else 0.0
    e_far = d2[far].mean()
    if e_far == 0.0:
        return float("inf") if e_near > 0 else 1.0
    return float(e_near / e_far)


