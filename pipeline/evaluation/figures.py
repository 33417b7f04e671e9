"""The evaluation's figures (matplotlib, Agg): examples, gain vs input SNR, by frequency,
spectrograms. Each takes arrays and a folder; nothing here scores."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.config import Experiment
from pipeline.evaluation.scoring import Scored, Split


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, ax, path: Path, xlabel: str, ylabel: str, title: str) -> None:
    """Shared finish: zero line, labels with units, legend, file, close."""
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)


def write_figures(folder: Path, exp: Experiment, test: Split, s: Scored, buckets: pd.DataFrame,
                  by_f: pd.DataFrame | None) -> None:
    """examples.png, gain_vs_snr.png and (sines) gain_by_frequency.png into `folder`."""
    ests = {k: v["estimate"] for k, v in s.results.items()}
    gains = {k: v["gain"] for k, v in s.results.items()}
    best, input_snr = s.best, test.snr
    _examples(folder / "examples.png", exp, test.clean, test.degraded, input_snr, ests, gains,
              best)
    colours = {"model": "tab:blue", best: "tab:orange", "oracle": "tab:green"}
    _gain_vs_snr(folder / "gain_vs_snr.png", input_snr, gains, buckets, best, colours)
    if by_f is not None:
        _by_frequency(folder / "gain_by_frequency.png", by_f, best, colours)


def _examples(path: Path, exp: Experiment, clean: np.ndarray, degraded: np.ndarray,
              input_snr: np.ndarray, ests: dict[str, np.ndarray], gains: dict[str, np.ndarray],
              best: str) -> None:
    plt = _pyplot()
    # examples.png: frames spread over the input-SNR range, so easy and hard cases both show
    order = np.argsort(input_snr, kind="stable")
    picks = sorted({int(order[int(q * (len(order) - 1))]) for q in (0.1, 0.4, 0.7, 0.95)})
    t_ms = np.arange(exp.frame_length) * 1000.0 / exp.sample_rate
    fig, axes = plt.subplots(len(picks), 1, figsize=(9, 2.4 * len(picks)), squeeze=False)
    for ax, i in zip(axes[:, 0], picks, strict=True):
        ax.plot(t_ms, degraded[i], color="0.65", lw=0.9, label="degraded")
        ax.plot(t_ms, clean[i], color="k", lw=1.4, label="clean")
        ax.plot(t_ms, ests[best][i], color="tab:orange", lw=1.0, ls="--", label=best)
        ax.plot(t_ms, ests["model"][i], color="tab:blue", lw=1.0, label="model")
        ax.set_title(f"test frame {i}: input SNR {input_snr[i]:.1f} dB, model gain "
                     f"{gains['model'][i]:.1f} dB, {best} {gains[best][i]:.1f} dB", fontsize=9)
        ax.set_ylabel("amplitude (full scale)")
    axes[-1, 0].set_xlabel("time (ms)")
    axes[0, 0].legend(loc="upper right", fontsize=8, ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=90)  # the largest figure: keep reports/ small
    plt.close(fig)


def _gain_vs_snr(path: Path, input_snr: np.ndarray, gains: dict[str, np.ndarray],
                 buckets: pd.DataFrame, best: str, colours: dict[str, str]) -> None:
    """Every frame as a dot, bucket means as lines."""
    fig, ax = _pyplot().subplots(figsize=(7, 4.5))
    for key, colour in colours.items():
        if key not in gains:
            continue
        ax.scatter(input_snr, gains[key], s=5, alpha=0.25, color=colour)
        col = "best_classical" if key == best else key
        ax.plot(buckets["input_snr_mean_db"], buckets[col], marker="o", color=colour,
                label=f"{key} (bucket mean)" if key != best else f"best classical: {key}")
    _save(fig, ax, path, "input SNR of the degraded frame (dB)",
          "SNR gain over the degraded input (dB)", "SNR gain vs input SNR (test split)")


def _by_frequency(path: Path, by_f: pd.DataFrame, best: str, colours: dict[str, str]) -> None:
    """Grouped bars: one group per sine frequency."""
    keys = [k for k in ("model", "best_classical", "oracle") if by_f[k].notna().any()]
    width = 0.8 / len(keys)
    x = np.arange(len(by_f))
    fig, ax = _pyplot().subplots(figsize=(7, 4.5))
    for j, key in enumerate(keys):
        label = f"best classical: {best}" if key == "best_classical" else key
        ax.bar(x + (j - (len(keys) - 1) / 2) * width, by_f[key].fillna(0.0), width,
               label=label, color=colours.get(best if key == "best_classical" else key))
    ax.set_xticks(x, [f"{v:g}" for v in by_f["f_hz"]])
    _save(fig, ax, path, "sine frequency (Hz)", "mean SNR gain (dB)",
          "SNR gain by sine frequency (test split)")



def write_spectrograms(path: Path, exp: Experiment, examples: dict[str, Any], best: str) -> None:
    """Before/after spectrograms of the middle listening example, on one colour scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.signal import spectrogram

    ex = examples["examples"][len(examples["examples"]) // 2]
    sr = exp.sample_rate
    n = len(ex["native"]["clean"])
    nper = int(np.clip(2 ** round(math.log2(max(n / 32, 1))), 32, 512))
    titles = {"clean": "clean", "degraded": "degraded (input)", "model": "model",
              "best_classical": f"best classical: {best}"}
    spec = {}
    for kind in titles:
        f, t, sxx = spectrogram(ex["native"][kind], fs=sr, nperseg=min(nper, n),
                                noverlap=min(nper, n) * 3 // 4)
        spec[kind] = 10 * np.log10(sxx + 1e-12)
    vmax = max(float(s.max()) for s in spec.values())
    fig, axes = plt.subplots(2, 2, figsize=(9, 5.5), sharex=True, sharey=True)
    for ax, (kind, title) in zip(axes.flat, titles.items(), strict=True):
        mesh = ax.pcolormesh(t, f, spec[kind], shading="auto", vmin=vmax - 80, vmax=vmax,
                             cmap="magma")
        snr = ex["snr_db"].get(kind)
        ax.set_title(title if snr is None else f"{title}: SNR {snr} dB", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    for ax in axes[:, 0]:
        ax.set_ylabel("frequency (Hz)")
    fig.colorbar(mesh, ax=axes, label="power (dB)")
    fig.suptitle(f"spectrograms of listening example {ex['id']} ({len(ex['frames'])} test frames "
                 f"joined, input SNR {ex['input_snr_db']} dB)", fontsize=10)
    fig.savefig(path, dpi=90)
    plt.close(fig)


