"""Experiment (not pipeline code): seed-noise generation in cache-sized blocks, same output.

`benchmarks.generate` measures `signals.sine` + `degradations.noise` at ~0.64 of the
random-number floor on 20000 x 100 frames. The floor writes two (n, T) float32 arrays (a
Gaussian and a uniform per sample); the pipeline makes about five more full passes over 8 MB
arrays that do not fit in the cache: the sine gather, the amplitude product (a second new
array), y *= std, y += x, u < p and np.nonzero over the mask, plus the full-size uniform `u`
that only the impulse test reads.

This variant draws the same random numbers in the same order (Generator draws split into
consecutive calls continue one stream), so its clean and noisy frames are bit-identical to the
pipeline's, but it works on blocks of `block` frames that stay in the cache while every pass
runs over them, and reuses one block-sized buffer for the uniforms. Run:

    python -m benchmarks.gen_blocked [--frames 20000] [--repeats 7] [--block 1024]

It checks bit-identity with the pipeline's arrays and prints generator / floor for the pipeline,
the fused variant (`blocked`: sine and noise in one loop) and the patch that keeps the two
functions (`separate`: sine's product in place, noise in blocks).
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.common import paired_medians
from benchmarks.generate import T, floor
from pipeline.config import NoiseDeg, SineSignal
from pipeline.dsp.degradations import noise
from pipeline.dsp.signals import TWO_PI, sine


def pipeline_both(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(clean, noisy) as the pipeline makes them (benchmarks.generate.pipeline_gen keeps noisy)."""
    x, _ = sine(SineSignal(), n, T, rng)
    return x, noise(NoiseDeg(std=(0.01, 0.1)), x, rng)[0]


def blocked(n: int, rng: np.random.Generator, block: int = 1024,
            sig: SineSignal = SineSignal(), deg: NoiseDeg = NoiseDeg(std=(0.01, 0.1))
            ) -> tuple[np.ndarray, np.ndarray]:
    """signals.sine (phase "zero") then degradations.noise (std branch), in blocks of frames."""
    f_lo, f_hi = sig.f_range
    f = rng.integers(f_lo, f_hi + 1, size=n)  # sine's draws, in sine's order
    amp = rng.uniform(*sig.amplitude, size=n).astype(np.float32)
    arg = TWO_PI * np.arange(f_lo, f_hi + 1, dtype=np.float32)[:, None] * np.arange(T) / T
    sin_t = np.sin(arg, dtype=np.float32)
    rows = f - f_lo
    std = rng.uniform(*deg.std, size=n).astype(np.float32)  # noise's draws, in noise's order
    x = np.empty((n, T), np.float32)
    y = np.empty((n, T), np.float32)
    for i in range(0, n, block):
        j = min(n, i + block)
        np.multiply(sin_t[rows[i:j]], amp[i:j, None], out=x[i:j])
        yb = y[i:j]
        rng.standard_normal(out=yb, dtype=np.float32)  # one (n, T) call, in consecutive pieces
        yb *= std[i:j, None]
        yb += x[i:j]
    p = rng.uniform(*deg.impulse_prob, size=n).astype(np.float32)
    a = rng.uniform(*deg.impulse_amp, size=n).astype(np.float32)
    u = np.empty((block, T), np.float32)
    for i in range(0, n, block):
        j = min(n, i + block)
        ub = u[: j - i]
        rng.random(out=ub, dtype=np.float32)
        r, c = np.nonzero(ub < p[i:j, None])
        if r.size:
            sign = np.where(ub[r, c] < 0.5 * p[i + r], np.float32(-1), np.float32(1))
            y[i + r, c] += sign * a[i + r]
    return x, y


def sine_inplace(n: int, rng: np.random.Generator, sig: SineSignal = SineSignal()) -> np.ndarray:
    """signals.sine (phase "zero") with the amplitude product in place: one new array, not two."""
    f_lo, f_hi = sig.f_range
    f = rng.integers(f_lo, f_hi + 1, size=n)
    amp = rng.uniform(*sig.amplitude, size=n).astype(np.float32)
    arg = TWO_PI * np.arange(f_lo, f_hi + 1, dtype=np.float32)[:, None] * np.arange(T) / T
    frames = np.sin(arg, dtype=np.float32)[f - f_lo]
    frames *= amp[:, None]
    return frames


def noise_blocked(x: np.ndarray, rng: np.random.Generator, block: int = 1024,
                  deg: NoiseDeg = NoiseDeg(std=(0.01, 0.1))) -> np.ndarray:
    """degradations.noise (std branch) over blocks of frames of a given clean `x`: the patch
    that keeps sine and noise separate functions (as the pipeline's registry calls them)."""
    n = x.shape[0]
    std = rng.uniform(*deg.std, size=n).astype(np.float32)
    y = np.empty_like(x)
    for i in range(0, n, block):
        yb = y[i : i + block]
        rng.standard_normal(out=yb, dtype=np.float32)
        yb *= std[i : i + block, None]
        yb += x[i : i + block]
    p = rng.uniform(*deg.impulse_prob, size=n).astype(np.float32)
    a = rng.uniform(*deg.impulse_amp, size=n).astype(np.float32)
    u = np.empty((min(block, n), x.shape[1]), np.float32)
    for i in range(0, n, block):
        ub = u[: min(n, i + block) - i]
        rng.random(out=ub, dtype=np.float32)
        r, c = np.nonzero(ub < p[i : i + block, None])
        if r.size:
            sign = np.where(ub[r, c] < 0.5 * p[i + r], np.float32(-1), np.float32(1))
            y[i + r, c] += sign * a[i + r]
    return y


def separate(n: int, rng: np.random.Generator, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    x = sine_inplace(n, rng)
    return x, noise_blocked(x, rng, block)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--block", type=int, nargs="+", default=[256, 1024, 4096])
    a = ap.parse_args()
    for seed in range(3):
        xp, yp = pipeline_both(a.frames, np.random.default_rng(seed))
        for b in a.block:
            for fn in (blocked, separate):
                xb, yb = fn(a.frames, np.random.default_rng(seed), b)
                assert np.array_equal(xp, xb) and np.array_equal(yp, yb), f"{fn.__name__} differs"
    print(f"bit-identical clean and noisy frames to the pipeline's (3 seeds, blocks {a.block})")
    npr = np.random.default_rng
    fns = {"pipeline": lambda: pipeline_both(a.frames, npr(0)), "floor": lambda: floor(a.frames, npr(1))}
    fns.update({f"fused {b}": (lambda b=b: blocked(a.frames, npr(0), b)) for b in a.block})
    fns.update({f"separate {b}": (lambda b=b: separate(a.frames, npr(0), b)) for b in a.block})
    for fn in fns.values():
        fn()
    med = paired_medians(fns, a.repeats)
    for k, v in med.items():
        print(f"{k:<14} {v * 1e3:7.2f} ms   generator / floor = {med['floor'] / v:.2f}")


if __name__ == "__main__":
    main()
