"""Measure the denoising anchors once: DFN3, RNNoise and the DD Wiener filter on voiced-like
audio (or clean speech files) mixed with white and pink noise at several SNRs.

    python -m benchmarks.anchors_measure [--seconds 30] [--snrs 0 5 10] [--noises white pink]
                                         [--wav a.wav ...]
    python -m benchmarks.anchors_measure --experiment speech-denoise [--limit N] [--root DIR]

With ``--experiment`` the anchors score that experiment's test split instead and write
reports/<E>/anchors.{csv,json,md} plus one MLflow run (benchmarks/anchors_split.py).

Synthetic material doubles as the anchors' test input (tests/unit/test_anchors.py).
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.anchors import (
    ANCHOR_RATE,
    WienerAnchor,
    available_anchors,
    run_anchors,
    voiced_like,
)
from pipeline.dsp.noises import colored


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS 1/f noise: the project's coloured-noise generator with exponent 1."""
    return colored(rng, n, ANCHOR_RATE, exponent=1.0)[0].astype(np.float64)


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """clean + noise scaled so the clip's SNR (energy ratio over the whole clip) is ``snr_db``."""
    gain = np.sqrt(np.sum(clean**2) / (np.sum(noise**2) * 10 ** (snr_db / 10)))
    return clean + gain * noise


NOISES: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "white": lambda n, rng: rng.standard_normal(n),
    "pink": pink_noise,
}


def measure(seconds: float, snrs: Sequence[float], noises: Sequence[str], clip_seconds: float = 10.0,
            seed: int = 0, clean: Sequence[np.ndarray] | None = None,
            fit_clean: np.ndarray | None = None) -> pd.DataFrame:
    """Mean scores per (noise, SNR, anchor) over ``clean`` clips (default: ``seconds`` of
    voiced-like audio in ``clip_seconds`` clips), fresh noise per condition.

    The Wiener reference is fitted per condition on other audio (default 20 s of voiced-like
    audio, seed + 1000) mixed with the same kind and level of noise.
    """
    if clean is None:
        n_clips = max(1, round(seconds / clip_seconds))
        clean = [voiced_like(seconds / n_clips, seed=seed + i) for i in range(n_clips)]
    if fit_clean is None:
        fit_clean = voiced_like(20.0, seed=seed + 1000)
    nets = _networks()
    tables = []
    for noise in noises:
        for snr in snrs:
            rng = np.random.default_rng([seed, int(snr * 10), len(noise)])
            clips = [(c, mix_at_snr(c, NOISES[noise](len(c), rng), snr)) for c in clean]
            fit = [(fit_clean, mix_at_snr(fit_clean, NOISES[noise](len(fit_clean), rng), snr))]
            t = run_anchors(clips, anchors=nets + [WienerAnchor(fit)])
            t = t[t["clip"] == "mean"].assign(noise=noise, snr_in_db=snr)
            tables.append(t)
    cols = ["noise", "snr_in_db", "anchor", "si_sdr_db", "si_sdr_gain_db", "pesq_wb", "stoi", "rtf"]
    return pd.concat(tables, ignore_index=True)[cols]


def _networks() -> list:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="wiener_dd anchor skipped")
        return available_anchors(fit_pairs=None)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="audio per condition")
    ap.add_argument("--snrs", type=float, nargs="+", default=[0.0, 5.0, 10.0])
    ap.add_argument("--noises", nargs="+", default=["white", "pink"], choices=sorted(NOISES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--wav", type=Path, nargs="*", default=[],
                    help="clean speech files to score instead (the last one fits the Wiener filter)")
    ap.add_argument("--experiment", "-e", help="score this experiment's test split (data/<E>/)")
    ap.add_argument("--limit", type=int, help="with --experiment: only the first N test frames")
    ap.add_argument("--root", type=Path, default=Path("."), help="with --experiment: the repo root")
    ap.add_argument("--no-mlflow", action="store_true", help="with --experiment: log no run")
    a = ap.parse_args(argv)
    if a.experiment:
        split_main(a)
        return
    clean = fit = None
    if a.wav:
        import soundfile as sf

        from pipeline.dsp.speech_metrics import resample_to

        audio = []
        for path in a.wav:
            x, rate = sf.read(path, always_2d=True)
            audio.append(0.5 * (y := resample_to(x.mean(axis=1), rate, ANCHOR_RATE)) / np.max(np.abs(y)))
        clean, fit = (audio[:-1], audio[-1]) if len(audio) > 1 else (audio, None)
    table = measure(a.seconds, a.snrs, a.noises, seed=a.seed, clean=clean, fit_clean=fit)
    print(table.to_markdown(index=False, floatfmt=".2f"))


def split_main(a: argparse.Namespace) -> None:
    from benchmarks.anchors_split import run
    from pipeline.errors import UserError
    from pipeline.layout import ExperimentPaths

    paths = ExperimentPaths(a.root.resolve(), a.experiment)
    try:
        info = run(paths, limit=a.limit, mlflow=not a.no_mlflow)
    except UserError as err:
        raise SystemExit(f"error: {err}") from None
    print(paths.anchors_md.read_text())
    print(f"wrote {paths.anchors_csv}, .json, .md in {info['total_seconds']:.0f} s; "
          f"MLflow run {info.get('mlflow_run_id')}")


if __name__ == "__main__":
    main()
