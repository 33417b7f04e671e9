"""The tables speech people read: every method's per-frame SNR, SI-SDR, PESQ-WB, STOI and LSD,
grouped by noise kind and by 5 dB input-SNR bucket, and the headline speech denoising compares.

Pure numpy/pandas. One frame is one clip (speech experiments use ~2 s frames). Every table is
built from one long per-frame table (``index``, ``method`` and one column per metric), so the
outside anchors' per-clip rows (``reports/E/anchors.csv``: the same columns) join the same
tables: :func:`join_anchors`. A gain is the mean over frames of the method's figure minus the
input's on the same frame, signed so that positive is better (for LSD: input LSD minus the
method's). The headline of a denoising experiment is the mean over noise kinds of the mean over
the 0, 5 and 10 dB buckets, so no kind and no SNR range outweighs the others by its frame count;
other degradations' headline is the plain mean over test frames.

PESQ-WB and STOI cost ~23 and ~7 ms per 2-s clip, so a large table runs in ``WORKERS`` spawned
processes (``executor.map`` keeps the frames' order: results do not depend on the worker count).
"""

from __future__ import annotations

import multiprocessing
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd

from pipeline.dsp.metrics import SNR_CAP_DB, lsd, si_sdr_db, snr_db, speech_snr_bucket
from pipeline.evaluation.speech_tables import (
    ALL_KINDS,
    ALL_SOURCES,
    COLUMNS,
    HEADLINE_BUCKETS,
    SpeechTables,
    join_anchors,
)

WORKERS = 2
CHUNK = 8  # clips per task: amortises the pickling of one call
# Fewer clips than this are scored in-process: starting the workers costs ~2 s (~60 clips).
# Measured: PESQ-WB + STOI of 100 2-s clips 3.1 s in one process (PESQ 2.3 s, STOI 0.6 s).
MIN_PARALLEL = 200


# ----------------------------------------------------------------------------- per frame
def _perceptual_chunk(job: tuple[list[np.ndarray], list[np.ndarray], int, tuple[str, ...]]
                      ) -> list[tuple[float, ...]]:
    """PESQ-WB / STOI of a few clips (runs in a worker: module level, picklable)."""
    from pipeline.dsp.speech_metrics import pesq_wb, stoi

    ests, refs, rate, names = job
    fns = {"pesq": pesq_wb, "stoi": stoi}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN for a silent clip is the result
        return [tuple(fns[n](e, r, rate) for n in names) for e, r in zip(ests, refs, strict=True)]


def perceptual_scores(ests: Sequence[np.ndarray], refs: Sequence[np.ndarray], rate: int,
                      names: Sequence[str], workers: int = WORKERS) -> dict[str, np.ndarray]:
    """PESQ-WB and/or STOI per clip, in order; over `workers` processes for many clips."""
    names = tuple(n for n in names if n in ("pesq", "stoi"))
    if not names or not len(ests):
        return {n: np.zeros(0) for n in names}
    jobs = [([np.asarray(e, np.float64) for e in ests[i:i + CHUNK]],
             [np.asarray(r, np.float64) for r in refs[i:i + CHUNK]], int(rate), names)
            for i in range(0, len(ests), CHUNK)]
    workers = min(workers, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                  else os.cpu_count() or 1)
    if workers <= 1 or len(ests) < MIN_PARALLEL:
        rows = [row for job in jobs for row in _perceptual_chunk(job)]
    else:  # spawn: the parent may hold TensorFlow's threads, which a fork would copy mid-lock
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            rows = [row for part in pool.map(_perceptual_chunk, jobs) for row in part]
    table = np.asarray(rows, dtype=np.float64).reshape(len(ests), len(names))
    return {n: table[:, j] for j, n in enumerate(names)}


def frame_scores(methods: dict[str, np.ndarray], clean: np.ndarray, sample_rate: int,
                 metrics: Sequence[str], lsd_n_fft: int, workers: int = WORKERS) -> pd.DataFrame:
    """One row per (method, test frame): ``index``, ``method`` and the requested metrics'
    columns (``COLUMNS``), methods in the given order."""
    n = len(clean)
    parts = []
    perceptual = [m for m in metrics if m in ("pesq", "stoi")]
    names = list(methods)
    # every method's clips in one pool: one spawn for the whole table
    per = perceptual_scores([f for k in names for f in methods[k]], [f for _ in names for f in clean],
                            sample_rate, perceptual, workers) if perceptual else {}
    for j, name in enumerate(names):
        est = methods[name]
        part = {"index": np.arange(n), "method": name}
        for m in metrics:
            if m == "snr":
                part["snr_db"] = snr_db(est, clean, cap=SNR_CAP_DB)
            elif m == "si_sdr":
                part["si_sdr_db"] = si_sdr_db(est, clean, cap=SNR_CAP_DB)
            elif m == "lsd":
                part["lsd"] = lsd(est, clean, lsd_n_fft)
            else:
                part[COLUMNS[m]] = per[m][j * n:(j + 1) * n]
        parts.append(pd.DataFrame(part))
    return pd.concat(parts, ignore_index=True)


def conditions(manifest: pd.DataFrame | None, input_snr: np.ndarray) -> pd.DataFrame:
    """Per test frame: ``index``, ``noise_kind`` (ALL_KINDS without that column) and
    ``snr_bucket_db`` (from the drawn ``snr_db`` if the manifest has it, else ``input_snr_db``,
    else the measured input SNR). `manifest` is the test split's rows, any order."""
    n = len(input_snr)
    if manifest is None:
        man = pd.DataFrame({"index": np.arange(n)})
    else:
        man = manifest.sort_values("index").reset_index(drop=True)
        if len(man) != n or not np.array_equal(man["index"].to_numpy(), np.arange(n)):
            raise ValueError(f"manifest has {len(man)} test rows (indices 0..{n - 1} expected)")
    kind = man["noise_kind"].astype(str) if "noise_kind" in man else ALL_KINDS
    source = next((c for c in ("snr_db", "input_snr_db") if c in man), None)
    snr = man[source].to_numpy(np.float64) if source else np.asarray(input_snr, np.float64)
    package = man["package"].astype(str) if "package" in man else ALL_SOURCES
    return pd.DataFrame({"index": np.arange(n), "noise_kind": kind,
                         "snr_bucket_db": speech_snr_bucket(snr), "package": package})


def anchor_tables(anchors: pd.DataFrame, manifest: pd.DataFrame,
                  headline_buckets: Sequence[float] | None = HEADLINE_BUCKETS) -> SpeechTables:
    """The tables of anchors' per-clip rows alone, frames described by the `manifest`'s test
    rows (gains only where the rows include method ``input``)."""
    test = manifest[manifest["split"] == "test"] if "split" in manifest else manifest
    snr = test.sort_values("index")["input_snr_db"] if "input_snr_db" in test else np.full(
        len(test), np.nan)
    return join_anchors(anchors.iloc[:0], conditions(test, np.asarray(snr)), anchors,
                        headline_buckets)
