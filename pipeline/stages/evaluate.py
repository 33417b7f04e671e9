"""The `evaluate@<experiment>` and `summary` stages: score the model against DSP and an oracle.

Every number comes from the TEST split. Classical baselines are fitted on (at most
``MAX_FIT_FRAMES``) train frames and the "best classical" one is picked by its mean SNR gain on the
VAL split, so the comparison the report leads with is never tuned on the frames it is scored on.
All inputs are checked before anything is written; outputs are staged in a temp folder and
renamed into place only once everything (MLflow logging included) has succeeded.

Outputs of ``reports/<exp>/`` (dvc.yaml declares them)::

    metrics.json      flat numbers for `dvc metrics show` (model_gain_db, best_classical, ...)
    methods.csv       one row per method: SNR/SI-SDR/LSD stats on test, val gain of baselines
    gain_by_snr.csv   mean SNR gain per input-SNR bucket (x: input_snr_db) for `dvc plots`
    figures/          examples.png, gain_vs_snr.png, spectrograms.png
                      (+ gain_by_frequency.png/.csv for sines)
    audio/            listening examples for the report: examples.json + 16-bit WAVs of clean,
                      degraded, model and best classical (consecutive test frames joined to
                      >= 1 s with short fades, upsampled to >= 8 kHz: browsers refuse lower rates)
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.config import Experiment, Params
from pipeline.dsp import baselines as bl
from pipeline.dsp.metrics import (
    SNR_BUCKET_LABELS,
    aggregate_snr_db,
    lsd,
    si_sdr_db,
    snr_bucket,
    snr_db,
    summarize,
)
from pipeline.io.atomic import atomic_write_text, replace_dir
from pipeline.layout import DataError, load_split, read_digest
from pipeline.versions import library_versions

log = logging.getLogger(__name__)

MAX_FIT_FRAMES = 4000  # train frames given to baselines: a few knobs need no more
PREDICT_BATCH = 256
LSD_MAX_FFT = 2048  # audio frames (>= 2048 samples) use 2048-point windows; shorter: one window
SNR_CAP_DB = 100.0
BUCKET_CENTRES = {"<0": -5.0, "0-10": 5.0, "10-20": 15.0, ">20": 25.0}
SELECTION = "val_mean_snr_gain_db"  # how best_classical is chosen (documented in metrics.json)
AUDIO_EXAMPLES = 3  # listening examples per experiment: low, middle and high input SNR
AUDIO_SECONDS = 1.0  # each joins consecutive test frames up to this length: long enough to hear
PLAYBACK_MIN_RATE = 8000  # Chromium refuses a 1 kHz WAV (MEDIA_ERR_SRC_NOT_SUPPORTED); 8 kHz plays
FADE_S = 0.004  # raised-cosine fade at every frame edge: joined frames would click otherwise
AUDIO_PEAK = 0.9  # one common gain per example brings its loudest version to this peak
SUMMARY_COLUMNS = [
    "signal", "degradation", "n_test", "input_snr_median_db", "model_gain_db",
    "best_classical", "best_classical_gain_db", "model_minus_best_classical_db",
    "oracle_gain_db", "fraction_of_oracle_gain", "bound", "bound_gain_db", "model_snr_median_db",
]


# ----------------------------------------------------------------------------- inputs
def _check_inputs(root: Path, name: str, exp: Experiment) -> dict[str, Any]:
    """Validate every input up front so a missing file fails before anything is written."""
    data_dir = root / "data" / name
    model_path = root / "models" / name / "model.keras"
    digest = read_digest(data_dir)
    for split in ("train", "val", "test"):
        clean, _ = load_split(data_dir, split)
        if clean.shape[1] != exp.frame_length:
            raise DataError(
                f"{data_dir}: {split} frames have {clean.shape[1]} samples but params say "
                f"frame_length {exp.frame_length}; run `dvc repro generate@{name}`"
            )
    if not model_path.is_file():
        raise DataError(f"{model_path}: missing; run `dvc repro train@{name}` first")
    manifest = data_dir / "manifest.csv"
    if exp.signal.family == "sine" and not manifest.is_file():
        raise DataError(f"{manifest}: missing; run `dvc repro generate@{name}` first")
    meta_path = model_path.with_name("meta.json")
    meta: dict[str, Any] = {}
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
    else:
        log.warning("%s: missing; the evaluation run will not be linked to a train run", meta_path)
    if meta.get("frame_length") not in (None, exp.frame_length):
        raise DataError(
            f"{model_path}: trained on {meta['frame_length']}-sample frames, data has "
            f"{exp.frame_length}; run `dvc repro train@{name}`"
        )
    if meta.get("data_digest") not in (None, digest):
        log.warning("%s: model was trained on data %s but data/%s is %s; results may be stale",
                    model_path, meta["data_digest"], name, digest)
    return {"data_dir": data_dir, "model_path": model_path, "digest": digest, "meta": meta,
            "manifest": manifest if manifest.is_file() else None}


def _predict(model_path: Path, degraded: np.ndarray) -> tuple[np.ndarray, int]:
    """Model output for (n, T) frames, and how many frames had non-finite values.

    Non-finite outputs are zeroed so a diverged model scores as a failure instead of turning
    every mean into NaN.
    """
    import keras

    import pipeline.nn.models  # noqa: F401  registers the custom layers for safe-mode loading

    model = keras.models.load_model(model_path, safe_mode=True, compile=False)
    x = np.asarray(degraded, dtype=np.float32)[..., None]
    y = np.asarray(model.predict(x, batch_size=PREDICT_BATCH, verbose=0), dtype=np.float32)
    y = y.reshape(degraded.shape)
    bad = ~np.isfinite(y)
    n_bad = int(np.any(bad, axis=1).sum())
    if n_bad:
        log.warning("%s: %d test frames have non-finite outputs (scored as zeros)", model_path,
                    n_bad)
        y = np.where(bad, 0.0, y).astype(np.float32)
    return y, n_bad


# ----------------------------------------------------------------------------- scoring
def _score(est: np.ndarray, clean: np.ndarray, input_snr: np.ndarray, input_si: np.ndarray,
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


def _bucket_table(input_snr: np.ndarray, gains: dict[str, np.ndarray | None]) -> pd.DataFrame:
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


def _frequency_table(f: np.ndarray, input_snr: np.ndarray, gains: dict[str, np.ndarray | None],
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


# ----------------------------------------------------------------------------- figures
def _figures(folder: Path, exp: Experiment, clean: np.ndarray, degraded: np.ndarray,
             input_snr: np.ndarray, ests: dict[str, np.ndarray], gains: dict[str, np.ndarray],
             buckets: pd.DataFrame, by_f: pd.DataFrame | None, best: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def save(fig, ax, filename: str, xlabel: str, ylabel: str, title: str) -> None:
        """Shared finish: zero line, labels with units, legend, file, close."""
        ax.axhline(0.0, color="0.5", lw=0.8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / filename, dpi=110)
        plt.close(fig)

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
    fig.savefig(folder / "examples.png", dpi=90)  # the largest figure: keep reports/ small
    plt.close(fig)

    # gain_vs_snr.png: every frame as a dot, bucket means as lines
    colours = {"model": "tab:blue", best: "tab:orange", "oracle": "tab:green"}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, colour in colours.items():
        if key not in gains:
            continue
        ax.scatter(input_snr, gains[key], s=5, alpha=0.25, color=colour)
        col = "best_classical" if key == best else key
        ax.plot(buckets["input_snr_mean_db"], buckets[col], marker="o", color=colour,
                label=f"{key} (bucket mean)" if key != best else f"best classical: {key}")
    save(fig, ax, "gain_vs_snr.png", "input SNR of the degraded frame (dB)",
         "SNR gain over the degraded input (dB)", "SNR gain vs input SNR (test split)")

    if by_f is not None:  # grouped bars: one group per sine frequency
        keys = [k for k in ("model", "best_classical", "oracle") if by_f[k].notna().any()]
        width = 0.8 / len(keys)
        x = np.arange(len(by_f))
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for j, key in enumerate(keys):
            label = f"best classical: {best}" if key == "best_classical" else key
            ax.bar(x + (j - (len(keys) - 1) / 2) * width, by_f[key].fillna(0.0), width,
                   label=label, color=colours.get(best if key == "best_classical" else key))
        ax.set_xticks(x, [f"{v:g}" for v in by_f["f_hz"]])
        save(fig, ax, "gain_by_frequency.png", "sine frequency (Hz)", "mean SNR gain (dB)",
             "SNR gain by sine frequency (test split)")


# ----------------------------------------------------------------------------- listening
def _example_groups(input_snr: np.ndarray, k: int, n_examples: int) -> list[np.ndarray]:
    """Indices of `n_examples` groups of `k` test frames with similar input SNR, low to high."""
    order = np.argsort(input_snr, kind="stable")
    k = min(k, len(order))
    starts = {int(round(q * (len(order) - k))) for q in np.linspace(0.1, 0.9, n_examples)}
    return [np.sort(order[s:s + k]) for s in sorted(starts)]


def _join(frames: np.ndarray, fade: int) -> np.ndarray:
    """Frames end to end, each faded in and out so the joins do not click."""
    w = np.ones(frames.shape[1])
    if fade > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade)
        w[:fade], w[-fade:] = ramp, ramp[::-1]
    return (np.asarray(frames, dtype=np.float64) * w).reshape(-1)


def _listening_examples(folder: Path, exp: Experiment, clean: np.ndarray, degraded: np.ndarray,
                        input_snr: np.ndarray, ests: dict[str, np.ndarray], best: str
                        ) -> dict[str, Any]:
    """WAVs a person can play in the report, and examples.json describing them.

    Rates below PLAYBACK_MIN_RATE are upsampled by an integer factor (same pitch, same
    duration); all four versions of an example share one gain so their loudness compares.
    """
    from pipeline.io.audio import resample, write_audio_atomic

    folder.mkdir(parents=True, exist_ok=True)
    sr, T = exp.sample_rate, exp.frame_length
    rate = sr * math.ceil(PLAYBACK_MIN_RATE / sr) if sr < PLAYBACK_MIN_RATE else sr
    per = max(1, math.ceil(AUDIO_SECONDS * sr / T))
    fade = min(T // 4, max(1, round(FADE_S * sr)))
    versions = {"clean": clean, "degraded": degraded, "model": ests["model"],
                "best_classical": ests[best]}
    examples = []
    for i, idx in enumerate(_example_groups(input_snr, per, AUDIO_EXAMPLES), start=1):
        native = {k: _join(v[idx], fade) for k, v in versions.items()}
        played = {k: resample(x, sr, rate) for k, x in native.items()}
        # peak after resampling: upsampled steps (sample-and-hold) overshoot their native peak
        peak = max(float(np.max(np.abs(x))) for x in played.values())
        gain = AUDIO_PEAK / peak if peak > 0 else 1.0
        ref = native["clean"][None]
        files = {}
        for kind, x in played.items():
            files[kind] = f"ex{i}-{kind}.wav"
            write_audio_atomic(folder / files[kind], x * gain, rate, "PCM_16")
        examples.append({
            "id": f"ex{i}", "frames": [int(j) for j in idx], "seconds": len(ref[0]) / sr,
            "input_snr_db": _r(float(np.mean(input_snr[idx])), 2),
            "snr_db": {k: _r(float(snr_db(native[k][None], ref, cap=SNR_CAP_DB)[0]), 2)
                       for k in ("degraded", "model", "best_classical")},
            "gain": _r(gain), "files": files, "native": native,
        })
    record = {
        "sample_rate": sr, "playback_rate": rate, "upsampled": rate != sr,
        "frames_per_example": per, "fade_ms": round(1000 * fade / sr, 2), "peak": AUDIO_PEAK,
        "best_classical": best,
        "examples": [{k: v for k, v in e.items() if k != "native"} for e in examples],
    }
    (folder / "examples.json").write_text(_json(record))
    return {**record, "examples": examples}


def _spectrograms(path: Path, exp: Experiment, examples: dict[str, Any], best: str) -> None:
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


# ----------------------------------------------------------------------------- tracking
def _flat_numbers(metrics: dict[str, Any], methods: pd.DataFrame) -> dict[str, float]:
    """metrics.json's finite numbers plus a few per-method columns, for MLflow."""
    out = {k: float(v) for k, v in metrics.items()
           if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}
    for _, r in methods.iterrows():
        for col in ("gain_mean_db", "snr_median_db", "lsd"):
            v = r[col]
            if isinstance(v, int | float) and math.isfinite(v):
                out[f"{r['method']}.{col}"] = float(v)
    return out


def _parent_run(train_run_id: str | None) -> str | None:
    """The train run to nest under, if this tracking store knows it (else a standalone run)."""
    if not train_run_id:
        return None
    from mlflow import MlflowClient

    try:
        MlflowClient().get_run(train_run_id)
        return train_run_id
    except Exception:  # another store, deleted run: keep the link as a tag only
        log.warning("train run %s not found in the tracking store; logging a standalone "
                    "evaluation run tagged train_run_id", train_run_id)
        return None


def _log_run(tracker, params: Params, name: str, root: Path, stage: Path, metrics: dict[str, Any],
             methods: pd.DataFrame, test_frames: tuple[np.ndarray, np.ndarray],
             model_id: str | None) -> str | None:
    """Log the evaluation run and its artifacts; return its id (None when tracking is off).

    metrics.json is written into `stage` here because it carries the run's own id.
    """
    from pipeline import tracking

    exp = params.experiment(name)
    train_run_id = metrics["train_run_id"]
    scored_on = exp.model_dump(mode="json", include={"sizes", "signal", "degradation"})
    tags = tracking.standard_tags("evaluate", name, tracking.params_hash(scored_on),
                                  metrics["data_digest"], cwd=root)
    tags |= {"best_classical": metrics["best_classical"]}
    if train_run_id:
        tags["train_run_id"] = train_run_id
    parent = _parent_run(train_run_id) if tracker.enabled else None
    with tracker.start_run(name, f"evaluate/{name}", tags=tags, parent_run_id=parent) as run:
        run.log_params({"signal": exp.signal.model_dump(mode="json"),
                        "degradation": exp.degradation.model_dump(mode="json"),
                        "lsd_n_fft": metrics["lsd_n_fft"], "versions": metrics["versions"]})
        test_c, test_d = test_frames
        dataset = run.log_dataset(test_d, test_c, metrics["data_digest"], name=f"{name}-test",
                                  source=root / "data" / name, context="evaluation")
        # Linked to the logged model and the test set: MLflow's model page lists these scores.
        run.log_metrics(_flat_numbers(metrics, methods), model_id=model_id, dataset=dataset)
        (stage / "metrics.json").write_text(_json({**metrics, "mlflow_run_id": run.run_id}))
        for path in sorted(stage.rglob("*")):
            if path.is_file():
                sub = path.parent.relative_to(stage).as_posix()
                run.log_artifact(path, "evaluate" if sub == "." else f"evaluate/{sub}")
        return run.run_id


# ----------------------------------------------------------------------------- outputs
def _clean_json(v: Any) -> Any:
    """NaN/inf -> null and numpy scalars -> Python, so metrics.json is strict JSON."""
    if isinstance(v, dict):
        return {k: _clean_json(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean_json(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _json(d: dict[str, Any]) -> str:
    return json.dumps(_clean_json(d), indent=2) + "\n"


KEY_METRICS_FILE = "key_metrics.json"
# The few numbers a person compares across runs: DVC's declared metrics (`dvc exp show`).
KEY_METRICS = ("model_gain_db", "best_classical_gain_db", "model_minus_best_classical_db",
               "model_snr_median_db", "oracle_gain_db", "bound_gain_db")


def key_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """metrics.json's headline numbers (those that apply to this experiment)."""
    return {k: metrics[k] for k in KEY_METRICS if metrics.get(k) is not None}


def _publish(stage: Path, out: Path, names: list[str]) -> None:
    """Rename staged files and the figures/audio folders into `out` (same filesystem: atomic each)."""
    replace_dir(stage / "figures", out / "figures")
    replace_dir(stage / "audio", out / "audio")
    for n in names:  # metrics.json last: its presence means the rest is complete
        os.replace(stage / n, out / n)


def _r(x: float | None, nd: int = 4) -> float | None:
    """Rounded for reading; + 0.0 turns the -0.0 of a tiny negative into 0.0."""
    return None if x is None or not math.isfinite(x) else round(float(x), nd) + 0.0


def evaluate_experiment(params: Params, name: str, root: str | os.PathLike[str] = ".") -> dict:
    """Score model, classical baselines and oracle on the test split; write reports/<name>/."""
    root = Path(root).resolve()
    exp = params.experiment(name)
    inputs = _check_inputs(root, name, exp)
    from pipeline import tracking

    tracker = tracking.setup(params.tracking, root)  # a required backend that is down fails here, early
    data_dir, meta = inputs["data_dir"], inputs["meta"]
    signal, degradation = exp.signal.model_dump(), exp.degradation.model_dump()

    train_c, train_d = (np.asarray(a) for a in load_split(data_dir, "train", MAX_FIT_FRAMES))
    val_c, val_d = (np.asarray(a) for a in load_split(data_dir, "val"))
    test_c, test_d = (np.asarray(a) for a in load_split(data_dir, "test"))
    f_test = None
    if inputs["manifest"] is not None and exp.signal.family == "sine":
        man = pd.read_csv(inputs["manifest"])
        man = man[man["split"] == "test"].sort_values("index")
        if len(man) != len(test_c):
            raise DataError(f"{inputs['manifest']}: {len(man)} test rows for {len(test_c)} frames; "
                            f"run `dvc repro generate@{name}`")
        f_test = man["f"].to_numpy()

    n_fft = min(LSD_MAX_FFT, exp.frame_length)
    input_snr = snr_db(test_d, test_c, cap=SNR_CAP_DB)
    input_si = si_sdr_db(test_d, test_c, cap=SNR_CAP_DB)
    input_agg = aggregate_snr_db(test_d, test_c, cap=SNR_CAP_DB)
    val_input_snr = snr_db(val_d, val_c, cap=SNR_CAP_DB)

    scored: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    for b in bl.classical_baselines(degradation, exp.sample_rate, exp.frame_length):
        b.fit(train_c, train_d)
        val_gain = float(np.mean(snr_db(b(val_d), val_c, cap=SNR_CAP_DB) - val_input_snr))
        s = _score(b(test_d), test_c, input_snr, input_si, input_agg, n_fft)
        scored[b.name] = s
        kind = "identity" if b.name == "identity" else "classical"
        rows.append({"method": b.name, "kind": kind, "val_gain_db": val_gain, **s["row"],
                     "knobs": json.dumps(_clean_json(getattr(b, "params", {})), sort_keys=True)})
    # identity competes too: a baseline that hurts on val should lose to doing nothing
    best = max((r for r in rows), key=lambda r: r["val_gain_db"])["method"]
    for r in rows:
        r["best_classical"] = r["method"] == best

    model_est, n_bad = _predict(inputs["model_path"], test_d)
    scored["model"] = _score(model_est, test_c, input_snr, input_si, input_agg, n_fft)
    rows.append({"method": "model", "kind": "model", "best_classical": False,
                 **scored["model"]["row"]})
    orc = bl.oracle(signal, degradation)
    if orc is not None:
        scored["oracle"] = _score(orc(test_d), test_c, input_snr, input_si, input_agg, n_fft)
        rows.append({"method": "oracle", "kind": "oracle", "best_classical": False,
                     **scored["oracle"]["row"]})
    # Ceilings that need the clean signal: what no method of a kind can beat (see baselines).
    bounds: dict[str, np.ndarray] = {}
    if degradation["kind"] == "noise" and exp.signal.family != "sine":
        bounds["ideal_mask"] = bl.ideal_mask_bound(test_c, test_d)
    for bname, est in bounds.items():
        scored[bname] = _score(est, test_c, input_snr, input_si, input_agg, n_fft)
        rows.append({"method": bname, "kind": "bound", "best_classical": False, **scored[bname]["row"]})
    bound = next(iter(bounds), None)
    methods = pd.DataFrame(rows)
    lead = ["method", "kind", "best_classical", "val_gain_db"]
    methods = methods[lead + [c for c in methods.columns if c not in lead]]

    m, b_row = scored["model"]["row"], scored[best]["row"]
    o_gain = scored["oracle"]["row"]["gain_mean_db"] if "oracle" in scored else None
    inp = summarize(input_snr)
    metrics: dict[str, Any] = {
        "experiment": name,
        "n_test": len(test_c),
        "input_snr_mean_db": _r(inp["mean"]), "input_snr_median_db": _r(inp["median"]),
        "input_snr_p10_db": _r(inp["p10"]), "input_snr_p90_db": _r(inp["p90"]),
        "input_aggregate_snr_db": _r(input_agg),
        "identity_gain_db": _r(scored["identity"]["row"]["gain_mean_db"], 6),
        "model_gain_db": _r(m["gain_mean_db"]), "model_gain_median_db": _r(m["gain_median_db"]),
        "model_snr_mean_db": _r(m["snr_mean_db"]), "model_snr_median_db": _r(m["snr_median_db"]),
        "model_snr_p10_db": _r(m["snr_p10_db"]), "model_snr_p90_db": _r(m["snr_p90_db"]),
        "model_aggregate_gain_db": _r(m["aggregate_gain_db"]),
        "model_si_sdr_gain_db": _r(m["si_sdr_gain_db"]), "model_lsd": _r(m["lsd"]),
        "model_nonfinite_frames": n_bad,
        "best_classical": best,
        "best_classical_selected_by": SELECTION,
        "best_classical_val_gain_db": _r(next(r["val_gain_db"] for r in rows
                                             if r["method"] == best)),
        "best_classical_gain_db": _r(b_row["gain_mean_db"]),
        "best_classical_snr_median_db": _r(b_row["snr_median_db"]),
        "best_classical_lsd": _r(b_row["lsd"]),
        "model_minus_best_classical_db": _r(m["gain_mean_db"] - b_row["gain_mean_db"]),
        "oracle_gain_db": _r(o_gain),
        "fraction_of_oracle_gain": (_r(m["gain_mean_db"] / o_gain) if o_gain and o_gain > 1e-9
                                    else None),
        "bound": bound,
        "bound_gain_db": _r(scored[bound]["row"]["gain_mean_db"]) if bound else None,
        "fraction_of_bound_gain": (_r(m["gain_mean_db"] / scored[bound]["row"]["gain_mean_db"])
                                   if bound and scored[bound]["row"]["gain_mean_db"] > 1e-9 else None),
        "lsd_n_fft": n_fft, "lsd_units": "log10 power",
        "snr_cap_db": SNR_CAP_DB,
        "baseline_fit_frames": len(train_c), "baseline_select_frames": len(val_c),
        "task_facts": [*bl.oracle_task_facts(signal, degradation, exp.frame_length),
                       *bl.bandwidth_task_facts(signal, degradation, exp.sample_rate),
                       *(["ideal_mask: the phase-sensitive ideal real STFT mask, computed from the "
                          "clean signal (Hann 512, hop 128); real-valued masks on these frames keep the "
                          "noisy phase and cannot beat it (Wiener filters; the stft_mask net "
                          "approximately)"] if bound == "ideal_mask" else [])],
        "data_digest": inputs["digest"],
        "model_data_digest": meta.get("data_digest"),
        "train_run_id": meta.get("mlflow_run_id"),
        "versions": library_versions(),
        "mlflow_run_id": None,
    }

    gains = {"model": scored["model"]["gain"], "best_classical": scored[best]["gain"],
             "oracle": scored["oracle"]["gain"] if "oracle" in scored else None}
    buckets = _bucket_table(input_snr, gains)
    by_f = _frequency_table(f_test, input_snr, gains, exp) if f_test is not None else None

    out = root / "reports" / name
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".evaluate.", dir=out) as tmp:
        stage = Path(tmp)
        (stage / "figures").mkdir()
        ests = {k: v["estimate"] for k, v in scored.items()}
        per_frame = {k: v["gain"] for k, v in scored.items()}
        _figures(stage / "figures", exp, test_c, test_d, input_snr, ests, per_frame, buckets,
                 by_f, best)
        examples = _listening_examples(stage / "audio", exp, test_c, test_d, input_snr, ests, best)
        _spectrograms(stage / "figures" / "spectrograms.png", exp, examples, best)
        methods.to_csv(stage / "methods.csv", index=False, float_format="%.6g")
        buckets.to_csv(stage / "gain_by_snr.csv", index=False, float_format="%.6g")
        if by_f is not None:
            by_f.to_csv(stage / "figures" / "gain_by_frequency.csv", index=False,
                        float_format="%.6g")
        metrics["mlflow_run_id"] = _log_run(tracker, params, name, root, stage, metrics, methods,
                                            (test_c, test_d), meta.get("mlflow_model_id"))
        (stage / KEY_METRICS_FILE).write_text(_json(key_metrics(metrics)))
        _publish(stage, out, ["methods.csv", "gain_by_snr.csv", KEY_METRICS_FILE, "metrics.json"])
    return _clean_json(metrics)


# ----------------------------------------------------------------------------- summary
def write_summary(params: Params, root: str | os.PathLike[str] = ".") -> pd.DataFrame:
    """One row per evaluated experiment: the headline comparison across tasks, as csv and md."""
    root = Path(root)
    rows = []
    for name, exp in params.experiments.items():
        path = root / "reports" / name / "metrics.json"
        if not path.is_file():
            log.warning("%s: missing; run `dvc repro evaluate@%s` (left out of the summary)",
                        path, name)
            continue
        m = json.loads(path.read_text())
        rows.append({"experiment": name, "signal": exp.signal.family,
                     "degradation": exp.degradation.kind,
                     **{c: m.get(c) for c in SUMMARY_COLUMNS[2:]}})
    if not rows:
        raise DataError(f"{root / 'reports'}: no experiment has a metrics.json; run "
                        "`dvc repro evaluate` first")
    table = pd.DataFrame(rows).set_index("experiment")[SUMMARY_COLUMNS]
    atomic_write_text(root / "reports" / "summary.csv", table.to_csv(float_format="%.4g"))
    shown = table.astype(object).where(table.notna(), None)  # tabulate's missingval wants None
    md = (
        "# audiorecon summary\n\n"
        "Test-split mean per-frame SNR gain (dB) over the degraded input. `best_classical` is "
        "the DSP baseline with the highest gain on the val split; `fraction_of_oracle_gain` is "
        "model gain / oracle gain (sine family only).\n\n"
        + shown.to_markdown(floatfmt=".2f", missingval="-") + "\n"
    )
    atomic_write_text(root / "reports" / "summary.md", md)
    return table
