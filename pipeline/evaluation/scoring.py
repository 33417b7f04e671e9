"""Scoring: every method's test figures, the best classical pick, and metrics.json's numbers.

Pure numpy/pandas over arrays (the model's estimate comes in as an array), so the maths is
tested without TensorFlow. Every number comes from the TEST split; classical baselines are
fitted on at most MAX_FIT_FRAMES train frames and the best one is picked by its mean SNR gain
on the VAL split, so the comparison the report leads with is never tuned on its own frames.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from pipeline.config import Experiment
from pipeline.dsp import baselines as bl
from pipeline.dsp import oracles
from pipeline.dsp.metrics import (
    SNR_BUCKET_LABELS,
    SNR_CAP_DB,
    aggregate_snr_db,
    lsd,
    si_sdr_db,
    snr_bucket,
    snr_db,
    summarize,
)

MAX_FIT_FRAMES = 4000  # train frames given to baselines: a few knobs need no more
LSD_MAX_FFT = 2048  # audio frames (>= 2048 samples) use 2048-point windows; shorter: one window
BUCKET_CENTRES = {"<0": -5.0, "0-10": 5.0, "10-20": 15.0, ">20": 25.0}
SELECTION = "val_mean_snr_gain_db"  # how best_classical is chosen (documented in metrics.json)
IDEAL_MASK_FACT = ("ideal_mask: the phase-sensitive ideal real STFT mask, computed from the "
                   "clean signal (Hann 512, hop 128); real-valued masks on these frames keep the "
                   "noisy phase and cannot beat it (Wiener filters; the stft_mask net "
                   "approximately)")


@dataclass
class Split:
    """One split's (clean, degraded) frames and the degraded input's own figures, each
    computed once, when first needed (the train split's never are)."""

    clean: np.ndarray
    degraded: np.ndarray

    @cached_property
    def snr(self) -> np.ndarray:
        return snr_db(self.degraded, self.clean, cap=SNR_CAP_DB)

    @cached_property
    def si_sdr(self) -> np.ndarray:
        return si_sdr_db(self.degraded, self.clean, cap=SNR_CAP_DB)

    @cached_property
    def aggregate_snr(self) -> float:
        return aggregate_snr_db(self.degraded, self.clean, cap=SNR_CAP_DB)


@dataclass
class Scored:
    """Every method's scores on the test split, in methods.csv's row order."""

    results: dict[str, dict[str, Any]]
    rows: list[dict[str, Any]]
    best: str
    bound: str | None

    @property
    def methods(self) -> pd.DataFrame:
        table = pd.DataFrame(self.rows)
        lead = ["method", "kind", "best_classical", "val_gain_db"]
        return table[lead + [c for c in table.columns if c not in lead]]


def score(est: np.ndarray, clean: np.ndarray, input_snr: np.ndarray, input_si: np.ndarray,
           input_agg: float, n_fft: int) -> dict[str, Any]:
    """All test metrics of one method; per-frame arrays are kept for buckets and figures."""
    snr = snr_db(est, clean, cap=SNR_CAP_DB)
    si = si_sdr_db(est, clean, cap=SNR_CAP_DB)
    gain = snr - input_snr
    agg = aggregate_snr_db(est, clean, cap=SNR_CAP_DB)
    s, g, q = summarize(snr), summarize(gain), summarize(si)
    row = {
        "snr_mean_db": s["mean"], "snr_median_db": s["median"], "snr_p10_db": s["p10"],
        "snr_p90_db": s["p90"], "aggregate_snr_db": agg, "aggregate_gain_db": agg - input_agg,
        "gain_mean_db": g["mean"], "gain_median_db": g["median"], "gain_p10_db": g["p10"],
        "gain_p90_db": g["p90"], "si_sdr_mean_db": q["mean"], "si_sdr_median_db": q["median"],
        "si_sdr_gain_db": float(np.mean(si - input_si)), "lsd": float(np.mean(lsd(est, clean,
                                                                                   n_fft))),
    }
    return {"row": row, "gain": gain, "estimate": est}


def bucket_table(input_snr: np.ndarray, gains: dict[str, np.ndarray | None]) -> pd.DataFrame:
    """Mean gain per input-SNR bucket; empty buckets are dropped so the plot has no holes."""
    labels = snr_bucket(input_snr)
    rows = []
    for label in SNR_BUCKET_LABELS:
        sel = labels == label
        if not sel.any():
            continue
        row = {"bucket": label, "input_snr_db": BUCKET_CENTRES[label], "n": int(sel.sum()),
               "input_snr_mean_db": float(np.mean(input_snr[sel]))}
        for key, g in gains.items():
            row[key] = float(np.mean(g[sel])) if g is not None else None
        rows.append(row)
    # `model` last: DVC's default y for the stage-level plot is the last column
    cols = ["input_snr_db", "bucket", "n", "input_snr_mean_db", *reversed(list(gains))]
    return pd.DataFrame(rows, columns=cols)


def frequency_table(f: np.ndarray, input_snr: np.ndarray, gains: dict[str, np.ndarray | None],
                     exp: Experiment) -> pd.DataFrame:
    rows = []
    for fv in np.unique(f):
        sel = f == fv
        row = {"f_cycles": int(fv), "f_hz": float(fv) * exp.sample_rate / exp.frame_length,
               "n": int(sel.sum()), "input_snr_mean_db": float(np.mean(input_snr[sel]))}
        for key, g in gains.items():
            row[key] = float(np.mean(g[sel])) if g is not None else None
        rows.append(row)
    return pd.DataFrame(rows)


class _Scorer:
    """score() bound to the test split's input figures."""

    def __init__(self, test: Split, n_fft: int):
        self.test, self.n_fft = test, n_fft

    def __call__(self, est: np.ndarray) -> dict[str, Any]:
        t = self.test
        return score(est, t.clean, t.snr, t.si_sdr, t.aggregate_snr, self.n_fft)


def score_methods(exp: Experiment, train: Split, val: Split, test: Split,
                  model_estimate: np.ndarray) -> Scored:
    """Classical baselines (fitted on train, picked on val), the model, oracle and bounds."""
    scorer = _Scorer(test, min(LSD_MAX_FFT, exp.frame_length))
    signal, degradation = exp.signal, exp.degradation
    results: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    for b in bl.classical_baselines(degradation, exp.sample_rate, exp.frame_length):
        b.fit(train.clean, train.degraded)
        val_gain = float(np.mean(snr_db(b(val.degraded), val.clean, cap=SNR_CAP_DB) - val.snr))
        results[b.name] = s = scorer(b(test.degraded))
        kind = "identity" if b.name == "identity" else "classical"
        rows.append({"method": b.name, "kind": kind, "val_gain_db": val_gain, **s["row"],
                     "knobs": json.dumps(clean_json(getattr(b, "params", {})), sort_keys=True)})
    # identity competes too: a baseline that hurts on val should lose to doing nothing
    best = bl.best_classical({r["method"]: r["val_gain_db"] for r in rows})
    for r in rows:
        r["best_classical"] = r["method"] == best
    extra = {"model": ("model", model_estimate)}
    orc = oracles.oracle(signal, degradation)
    if orc is not None:
        extra["oracle"] = ("oracle", orc(test.degraded))
    # Ceilings that need the clean signal: what no method of a kind can beat (see baselines).
    bound = None
    if degradation.kind in ("noise", "speech_noise") and exp.signal.family != "sine":
        bound = "ideal_mask"
        extra[bound] = ("bound", oracles.ideal_mask_bound(test.clean, test.degraded))
    for name, (kind, est) in extra.items():
        results[name] = scorer(est)
        rows.append({"method": name, "kind": kind, "best_classical": False,
                     **results[name]["row"]})
    return Scored(results=results, rows=rows, best=best, bound=bound)


def _fraction(num: float, den: float | None) -> float | None:
    return rounded(num / den) if den and den > 1e-9 else None


def headline_metrics(exp: Experiment, s: Scored, train: Split, val: Split, test: Split,
                     nonfinite_frames: int) -> dict[str, Any]:
    """metrics.json's figures (before the provenance fields the stage adds)."""
    m, b = s.results["model"]["row"], s.results[s.best]["row"]
    o_gain = s.results["oracle"]["row"]["gain_mean_db"] if "oracle" in s.results else None
    bound_gain = s.results[s.bound]["row"]["gain_mean_db"] if s.bound else None
    inp = summarize(test.snr)
    signal, degradation = exp.signal, exp.degradation
    best_val = next(r["val_gain_db"] for r in s.rows if r["method"] == s.best)
    return {
        "n_test": len(test.clean),
        "input_snr_mean_db": rounded(inp["mean"]), "input_snr_median_db": rounded(inp["median"]),
        "input_snr_p10_db": rounded(inp["p10"]), "input_snr_p90_db": rounded(inp["p90"]),
        "input_aggregate_snr_db": rounded(test.aggregate_snr),
        "identity_gain_db": rounded(s.results["identity"]["row"]["gain_mean_db"], 6),
        **{f"model_{k}": rounded(m[v]) for k, v in (
            ("gain_db", "gain_mean_db"), ("gain_median_db", "gain_median_db"),
            ("snr_mean_db", "snr_mean_db"), ("snr_median_db", "snr_median_db"),
            ("snr_p10_db", "snr_p10_db"), ("snr_p90_db", "snr_p90_db"),
            ("aggregate_gain_db", "aggregate_gain_db"), ("si_sdr_gain_db", "si_sdr_gain_db"),
            ("lsd", "lsd"))},
        "model_nonfinite_frames": nonfinite_frames,
        "best_classical": s.best,
        "best_classical_selected_by": SELECTION,
        "best_classical_val_gain_db": rounded(best_val),
        "best_classical_gain_db": rounded(b["gain_mean_db"]),
        "best_classical_snr_median_db": rounded(b["snr_median_db"]),
        "best_classical_lsd": rounded(b["lsd"]),
        "model_minus_best_classical_db": rounded(m["gain_mean_db"] - b["gain_mean_db"]),
        "oracle_gain_db": rounded(o_gain),
        "fraction_of_oracle_gain": _fraction(m["gain_mean_db"], o_gain),
        "bound": s.bound,
        "bound_gain_db": rounded(bound_gain) if s.bound else None,
        "fraction_of_bound_gain": _fraction(m["gain_mean_db"], bound_gain),
        "lsd_n_fft": min(LSD_MAX_FFT, exp.frame_length), "lsd_units": "log10 power",
        "snr_cap_db": SNR_CAP_DB,
        "baseline_fit_frames": len(train.clean), "baseline_select_frames": len(val.clean),
        "task_facts": [*oracles.oracle_task_facts(signal, degradation, exp.frame_length),
                       *oracles.bandwidth_task_facts(signal, degradation, exp.sample_rate),
                       *([IDEAL_MASK_FACT] if s.bound == "ideal_mask" else [])],
    }


def gain_tables(exp: Experiment, s: Scored, test: Split, f_test: np.ndarray | None
                ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Mean gain per input-SNR bucket, and per sine frequency (sine family only)."""
    gains = {"model": s.results["model"]["gain"], "best_classical": s.results[s.best]["gain"],
             "oracle": s.results["oracle"]["gain"] if "oracle" in s.results else None}
    buckets = bucket_table(test.snr, gains)
    by_f = frequency_table(f_test, test.snr, gains, exp) if f_test is not None else None
    return buckets, by_f


def clean_json(v: Any) -> Any:
    """NaN/inf -> null and numpy scalars -> Python, so metrics.json is strict JSON."""
    if isinstance(v, dict):
        return {k: clean_json(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [clean_json(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


# The few numbers a person compares across runs: DVC's declared metrics (`dvc exp show`).
KEY_METRICS = ("model_gain_db", "best_classical_gain_db", "model_minus_best_classical_db",
               "model_snr_median_db", "oracle_gain_db", "bound_gain_db",
               # experiments with speech metrics (pipeline.evaluation.speech's headline)
               "speech.model.si_sdr_db", "speech.model.pesq", "speech.model.stoi",
               "speech.model.lsd")


def key_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """metrics.json's headline numbers (those that apply to this experiment)."""
    return {k: metrics[k] for k in KEY_METRICS if metrics.get(k) is not None}


def rounded(x: float | None, nd: int = 4) -> float | None:
    """Rounded for reading; + 0.0 turns the -0.0 of a tiny negative into 0.0."""
    return None if x is None or not math.isfinite(x) else round(float(x), nd) + 0.0


