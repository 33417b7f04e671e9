"""Your own recordings: degrade clean files, enhance them with a trained model, and compare with
the best classical baseline (chosen on the experiment's validation split), all in one run.

    python benchmarks/real_audio.py --experiment audio-noise clean1.wav clean2.wav [--seeds 0 1 2]

The classical baseline runs through the same overlap-add as the model, at the model's rate.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from pipeline.config import load_params
from pipeline.dsp.baselines import best_classical, classical_baselines
from pipeline.dsp.degradations import apply_long
from pipeline.dsp.metrics import snr_db
from pipeline.enhance import enhance_signal, load_model_dir
from pipeline.io.audio import read_audio, resample, to_mono
from pipeline.layout import load_split


def fit_best_classical(exp, folder: Path):
    """The fitted baseline that wins on the validation split (the evaluate stage's rule), and its gain."""
    clean, degraded = (np.asarray(a) for a in load_split(folder, "train", limit=2000))
    vc, vd = (np.asarray(a) for a in load_split(folder, "val"))
    base = snr_db(vd, vc)
    fitted, gains = {}, {}
    for b in classical_baselines(exp.degradation, exp.sample_rate, exp.frame_length):
        fitted[b.name] = b.fit(clean, degraded)
        gains[b.name] = float(np.mean(snr_db(b(vd), vc) - base))
    name = best_classical(gains)
    return fitted[name], gains[name]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--experiment", "-e", default="audio-noise")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    a = ap.parse_args()
    params = load_params()
    exp = params.experiment(a.experiment)
    predict, meta = load_model_dir(Path("models") / a.experiment)
    baseline, val_gain = fit_best_classical(exp, Path("data") / a.experiment)
    print(f"best classical on validation: {baseline.name} (+{val_gain:.2f} dB)")
    print(f"{'file':<16}{'seed':>5}{'input SNR':>11}{'model gain':>12}{'classical':>11}{'RTF':>8}")
    for path in a.files:
        x, rate, _ = read_audio(path)
        clean = resample(to_mono(x), rate, exp.sample_rate)
        for seed in a.seeds:
            noisy = apply_long(exp.degradation, clean, np.random.default_rng(seed), exp.frame_length,
                                   exp.sample_rate)
            t0 = time.perf_counter()
            est = enhance_signal(noisy[:, None], exp.sample_rate, predict, meta)[:, 0]
            rtf = len(clean) / exp.sample_rate / (time.perf_counter() - t0)
            cls = enhance_signal(noisy[:, None], exp.sample_rate, baseline, meta)[:, 0]
            s_in = float(snr_db(noisy, clean))
            g_m = float(snr_db(est, clean)) - s_in
            g_c = float(snr_db(cls, clean)) - s_in
            print(f"{path.name:<16}{seed:>5}{s_in:>10.2f} {g_m:>+11.2f} {g_c:>+10.2f}{rtf:>7.0f}x")


if __name__ == "__main__":
    main()
