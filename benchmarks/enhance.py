"""`enhance` speed and memory: real-time factor on 60 s of 16 kHz audio, peak RSS on 10 minutes.

Real-time factor = seconds of audio / seconds of processing (higher is faster), median of
--repeats, with the trained model (default models/audio-noise), in one run. Also prints the
naive frame-by-frame concatenation's speed for comparison.

    python benchmarks/enhance.py [--model models/audio-noise] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline.audio import write_audio_atomic
from pipeline.config import HarmonicSignal
from pipeline.signals import harmonic
from pipeline.streaming import enhance_file, load_model_dir, naive_frames, overlap_add


def audio(seconds: float, rate: int = 16000) -> np.ndarray:
    """Audio-like test signal: frames of the harmonic family laid end to end, plus noise."""
    T = 4096
    n = int(np.ceil(seconds * rate / T))
    x, _ = harmonic(HarmonicSignal(), n, T, rate, np.random.default_rng(0))
    x = x.reshape(-1)[: int(seconds * rate)]
    return (x + 0.01 * np.random.default_rng(1).standard_normal(len(x))).astype(np.float32)


def peak_rss_child(model: str, seconds: float) -> float:
    """Peak RSS (MiB) of a fresh process that enhances a file of `seconds`."""
    code = (
        "import resource,sys;from pipeline.streaming import enhance_file;"
        "enhance_file(sys.argv[1], sys.argv[2], sys.argv[3], show_progress=False);"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024)"
    )
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "long.wav"
        write_audio_atomic(src, audio(seconds)[:, None], 16000)
        out = subprocess.run([sys.executable, "-c", code, model, str(src), str(Path(d) / "o.wav")],
                             capture_output=True, text=True, check=True)
        base = subprocess.run(
            [sys.executable, "-c", "import resource,sys;from pipeline.streaming import "
             "load_model_dir;load_model_dir(sys.argv[1]);"
             "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024)", model],
            capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1]), float(base.stdout.split()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/audio-noise")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--long-seconds", type=float, default=600)
    ap.add_argument("--json", help="append the result as JSON to this file")
    a = ap.parse_args()
    predict, meta = load_model_dir(a.model)
    T, rate = meta["frame_length"], meta["sample_rate"]
    x = audio(60, rate)
    overlap_add(x[: 10 * T], predict, T)  # warm-up: trace the tf.function once
    t_ola, t_naive = [], []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        overlap_add(x, predict, T)
        t_ola.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        naive_frames(x, predict, T)
        t_naive.append(time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as d:
        write_audio_atomic(Path(d) / "in.wav", x[:, None], rate)
        stats = [enhance_file(a.model, Path(d) / "in.wav", Path(d) / "out.wav",
                              show_progress=False) for _ in range(a.repeats)]
    peak, base = peak_rss_child(a.model, a.long_seconds)
    res = {
        "rtf_overlap_add": 60 / statistics.median(t_ola),
        "rtf_naive": 60 / statistics.median(t_naive),
        "rtf_enhance_file": statistics.median(s["realtime_factor"] for s in stats),
        "peak_rss_mib_long": peak,
        "rss_mib_model_loaded": base,
        "long_seconds": a.long_seconds,
    }
    print(f"model {a.model}: T={T} at {rate} Hz, rusage {resource.getrusage(0).ru_maxrss // 1024} MiB")
    for k, v in res.items():
        print(f"{k:<24}{v:>12.1f}")
    if a.json:
        with open(a.json, "a") as f:
            f.write(json.dumps({"benchmark": "enhance", **res}) + "\n")


if __name__ == "__main__":
    main()
