"""Training feed: samples/s of model.fit fed by the pipeline's tf.data input vs in-memory tensors.

For each default experiment's model (params.yaml), alternating the two feeds over --repeats
rounds on the same frames, median samples/s of each and their ratio, measured in one run.

    python benchmarks/train_feed.py [--frames 2048] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from pipeline.config import load_params  # noqa: E402
from pipeline.data import make_dataset  # noqa: E402
from pipeline.models import build_model, compile_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--experiments", nargs="*")
    ap.add_argument("--json", help="append the result as JSON to this file")
    a = ap.parse_args()
    params = load_params()
    rows = []
    for name in a.experiments or list(params.experiments):
        exp = params.experiment(name)
        T, bs = exp.frame_length, exp.train.batch_size
        rng = np.random.default_rng(0)
        clean = rng.standard_normal((a.frames, T)).astype(np.float32) * 0.3
        noisy = clean + 0.1 * rng.standard_normal((a.frames, T)).astype(np.float32)
        model = build_model(exp.model, T)
        compile_model(model, exp.train, T)
        ds = make_dataset(clean, noisy, bs, shuffle=True, seed=0)
        x, y = noisy[..., None], clean[..., None]
        model.fit(ds.take(2), epochs=1, verbose=0)  # trace both paths once
        model.fit(x[: 2 * bs], y[: 2 * bs], batch_size=bs, epochs=1, verbose=0)
        t_ds, t_mem = [], []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            model.fit(ds, epochs=1, verbose=0)
            t_ds.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            model.fit(x, y, batch_size=bs, epochs=1, verbose=0, shuffle=True)
            t_mem.append(time.perf_counter() - t0)
        sps_ds = a.frames / statistics.median(t_ds)
        sps_mem = a.frames / statistics.median(t_mem)
        rows.append({"experiment": name, "tfdata_samples_per_s": sps_ds,
                     "in_memory_samples_per_s": sps_mem, "ratio": sps_ds / sps_mem,
                     "ms_per_step": 1000 * statistics.median(t_ds) / np.ceil(a.frames / bs)})
        r = rows[-1]
        print(f"{name:<18} tf.data {sps_ds:8.0f}/s  in-memory {sps_mem:8.0f}/s  "
              f"ratio {r['ratio']:.2f}  {r['ms_per_step']:.1f} ms/step", flush=True)
    if a.json:
        with open(a.json, "a") as f:
            f.write(json.dumps({"benchmark": "train_feed", "rows": rows}) + "\n")


if __name__ == "__main__":
    main()
