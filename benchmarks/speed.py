"""Speed against the anchors: every default model's `enhance` beside DeepFilterNet3, RNNoise and
the decision-directed Wiener filter on the same 60 s of 16 kHz audio, in one run.

Per method:

- Real-time factor (RTF = seconds of audio / seconds of processing): medians of --repeats, the
  methods interleaved (m1, m2, ..., m1, m2, ...) after one untimed warm-up round on 2 s, so
  drifting machine load hits every method alike. The models run
  `pipeline.enhance.enhance_file` end to end on a 16 kHz mono WAV file: read + resample to the
  model's rate + overlap-add inference + resample back + write. Loading and tracing the model
  (`load_s`, paid once per call of the CLI) is excluded and reported apart. The anchors run
  their `.enhance(x16k)` (benchmarks/anchors.py: 16 -> 48 kHz, one 480-sample frame per ctypes
  call, 48 -> 16 kHz) on the same samples as an array: no file I/O, network state built before
  the clock starts.
- Memory: each method runs once more in its own child process, which reports its peak RSS
  (VmHWM of /proc/self/status) after its imports only (TensorFlow/Keras and pipeline.enhance
  for the models; benchmarks.anchors, i.e. numpy/scipy/pandas, for the anchors) and after
  enhancing the clip. The difference is the memory the method itself adds.
- Latency (algorithmic delay): how long after an input sample arrives the method can emit the
  output sample at that time, compute time excluded. A project model maps whole frames of T
  samples to frames of T samples and every output sample may depend on every input sample of
  its frame (convolutions over the frame, per-frame normalisation: non-causal within the
  frame), so overlap-add at hop T/2 must have read a whole frame before it can finish the
  samples at its start: worst-case lookahead T - 1 samples, stated as T / sample_rate, plus
  the lookahead of the resampling filters when the model runs at another rate than the 16 kHz
  input. `enhance` itself works on blocks of 2^20 samples, so it is a file tool; the delay is
  what a streaming implementation of the same model would need. DeepFilterNet3's and RNNoise's
  delays are the measured ones in benchmarks/anchors.py (reports/speech-denoise/anchors.json
  when it exists), without the 16 <-> 48 kHz resampling of this harness.

Targets: every default model >= 100x real time end to end at 16 kHz on this machine, except
speech-denoise >= 20x.

    python -m benchmarks.speed [--experiments audio-noise ...] [--seconds 60] [--repeats 3]
                               [--untrained] [--no-memory]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from benchmarks.common import ROOT, Figure, figure, log, print_figures  # noqa: E402

SECTION = "speed"
RATE = 16000
SECONDS = 60.0
TARGET_RTF = 100.0
TARGET_RTF_BY_EXPERIMENT = {"speech-denoise": 20.0}
WARMUP_SECONDS = 2.0
WIENER_FRAME = 1024  # as benchmarks/anchors_split.py
FIT_FRAMES = 64
ANCHORS = {  # method -> (label, class name in benchmarks.anchors, key of anchors.INSTALL)
    "deepfilternet3": ("DeepFilterNet3", "DeepFilterNet3", "dfn3"),
    "rnnoise": ("RNNoise", "RNNoise", "rnnoise"),
    "wiener_dd": ("Wiener DD", "WienerAnchor", None),
}


def target_rtf(experiment: str) -> float:
    return TARGET_RTF_BY_EXPERIMENT.get(experiment, TARGET_RTF)


# --------------------------------------------------------------------------- the audio


def test_clip(seconds: float = SECONDS, root: Path = ROOT) -> tuple[np.ndarray, str,
                                                                      list[tuple[np.ndarray, np.ndarray]]]:
    """(x, description, fit_pairs): `seconds` of 16 kHz speech-like float32 audio, the same for
    every method, and (clean, noisy) pairs of *other* audio to fit the Wiener filter on.

    The speech-denoise test split's degraded frames laid end to end when data/speech-denoise
    exists (real speech in the experiment's noise mix); otherwise benchmarks.anchors.voiced_like
    mixed with white noise at 5 dB SNR (the Wiener fit on other voiced-like audio, same noise).
    """
    from pipeline.layout import ExperimentPaths, load_split

    n = int(round(seconds * RATE))
    paths = ExperimentPaths(Path(root), "speech-denoise")
    try:
        _, degraded = load_split(paths, "test")
        fit_clean, fit_noisy = load_split(paths, "train", FIT_FRAMES)
        T = degraded.shape[1]
        need = -(-n // T)
        if len(degraded) >= need:
            x = np.asarray(degraded[:need], np.float32).reshape(-1)[:n]
            fit = list(zip(np.asarray(fit_clean, np.float64), np.asarray(fit_noisy, np.float64),
                           strict=True))
            return np.ascontiguousarray(x), (f"speech-denoise test split, first {need} degraded "
                                             f"frames of {T / RATE:.2f} s end to end"), fit
    except Exception:  # no data (clean clone) or a different layout: synthetic speech-like audio
        pass
    from benchmarks.anchors import voiced_like
    from benchmarks.anchors_measure import mix_at_snr

    rng = np.random.default_rng(0)
    clean = voiced_like(seconds, RATE, seed=0)
    x = mix_at_snr(clean, rng.standard_normal(len(clean)), 5.0).astype(np.float32)
    fc = voiced_like(20.0, RATE, seed=1000)
    fit = [(fc, mix_at_snr(fc, rng.standard_normal(len(fc)), 5.0))]
    return x, "benchmarks.anchors.voiced_like + white noise at 5 dB SNR (no data/speech-denoise)", fit


# --------------------------------------------------------------------------- the models

def _shown(path: Path) -> str:
    """The path relative to the repo when inside it: reports carry no machine's absolute paths."""
    try:
        return Path(path).resolve().relative_to(ROOT.resolve()).as_posix()
    except ValueError:
        return Path(path).name


def enhance_once(folder: Path, src: Path, dst: Path) -> tuple[float, float]:
    """(elapsed_s, load_s) of `enhance_file(folder, src, dst)`: elapsed = read + resample +
    inference + write, model load excluded."""
    from pipeline.enhance import enhance_file

    s = enhance_file(folder, src, dst, show_progress=False)
    return s["elapsed_s"], s["load_s"]


# --------------------------------------------------------------------------- latency


def resampler_lookahead_s(in_rate: int, model_rate: int) -> float:
    """Lookahead of `enhance`'s two resample_poly filters (in -> model rate and back), seconds.

    resample_poly's filter spans 10 * max(up, down) taps on each side at the upsampled rate
    (in_rate * up = model_rate * down); both directions have the same half-length there.
    """
    if in_rate == model_rate:
        return 0.0
    g = math.gcd(in_rate, model_rate)
    up, down = model_rate // g, in_rate // g
    return 2 * 10 * max(up, down) / (in_rate * up)


def model_latency(meta: dict, in_rate: int = RATE) -> tuple[float, str]:
    """(milliseconds, how) of an overlap-add frame model, as the module docstring defines it."""
    T, sr = int(meta["frame_length"]), int(meta["sample_rate"])
    frame_ms = 1000.0 * T / sr
    res_ms = 1000.0 * resampler_lookahead_s(in_rate, sr)
    how = f"one {T}-sample frame at {sr / 1000:g} kHz (non-causal within the frame)"
    if res_ms:
        how += f" + {res_ms:.1f} ms of resampling-filter lookahead ({in_rate // 1000} <-> {sr / 1000:g} kHz)"
    if frame_ms + res_ms > 200:
        how += "; over 200 ms: not for interactive use (an offline, file-processing method)"
    return frame_ms + res_ms, how


def anchor_latency(method: str, root: Path = ROOT) -> tuple[float, str]:
    """(milliseconds, source) of an anchor: reports/speech-denoise/anchors.json's, else the
    delays measured and recorded in benchmarks/anchors.py."""
    from benchmarks import anchors as A

    facts = {"deepfilternet3": (1000.0 * A.DeepFilterNet3.delay / A.NET_RATE,
                                "2 lookahead frames + 1 STFT overlap frame of 10 ms at 48 kHz"),
             "rnnoise": (1000.0 * A.RNNoise.delay / A.NET_RATE, "960 samples at 48 kHz"),
             "wiener_dd": (1000.0 * WIENER_FRAME / A.ANCHOR_RATE,
                           f"one {WIENER_FRAME}-sample STFT frame at 16 kHz (filters a whole clip "
                           "offline here; a stream needs one frame)")}
    ms, how = facts[method]
    src = "measured by cross-correlation (benchmarks/anchors.py)" if method != "wiener_dd" else ""
    p = Path(root) / "reports" / "speech-denoise" / "anchors.json"
    try:
        ms = float(json.loads(p.read_text())["latency_ms"][method])
        src = "reports/speech-denoise/anchors.json"
    except (OSError, KeyError, ValueError, TypeError):
        pass
    return ms, "; ".join(s for s in (how, src) if s)


# --------------------------------------------------------------------------- memory (child)


def _status_mib(field: str) -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(kind: str, target: str, src: str, dst: str) -> dict[str, float]:
    """Run one method once in this (fresh) process; VmHWM after imports and after the run.

    kind "model": `enhance_file(target, src, dst)`; kind "deepfilternet3" / "rnnoise":
    that anchor; kind "wiener_dd": WienerAnchor fitted on the pairs in the .npz `target`.
    """
    t0 = time.perf_counter()
    if kind == "model":
        import keras  # noqa: F401
        import tensorflow  # noqa: F401

        import pipeline.enhance  # noqa: F401
        import pipeline.nn.layers  # noqa: F401
    else:
        import soundfile as sf

        from benchmarks import anchors as A
    out = {"imports_hwm_mib": _status_mib("VmHWM"), "imports_rss_mib": _status_mib("VmRSS"),
           "imports_s": time.perf_counter() - t0}
    if kind == "model":
        run_s, load_s = enhance_once(Path(target), Path(src), Path(dst))
        out.update(load_s=load_s, run_s=run_s)
    else:
        t0 = time.perf_counter()
        if kind == "wiener_dd":
            with np.load(target) as z:
                anchor = A.WienerAnchor(list(zip(z["clean"], z["noisy"], strict=True)), WIENER_FRAME)
        else:
            anchor = getattr(A, ANCHORS[kind][1])()
        anchor.prepare()
        out["load_s"] = time.perf_counter() - t0
        out["loaded_hwm_mib"] = _status_mib("VmHWM")
        t0 = time.perf_counter()
        x, rate = sf.read(src, dtype="float32")
        y = anchor.enhance(x)
        sf.write(dst, np.asarray(y, np.float32), rate, subtype="FLOAT")
        out["run_s"] = time.perf_counter() - t0
    out["peak_hwm_mib"] = _status_mib("VmHWM")
    return out


def run_child(kind: str, target: Path, src: Path, dst: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    res = subprocess.run([sys.executable, "-m", "benchmarks.speed", "--child", kind, str(target),
                          str(src), str(dst)], capture_output=True, text=True, env=env, cwd=ROOT,
                         check=False)
    if res.returncode:
        tail = "\n".join((res.stderr or res.stdout).strip().splitlines()[-10:])
        raise RuntimeError(f"memory child for {kind} {target} failed ({res.returncode}):\n{tail}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- the run


def _models(names: list[str], workdir: Path, use_trained: bool, build_missing: bool,
            params_path: str) -> tuple[dict[str, tuple[Path, str]], dict[str, str]]:
    """name -> (model folder, where it came from); name -> why skipped."""
    from benchmarks.enhance import model_folder

    found, skipped = {}, {}
    for name in names:
        have = (ROOT / "models" / name / "model.keras").is_file()
        if use_trained and not have and not build_missing:
            skipped[name] = (f"models/{name}/model.keras missing (a DVC output: `dvc repro "
                             f"train@{name}` or `dvc pull`; --untrained times random weights)")
            continue
        found[name] = model_folder(name, workdir, params_path, use_trained)
    return found, skipped


def run(experiments: list[str] | None = None, seconds: float = SECONDS, repeats: int = 3,
        use_trained: bool = True, build_missing: bool = False, anchors: bool = True,
        memory: bool = True, params_path: str = "params.yaml") -> tuple[list[Figure], dict]:
    from pipeline.config import load_params
    from pipeline.io.audio import write_audio_atomic

    names = experiments or list(load_params(params_path).experiments)
    figs: list[Figure] = []
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-speed-") as d:
        tmp = Path(d)
        x, clip_source, fit = test_clip(seconds)
        src, warm = tmp / "clip.wav", tmp / "warmup.wav"
        write_audio_atomic(src, x[:, None], RATE, subtype="FLOAT")  # the anchors get these samples
        write_audio_atomic(warm, x[: int(WARMUP_SECONDS * RATE), None], RATE, subtype="FLOAT")
        fit_npz = tmp / "wiener_fit.npz"
        np.savez(fit_npz, clean=np.stack([c for c, _ in fit]), noisy=np.stack([n for _, n in fit]))
        log(f"speed: {seconds:g} s clip: {clip_source}")

        models, skipped = _models(names, tmp / "models", use_trained, build_missing, params_path)
        # method -> fn(input) -> (processing seconds, load seconds)
        methods: dict[str, Callable[[bool], tuple[float, float]]] = {}
        for name, (folder, how) in models.items():
            meta = json.loads((folder / "meta.json").read_text())
            ms, lat = model_latency(meta)
            rows[name] = {"kind": "model", "source": how, "latency_ms": ms, "latency": lat,
                          "target_rtf": target_rtf(name), "folder": _shown(folder)}

            def go(warmup: bool, folder: Path = folder, name: str = name) -> tuple[float, float]:
                return enhance_once(folder, warm if warmup else src, tmp / "out.wav")

            methods[name] = go
        anchor_objs: dict[str, Any] = {}
        if anchors:
            from benchmarks import anchors as A

            xw = x[: int(WARMUP_SECONDS * RATE)]
            for key, (label, cls, install) in ANCHORS.items():
                t0 = time.perf_counter()
                try:
                    obj = A.WienerAnchor(fit, WIENER_FRAME) if install is None else getattr(A, cls)()
                except (ModuleNotFoundError, OSError) as e:
                    skipped[key] = f"{label} not available ({e}; {A.INSTALL.get(install, '')})"
                    continue
                load = time.perf_counter() - t0
                ms, lat = anchor_latency(key)
                rows[key] = {"kind": "anchor", "label": label, "source": f"benchmarks.anchors.{cls}",
                             "latency_ms": ms, "latency": lat, "target_rtf": None, "load_s": load}
                anchor_objs[key] = obj
                if install is None:
                    rows[key]["fit_clips"] = len(fit)

                def go(warmup: bool, a: Any = obj, load: float = load) -> tuple[float, float]:
                    inp = xw if warmup else x
                    a.prepare()  # fresh network state, outside the clock (as run_anchors)
                    t0 = time.perf_counter()
                    a.enhance(inp)
                    return time.perf_counter() - t0, load

                methods[key] = go

        log(f"speed: {len(methods)} methods, warm-up then {repeats} interleaved repeats")
        for fn in methods.values():
            fn(True)
        times: dict[str, list[float]] = {k: [] for k in methods}
        loads: dict[str, list[float]] = {k: [] for k in methods}
        for _ in range(max(1, repeats)):
            for k, fn in methods.items():
                t, load = fn(False)
                times[k].append(t)
                loads[k].append(load)
        for k in methods:
            med = statistics.median(times[k])
            rows[k].update(rtf=seconds / med, median_s=med, runs_s=[round(t, 4) for t in times[k]],
                           load_s=statistics.median(loads[k]))
            log(f"speed: {k} {rows[k]['rtf']:.1f}x real time")

        if memory:
            for k, row in rows.items():
                log(f"speed: peak RSS of {k} in a child process")
                target = Path(row["folder"]) if row["kind"] == "model" else fit_npz
                mem = run_child("model" if row["kind"] == "model" else k, target, src, tmp / "child.wav")
                row.update(peak_rss_mib=mem["peak_hwm_mib"], imports_rss_mib=mem["imports_hwm_mib"],
                           rss_increment_mib=mem["peak_hwm_mib"] - mem["imports_hwm_mib"],
                           child=mem)
        del anchor_objs

    for k, row in rows.items():
        label = row.get("label", k)
        if row["kind"] == "model":
            figs.append(figure(SECTION, f"{k}: enhance RTF, {seconds:g} s at 16 kHz, end to end",
                               row["rtf"], "x", row["target_rtf"], key=f"speed_rtf_{k}",
                               note=f"{row['source']}; model load {row['load_s']:.1f} s excluded"))
        else:
            figs.append(figure(SECTION, f"{label}: RTF, same {seconds:g} s", row["rtf"], "x",
                               key=f"speed_rtf_{k}", note="enhance(x16k) on the array, 48 kHz inside"
                               if k != "wiener_dd" else "enhance(x16k) on the array"))
    for k, reason in skipped.items():
        if k in ANCHORS:
            figs.append(figure(SECTION, f"{ANCHORS[k][0]}: RTF, same {seconds:g} s", None, "x",
                               key=f"speed_rtf_{k}", note=f"skipped: {reason}"))
        else:
            figs.append(figure(SECTION, f"{k}: enhance RTF, {seconds:g} s at 16 kHz, end to end", None,
                               "x", target_rtf(k), key=f"speed_rtf_{k}", note=f"skipped: {reason}"))
    for k, row in rows.items():
        label = row.get("label", k)
        if "peak_rss_mib" in row:
            figs.append(figure(SECTION, f"{label}: peak RSS over its imports", row["rss_increment_mib"],
                               "MiB", key=f"speed_rss_increment_mib_{k}",
                               note=f"peak {row['peak_rss_mib']:.0f} MiB, {row['imports_rss_mib']:.0f} "
                               "MiB after imports, own process" + _load_note(row)))
    for k, row in rows.items():
        figs.append(figure(SECTION, f"{row.get('label', k)}: latency (algorithmic delay)",
                           row["latency_ms"], "ms", key=f"speed_latency_ms_{k}", note=row["latency"]))
    details = {"clip_seconds": seconds, "rate": RATE, "clip": clip_source, "repeats": repeats,
               "methods": rows, "skipped": skipped,
               "latency_definition": "algorithmic delay: lookahead needed before an output sample "
               "can be emitted, compute time excluded; project models: frame_length / sample_rate "
               "(+ resampler lookahead), overlap-add needs the whole frame"}
    return figs, details


def _load_note(row: dict) -> str:
    """What the increment includes besides the run itself."""
    if row["kind"] == "model":
        return "; includes loading the model (inside enhance_file)"
    loaded = (row.get("child") or {}).get("loaded_hwm_mib")
    what = (f"after fitting on {row['fit_clips']} other clips" if "fit_clips" in row
            else "after loading the net")
    return f"; {what}: {loaded:.0f} MiB" if loaded is not None else ""


def markdown_table(details: dict) -> list[str]:
    """The speed section's compact per-method table for reports/benchmarks.md."""
    rows = details.get("methods") or {}
    if not rows:
        return []
    out = [f"## Speed against the anchors ({details['clip_seconds']:g} s at 16 kHz: {details['clip']})", "",
           "| method | RTF | target | load | peak RSS | after imports | increment | latency |",
           "|---|---|---|---|---|---|---|---|"]

    def mib(v: float | None) -> str:
        return "–" if v is None else f"{v:,.0f} MiB"

    for k, r in rows.items():
        tgt = "–" if r.get("target_rtf") is None else f">= {r['target_rtf']:g}x"
        out.append(f"| {r.get('label', k)} | {r['rtf']:.1f}x | {tgt} | {r.get('load_s', 0):.2f} s | "
                   f"{mib(r.get('peak_rss_mib'))} | {mib(r.get('imports_rss_mib'))} | "
                   f"{mib(r.get('rss_increment_mib'))} | {r['latency_ms']:,.1f} ms |")
    for k, why in (details.get("skipped") or {}).items():
        out.append(f"| {k} | skipped: {why} | | | | | | |")
    out += ["", "RTF: models end to end through `enhance_file` (file read, resampling, inference, "
            "write; model load in the *load* column, excluded); anchors on the array. Peak RSS: each "
            "method alone in a child process (VmHWM), after its imports and at the end. Latency: "
            + details.get("latency_definition", "") + "."]
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiments", nargs="*")
    ap.add_argument("--seconds", type=float, default=SECONDS)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--untrained", action="store_true", help="random weights for every model")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--child", nargs=4, metavar=("KIND", "TARGET", "SRC", "DST"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(child(*a.child)))
        return
    figs, details = run(a.experiments, a.seconds, a.repeats, use_trained=not a.untrained,
                        build_missing=a.untrained, memory=not a.no_memory)
    print_figures(figs)
    print("\n".join(markdown_table(details)))


if __name__ == "__main__":
    main()
