"""Training feed: samples/s of model.fit fed by the pipeline's tf.data input vs in-memory tensors.

For each default experiment's model (params.yaml plus reports/E/best_params.yaml, as train builds
it), both feeds train on the same frames in two alternating rounds of fit calls; each epoch is
timed by a callback and the first epoch of every fit call (tracing, iterator set-up) is dropped,
so the figure is steady-state throughput. The ratio of their median samples/s says whether the
input pipeline ever starves the model (1.0 = free, < 1 = the feed costs time).

    python -m benchmarks.train_feed [--steps 8] [--repeats 3] [--experiments seed-noise]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from benchmarks.common import ROOT, Figure, figure, log, print_figures  # noqa: E402
from pipeline.config import load_params  # noqa: E402

SECTION = "training feed"
TARGET_RATIO = 0.9


def run(steps: int = 8, repeats: int = 3, experiments: list[str] | None = None,
        params_path: str = "params.yaml") -> tuple[list[Figure], dict]:
    import keras
    import tensorflow as tf

    from pipeline.config import resolve
    from pipeline.dsp.filters import wiener_fir
    from pipeline.nn.architectures import build_model
    from pipeline.nn.feed import make_dataset
    from pipeline.nn.losses import compile_model

    class EpochTimer(keras.callbacks.Callback):
        """Wall time of each epoch inside one fit call."""

        def __init__(self):
            super().__init__()
            self.times: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self._t0)

    params = load_params(params_path)
    per_round = max(1, repeats)  # timed epochs per fit call; 2 rounds -> 2 x repeats per feed
    figs: list[Figure] = []
    rows = []
    for name in experiments or list(params.experiments):
        exp = params.experiment(name)
        r = resolve(params, name, ROOT, tuned=True)  # what train would fit
        model_cfg, train_cfg = r.model, r.train
        T, bs = exp.frame_length, train_cfg.batch_size
        frames = steps * bs  # same number of steps per epoch for every model
        rng = np.random.default_rng(0)
        clean = rng.standard_normal((frames, T)).astype(np.float32) * 0.3
        noisy = clean + 0.1 * rng.standard_normal((frames, T)).astype(np.float32)
        prefilter = None
        pf = getattr(model_cfg, "prefilter", None)  # unet only
        if pf is not None:  # designed from the frames at hand, as train does
            prefilter = wiener_fir(clean, noisy, pf.taps, pf.max_gain_db)
        model = build_model(model_cfg, T, prefilter=prefilter)
        compile_model(model, train_cfg)
        ds = make_dataset(clean, noisy, bs, shuffle=True, seed=0)
        x, y = tf.constant(noisy[..., None]), tf.constant(clean[..., None])
        feeds = {
            "tfdata": lambda cb, n, m=model, d=ds: m.fit(d, epochs=n, verbose=0, callbacks=[cb]),
            "memory": lambda cb, n, m=model, a=x, b=y, s=bs: m.fit(
                a, b, batch_size=s, epochs=n, verbose=0, shuffle=True, callbacks=[cb]),
        }
        times: dict[str, list[float]] = {k: [] for k in feeds}
        for _ in range(2):  # two alternating rounds, so load drift hits both feeds alike
            for k, feed in feeds.items():
                timer = EpochTimer()
                feed(timer, 1 + per_round)
                times[k] += timer.times[1:]  # epoch 0 of each fit: tracing and iterator set-up
        med = {k: statistics.median(v) for k, v in times.items()}
        row = {"experiment": name, "frame_length": T, "batch_size": bs,
               "params": int(model.count_params()),
               "tfdata_samples_per_s": frames / med["tfdata"],
               "in_memory_samples_per_s": frames / med["memory"],
               "ms_per_step": 1000 * med["tfdata"] / steps,
               "epoch_s": {k: [round(t, 3) for t in v] for k, v in times.items()}}  # spread = noise
        row["ratio"] = row["tfdata_samples_per_s"] / row["in_memory_samples_per_s"]
        rows.append(row)
        figs += [
            figure(SECTION, f"{name}: tf.data / in-memory samples/s", row["ratio"], "ratio",
                   TARGET_RATIO, key=f"feed_ratio_{name}"),
            figure(SECTION, f"{name}: tf.data samples/s", row["tfdata_samples_per_s"], "samples/s",
                   key=f"feed_samples_per_s_{name}"),
            figure(SECTION, f"{name}: ms per step (batch {bs})", row["ms_per_step"], "ms",
                   key=f"feed_ms_per_step_{name}"),
        ]
        log(f"train feed {name}: ratio {row['ratio']:.2f}, {row['tfdata_samples_per_s']:.0f} samples/s")
        del model
    return figs, {"steps_per_epoch": steps, "epochs_timed_per_feed": 2 * per_round, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8, help="steps per epoch (frames = steps x batch)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--experiments", nargs="*")
    a = ap.parse_args()
    figs, _ = run(a.steps, a.repeats, a.experiments)
    print_figures(figs)


if __name__ == "__main__":
    main()
