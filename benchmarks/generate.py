"""Data generation: vectorized generator vs a naive per-sample loop, and vs a random-number floor.

Prints frames/s of each and their ratios, all measured in this one run (medians of --repeats).
The naive references are written the way the seed notebook generated its frames: a Python loop
over samples calling a scalar sin and a scalar Gaussian draw per sample.

    python benchmarks/generate.py [--frames 20000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import time

import numpy as np

from pipeline.config import NoiseDeg, SineSignal
from pipeline.degradations import noise
from pipeline.signals import sine

T = 100


def pipeline_gen(n: int, rng: np.random.Generator):
    x, _ = sine(SineSignal(), n, T, rng)
    return noise(NoiseDeg(std=(0.01, 0.1)), x, rng)[0]


def naive_stdlib(n: int, r: random.Random):
    """Per-sample Python: math.sin and random.gauss, impulse check per sample."""
    out_x, out_y = [], []
    for _ in range(n):
        f, a = r.randint(1, 9), r.uniform(0.05, 1.0)
        std, p, amp = r.uniform(0.01, 0.1), r.uniform(0, 1e-4), r.uniform(0, 0.5)
        xs, ys = [], []
        for k in range(T):
            s = a * math.sin(2 * math.pi * f * k / T)
            y = s + r.gauss(0.0, std)
            if r.random() < p:
                y += amp if r.random() < 0.5 else -amp
            xs.append(s)
            ys.append(y)
        out_x.append(xs)
        out_y.append(ys)
    return out_y


def naive_numpy_scalars(n: int, rng: np.random.Generator):
    """The notebook's style: numpy scalar calls inside the per-sample loop."""
    y = np.zeros((n, T), np.float32)
    for i in range(n):
        f, a = rng.integers(1, 10), rng.uniform(0.05, 1.0)
        std, p, amp = rng.uniform(0.01, 0.1), rng.uniform(0, 1e-4), rng.uniform(0, 0.5)
        for k in range(T):
            v = a * np.sin(2 * np.pi * f * k / T) + rng.normal(0.0, std)
            if rng.random() < p:
                v += amp * (1 if rng.random() < 0.5 else -1)
            y[i, k] = v
    return y


def floor(n: int, rng: np.random.Generator):
    """Only the random numbers the task needs, drawn into arrays of the same shape."""
    g = rng.standard_normal((n, T), dtype=np.float32)
    u = rng.random((n, T), dtype=np.float32)
    return g, u


def rate(fn, n: int, repeats: int, make_rng) -> float:
    times = []
    for i in range(repeats):
        r = make_rng(i)
        t0 = time.perf_counter()
        fn(n, r)
        times.append(time.perf_counter() - t0)
    return n / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=20000)
    ap.add_argument("--naive-frames", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", help="append the result as JSON to this file")
    a = ap.parse_args()
    npr = np.random.default_rng
    res = {
        "pipeline": rate(pipeline_gen, a.frames, a.repeats, npr),
        "floor": rate(floor, a.frames, a.repeats, npr),
        "naive_stdlib": rate(naive_stdlib, a.naive_frames, a.repeats, random.Random),
        "naive_numpy_scalars": rate(naive_numpy_scalars, a.naive_frames // 4, a.repeats, npr),
    }
    ratios = {
        "speedup_vs_naive_stdlib": res["pipeline"] / res["naive_stdlib"],
        "speedup_vs_naive_numpy_scalars": res["pipeline"] / res["naive_numpy_scalars"],
        "efficiency_vs_floor": res["pipeline"] / res["floor"],
        "floor_vs_naive_stdlib": res["floor"] / res["naive_stdlib"],
    }
    print(f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}")
    print(f"{'generator':<28}{'frames/s':>14}")
    for k, v in res.items():
        print(f"{k:<28}{v:>14,.0f}")
    for k, v in ratios.items():
        print(f"{k:<34}{v:>8.2f}")
    if a.json:
        with open(a.json, "a") as f:
            f.write(json.dumps({"benchmark": "generate", "frames_per_s": res, **ratios}) + "\n")


if __name__ == "__main__":
    main()
