"""Where a bandwidth extender's SNR gain can come from: the error per band, paired on one split.

For a bandwidth experiment's frames (default: val, never used for training) it prints the mean
per-frame SNR gain over the cubic-spline input of the clean frames band-limited (per-frame DFT)
at several cutoffs, the share of the spline's error energy in each band, and with a trained model
the model's error energy per band as a fraction of the spline's. The band-limited rows are a
guide, not a bound: a frame's DFT leaks a frame's edges into every bin, so a short frame's
band-limited copy is farther from the clean frame than a good band-limited estimate can be (a
1024-sample frame by several dB; an 8192-sample frame much less). The per-band error ratios are
direct measurements: a gain from above the kept band is content there predicted in phase.

    python -m benchmarks.bandwidth_bounds [--experiment speech-bandwidth] [--split val]
                                          [--model models/speech-bandwidth]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.common import ROOT
from pipeline.config import load_params, resolve
from pipeline.dsp.metrics import snr_db  # evaluate's per-frame SNR, capped at 100 dB


def band_edges(rate: int, factor: int) -> list[tuple[float, float]]:
    """Below the filter's passband edge (0.8 of the kept Nyquist), its transition band, then
    octaves of what was removed."""
    edge = rate / (2 * factor)
    bands, lo = [(0.0, 0.8 * edge), (0.8 * edge, edge)], edge
    while lo < rate / 2:
        bands.append((lo, 2 * lo if 2 * lo < rate / 2 else rate / 2 + 1))  # the last holds Nyquist
        lo *= 2
    return bands


def report(clean: np.ndarray, degraded: np.ndarray, rate: int, factor: int,
           estimate: np.ndarray | None = None) -> list[str]:
    c, x = clean.astype(np.float64), degraded.astype(np.float64)
    t = c.shape[-1]
    freqs = np.fft.rfftfreq(t, 1 / rate)
    spec = np.fft.rfft(c, axis=-1)
    base = snr_db(x, c)
    edge = rate / (2 * factor)
    lines = [f"{len(c)} frames of {t}; cubic-spline input: mean per-frame SNR {base.mean():.2f} dB"]
    for cut in (0.8 * edge, edge, 1.25 * edge, 1.5 * edge, 2 * edge):
        g = snr_db(np.fft.irfft(spec * (freqs < cut), t, axis=-1), c) - base
        tag = "  (the kept band, nothing above)" if cut == edge else ""
        lines.append(f"clean band-limited to {cut:.0f} Hz: gain {g.mean():+.2f} dB "
                     f"(median {np.median(g):+.2f}){tag}")
    err_in = np.abs(np.fft.rfft(x - c, axis=-1)) ** 2
    err_model = None if estimate is None else np.abs(np.fft.rfft(estimate - c, axis=-1)) ** 2
    if estimate is not None:
        g = snr_db(estimate.astype(np.float64), c) - base
        lines.append(f"model: gain {g.mean():+.2f} dB (median {np.median(g):+.2f})")
    for lo, hi in band_edges(rate, factor):
        m = (freqs >= lo) & (freqs < hi)
        row = (f"{lo:5.0f}-{min(hi, rate / 2):5.0f} Hz: {np.mean(err_in[:, m].sum(-1) / err_in.sum(-1)):.3f}"
               " of the spline's error")
        if err_model is not None:
            row += f"; model error / spline error {err_model[:, m].sum() / err_in[:, m].sum():.3f}"
        lines.append(row)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", "-e", default="speech-bandwidth")
    ap.add_argument("--split", default="val", choices=("train", "val", "test"))
    ap.add_argument("--model", type=Path, default=None, help="a model folder (default: none)")
    a = ap.parse_args()
    r = resolve(load_params(ROOT / "params.yaml"), a.experiment, ROOT)
    if r.exp.degradation.kind != "bandwidth":
        raise SystemExit(f"{a.experiment} is not a bandwidth experiment")
    paths = r.paths
    clean = np.load(paths.array(a.split, "clean"))
    degraded = np.load(paths.array(a.split, "degraded"))
    estimate = None
    if a.model is not None:
        from pipeline.enhance.model_dir import load_model_dir

        predict, _ = load_model_dir(a.model, batch_size=32)
        estimate = predict(degraded.astype(np.float32)).astype(np.float64)
    print(f"{a.experiment}, {a.split} split")
    for line in report(clean, degraded, r.exp.sample_rate, r.exp.degradation.factor, estimate):
        print("  " + line)


if __name__ == "__main__":
    main()
