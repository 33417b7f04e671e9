"""Where a bandwidth extender's SNR gain can come from: the error per band, paired on one split.

For a bandwidth experiment's frames (default: val, never used for training) it prints the mean
per-frame SNR gain over the cubic-spline input of the clean frames band-limited (per-frame DFT)
at several cutoffs, the share of the spline's error energy in each band, and with a trained model
the model's error energy per band as a fraction of the spline's. The band-limited rows are a
guide, not a bound: a frame's DFT leaks a frame's edges into every bin, so a short frame's
band-limited copy is farther from the clean frame than a good band-limited estimate can be (a
1024-sample frame by several dB; an 8192-sample frame much less). The per-band error ratios are
direct measurements: a gain from above the kept band is content there predicted in phase.

`excitation_coherence` asks how much of that phase is there to predict: the squared kept band
(the classical nonlinear bandwidth extender's excitation, whose harmonics are phase-locked to the
kept ones) fitted to the clean STFT above the kept band with the best complex gain per 8 bins
and STFT frame (an oracle envelope and phase offset), against the same fit to another frame's
excitation (what 2 free reals per 16 fit by chance).

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


def excitation_coherence(clean: np.ndarray, rate: int, factor: int, n_fft: int = 512,
                         group: int = 8) -> list[tuple[float, float, float, float]]:
    """(lo Hz, hi Hz, error reduction with the frame's own excitation, with another frame's)
    for three bands above the kept Nyquist; see the module docstring."""
    from scipy.signal import stft

    c = clean.astype(np.float64)
    t = c.shape[-1]
    edge = rate / (2 * factor)
    low = np.fft.irfft(np.fft.rfft(c, axis=-1) * (np.fft.rfftfreq(t, 1 / rate) < edge), t, axis=-1)
    low /= np.sqrt((low**2).mean(-1, keepdims=True)) + 1e-12
    spec = lambda a: stft(a, nperseg=n_fft, noverlap=n_fft - n_fft // 4, axis=-1)[2]  # noqa: E731
    target, own = spec(c), spec(low**2)
    other = np.roll(own, 1, axis=0)
    hz = rate / n_fft
    rows = []
    for lo, hi in ((edge, 1.25 * edge), (1.25 * edge, 1.5 * edge), (1.5 * edge, 2 * edge)):
        b0, n = int(round(lo / hz)), int(round((hi - lo) / hz)) // group * group
        tg = target[:, b0:b0 + n].reshape(len(c), n // group, group, -1)
        total = (np.abs(tg) ** 2).sum()
        out = [lo, hi]
        for e in (own, other):
            x = e[:, b0:b0 + n].reshape(tg.shape)
            gain = (tg * x.conj()).sum(2, keepdims=True) / ((np.abs(x) ** 2).sum(2, keepdims=True)
                                                            + 1e-30)
            out.append(1 - float((np.abs(tg - gain * x) ** 2).sum() / total))
        rows.append(tuple(out))
    return rows


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
    print("  phase-locked excitation (squared kept band), oracle complex gain per "
          "8 bins x STFT frame: error reduction, own frame / another frame's")
    for lo, hi, own, other in excitation_coherence(clean, r.exp.sample_rate,
                                                    r.exp.degradation.factor):
        print(f"  {lo:5.0f}-{hi:5.0f} Hz: {own:.3f} / {other:.3f}")


if __name__ == "__main__":
    main()
