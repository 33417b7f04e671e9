"""Against the physical limits: per default model, the achieved fraction of this machine's
measured matmul FLOP/s, in inference and in training.

The limit is tf.linalg.matmul of two 1024 x 1024 float32 matrices (the machine's practical
peak through the same TensorFlow build), timed interleaved with every model measurement
(paired medians: m, t, mm, m, t, mm, ...).

- Inference: the model `enhance` runs (models/<E> when trained and current, else the same
  architecture with random weights: speed and FLOPs do not depend on the weights) through the
  batched predict of `pipeline.enhance.load_model_dir`, on the frames `enhance` feeds it for
  60 s of audio (at the model's rate, hop T/2). FLOPs per frame from
  `benchmarks.enhance.count_flops` (2 x MACs of every Conv1D/Dense, FFTs at 2.5 n log2 n; a slight
  lower bound).
  Its RTF ceiling, matmul peak / (model FLOPs per second of audio), bounds what any
  implementation of the model can reach on this machine.
- Training: `train_on_batch` steps of the model train would build (params.yaml plus
  reports/<E>/best_params.yaml, compiled as train compiles it, XLA where train uses it) at the
  experiment's batch size and frame length, on random frames. Convention: one training sample
  costs 3 x its forward FLOPs (forward, plus a backward pass of about twice the forward: the
  gradients with respect to activations and to weights); loss and optimizer update ignored.

    python -m benchmarks.limits [--experiments seed-noise ...] [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from benchmarks.common import ROOT, Figure, figure, log, paired_medians, print_figures  # noqa: E402

SECTION = "limits"
TRAIN_FLOPS_PER_FORWARD = 3.0
SECONDS = 60.0
MIN_TIMING_S = 0.3  # each timed call repeats its work until it lasts about this long


def _calibrated(fn: Callable[[], object], min_s: float) -> tuple[Callable[[], None], int]:
    """fn repeated k times, k chosen so one call of the result takes about `min_s`."""
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-6)
    k = max(1, min(1000, math.ceil(min_s / once)))

    def go() -> None:
        for _ in range(k):
            fn()

    return go, k


def training_model(name: str, params_path: str = "params.yaml"):
    """The compiled model train builds for experiment `name` (random weights), T and batch size."""
    from pipeline.config import load_params, resolve
    from pipeline.nn.architectures import build_model
    from pipeline.nn.losses import compile_model

    params = load_params(params_path)
    r = resolve(params, name, ROOT, tuned=True)
    T, bs = r.exp.frame_length, r.train.batch_size
    pf = getattr(r.model, "prefilter", None)  # unet only; its cost does not depend on its taps
    taps = np.eye(1, pf.taps, pf.taps // 2)[0] if pf is not None else None
    model = compile_model(build_model(r.model, T, prefilter=taps), r.train)
    return model, T, bs, bool(r.train.jit_compile)


def run(experiments: list[str] | None = None, repeats: int = 3, use_trained: bool = True,
        seconds: float = SECONDS, min_timing_s: float = MIN_TIMING_S,
        params_path: str = "params.yaml") -> tuple[list[Figure], dict]:
    import keras

    from benchmarks.enhance import count_flops, matmul_timer, model_folder
    from pipeline.config import load_params
    from pipeline.enhance import load_model_dir
    from pipeline.enhance.ola import OLAPlan

    names = experiments or list(load_params(params_path).experiments)
    mm, mm_flops = matmul_timer(1024, 1024, 1024)
    figs: list[Figure] = []
    rows: dict[str, dict] = {}
    peaks: list[float] = []
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="bench-limits-") as d:
        for name in names:
            folder, source = model_folder(name, Path(d), params_path, use_trained)
            predict, meta = load_model_dir(folder)
            T, rate = int(meta["frame_length"]), int(meta["sample_rate"])
            hop = T // 2
            n_model = math.ceil(seconds * rate)
            n_frames = OLAPlan(n_model, T, hop=hop).n_frames  # the frames overlap_add runs
            frames = (0.1 * rng.standard_normal((n_frames, T))).astype(np.float32)
            infer_model = keras.models.load_model(folder / "model.keras", safe_mode=True, compile=False)
            fwd, _ = count_flops(infer_model, T)

            model, T_tr, bs, xla = training_model(name, params_path)
            fwd_tr, _ = count_flops(model, T_tr)
            xb = (0.1 * rng.standard_normal((bs, T_tr, 1))).astype(np.float32)
            yb = 0.9 * xb
            t0 = time.perf_counter()
            for _ in range(2):  # trace (and XLA-compile) the train step
                model.train_on_batch(xb, yb)
            compile_s = time.perf_counter() - t0

            infer, k_inf = _calibrated(lambda p=predict, f=frames: p(f), min_timing_s)
            train, k_tr = _calibrated(lambda m=model, a=xb, b=yb: m.train_on_batch(a, b), min_timing_s)
            med = paired_medians({"infer": infer, "train": train, "matmul": mm}, repeats)
            peak = mm_flops / med["matmul"]
            peaks.append(peak)
            inf_fps = fwd * n_frames * k_inf / med["infer"]
            flops_per_audio_s = fwd * n_frames / seconds  # as enhance runs it: hop T/2
            tr_fps = TRAIN_FLOPS_PER_FORWARD * fwd_tr * bs * k_tr / med["train"]
            row = {"model": source, "frame_length": T, "sample_rate": rate, "frames": n_frames,
                   "forward_flops_per_frame": fwd, "inference_flops_per_s": inf_fps,
                   "inference_fraction": inf_fps / peak, "train_batch_size": bs,
                   "train_forward_flops_per_frame": fwd_tr, "train_flops_per_s": tr_fps,
                   "train_fraction": tr_fps / peak, "train_step_s": med["train"] / k_tr,
                   "train_samples_per_s": bs * k_tr / med["train"], "xla": xla,
                   "train_trace_s": compile_s, "matmul_flops_per_s": peak, "median_s": med,
                   "calls_per_timing": {"infer": k_inf, "train": k_tr},
                   "flops_per_audio_s": flops_per_audio_s, "rtf_ceiling": peak / flops_per_audio_s}
            rows[name] = row
            log(f"limits {name}: inference {row['inference_fraction']:.2f}, training "
                f"{row['train_fraction']:.2f} of {peak / 1e9:.0f} GFLOP/s")
            figs += [
                figure(SECTION, f"{name}: inference FLOP/s / matmul peak", row["inference_fraction"],
                       "ratio", key=f"limits_inference_fraction_{name}",
                       note=f"{inf_fps / 1e9:.1f} GFLOP/s; {fwd / 1e6:.1f} MFLOP per {T}-sample frame, "
                       f"{n_frames} frames = {seconds:g} s at hop T/2"),
                figure(SECTION, f"{name}: training FLOP/s / matmul peak", row["train_fraction"], "ratio",
                       key=f"limits_train_fraction_{name}",
                       note=f"{tr_fps / 1e9:.1f} GFLOP/s; train_on_batch, batch {bs} x {T_tr}"
                       + (", XLA" if xla else "") + "; training = 3 x forward FLOPs"),
                figure(SECTION, f"{name}: RTF ceiling at the matmul peak", row["rtf_ceiling"], "x",
                       key=f"limits_rtf_ceiling_{name}",
                       note=f"{flops_per_audio_s / 1e6:,.0f} MFLOP per audio second at hop T/2: no "
                       "implementation of this model beats it here (resampling and I/O not counted)"),
            ]
            del model, infer_model, predict
            keras.backend.clear_session()
    if peaks:
        figs.append(figure(SECTION, "matmul 1024^3 FLOP/s (the limit; median over the section)",
                           float(np.median(peaks)), "FLOP/s", key="limits_matmul_peak_flops_per_s"))
    return figs, {"rows": rows, "train_flops_convention": "3 x forward FLOPs per sample",
                  "limit": "tf.linalg.matmul 1024x1024x1024 float32, paired with each model",
                  "repeats": repeats}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiments", nargs="*")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--untrained", action="store_true", help="ignore models/<experiment>")
    a = ap.parse_args()
    figs, _ = run(a.experiments, a.repeats, not a.untrained)
    print_figures(figs)


if __name__ == "__main__":
    main()
