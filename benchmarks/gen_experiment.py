"""Experiment (not pipeline code): where seed-noise generation loses to the random-number floor,
and a bit-identical rewrite of two lines of pipeline/dsp that recovers most of it.

`benchmarks.generate` measures `signals.sine` + `degradations.noise` at 0.64-0.7 of the floor
(drawing one Gaussian and one uniform float32 per sample) on 20000 x 100 frames. Besides those
draws the pipeline spends its time in (benchmarks.generate's breakdown and the timings below):

- `sin_t[rows]`, a fancy-index row gather (20000 rows of 100 floats): ~5x slower than
  `np.take(sin_t, rows, axis=0)`, which makes the same array;
- `np.nonzero(u < p[:, None])` over 2 M booleans of which ~100 are true: scanning the mask as
  uint64 words and expanding only the nonzero words (`sparse_nonzero`) gives the same indices
  in the same order ~3x faster.

Both rewrites give bit-identical clean and noisy frames (checked here on 3 seeds), so the
generate stages' outputs and DVC hashes would not change. Processing in cache-sized blocks of
frames (also bit-identical: split Generator draws continue one stream) was tried and does not
help: the passes are not memory-bound at this size, and the Python loop costs more than it saves.

    python -m benchmarks.gen_experiment [--frames 20000] [--repeats 21]
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.common import paired_medians
from benchmarks.generate import T, floor
from pipeline.config import NoiseDeg, SineSignal
from pipeline.dsp.degradations import noise
from pipeline.dsp.signals import TWO_PI, sine

SIG, DEG = SineSignal(), NoiseDeg(std=(0.01, 0.1))


def pipeline_both(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(clean, noisy) as the pipeline makes them (benchmarks.generate.pipeline_gen keeps noisy)."""
    x, _ = sine(SIG, n, T, rng)
    return x, noise(DEG, x, rng)[0]


def sparse_nonzero(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.nonzero of a C-contiguous 2-D boolean mask with few True values (same order), reading
    it 8 bytes at a time and expanding only the words that hold a True."""
    flat = mask.reshape(-1)
    n8 = flat.size // 8 * 8
    words = np.flatnonzero(flat[:n8].view(np.uint64))
    cand = (words[:, None] * 8 + np.arange(8)).reshape(-1)
    idx = np.concatenate([cand[flat[cand]], n8 + np.flatnonzero(flat[n8:])])
    return np.divmod(idx, mask.shape[1])


def patched(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """signals.sine (phase "zero") + degradations.noise (std branch) with the two rewrites."""
    f_lo, f_hi = SIG.f_range
    f = rng.integers(f_lo, f_hi + 1, size=n)
    amp = rng.uniform(*SIG.amplitude, size=n).astype(np.float32)
    arg = TWO_PI * np.arange(f_lo, f_hi + 1, dtype=np.float32)[:, None] * np.arange(T) / T
    x = np.take(np.sin(arg, dtype=np.float32), f - f_lo, axis=0)  # was sin_t[rows] * amp[:, None]
    x *= amp[:, None]
    std = rng.uniform(*DEG.std, size=n)
    y = rng.standard_normal((n, T), dtype=np.float32)
    y *= std.astype(np.float32)[:, None]
    y += x
    p = rng.uniform(*DEG.impulse_prob, size=n).astype(np.float32)
    a = rng.uniform(*DEG.impulse_amp, size=n).astype(np.float32)
    u = rng.random((n, T), dtype=np.float32)
    rows, cols = sparse_nonzero(u < p[:, None])  # was np.nonzero(hit)
    sign = np.where(u[rows, cols] < 0.5 * p[rows], np.float32(-1), np.float32(1))
    y[rows, cols] += sign * a[rows]
    return x, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=21)
    a = ap.parse_args()
    n = a.frames
    for seed in range(3):
        ref, new = pipeline_both(n, np.random.default_rng(seed)), patched(n, np.random.default_rng(seed))
        assert all(np.array_equal(r, s) for r, s in zip(ref, new, strict=True)), f"seed {seed} differs"
    print(f"patched: bit-identical clean and noisy frames to the pipeline's (3 seeds, {n} frames)")
    rng = np.random.default_rng(3)
    table = np.sin(np.arange(9 * T, dtype=np.float32).reshape(9, T))
    rows = rng.integers(0, 9, n)
    u, p = rng.random((n, T), dtype=np.float32), rng.uniform(0, 1e-4, n).astype(np.float32)
    mask = u < p[:, None]
    npr = np.random.default_rng
    fns = {"pipeline": lambda: pipeline_both(n, npr(0)), "patched": lambda: patched(n, npr(0)),
           "floor": lambda: floor(n, npr(1)),
           "gather sin_t[rows]": lambda: table[rows], "np.take(sin_t, rows)": lambda: np.take(table, rows, 0),
           "np.nonzero(mask)": lambda: np.nonzero(mask), "sparse_nonzero(mask)": lambda: sparse_nonzero(mask)}
    for fn in fns.values():
        fn()
    med = paired_medians(fns, a.repeats)
    for k, v in med.items():
        ratio = f"   generator / floor = {med['floor'] / v:.2f}" if k in ("pipeline", "patched") else ""
        print(f"{k:<22} {v * 1e3:7.2f} ms{ratio}")


if __name__ == "__main__":
    main()
