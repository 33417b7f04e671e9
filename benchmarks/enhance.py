"""Inference: `enhance` real-time factor, peak memory, model FLOPs and how close to the CPU's limit.

Real-time factor (RTF) = seconds of audio / seconds of processing, medians of --repeats on 60 s of
16 kHz audio. The model is models/<experiment> when it is trained and matches the architecture
train would build now; otherwise the same architecture is built from params.yaml (plus
reports/<experiment>/best_params.yaml, as train does) with random weights, since neither speed
nor FLOPs depend on the weights. The report says which one was used.

FLOPs are counted analytically: 2 x multiply-accumulates of every Conv1D/Dense at the layer output
lengths of a real forward pass, plus 2.5 n log2 n per real FFT of size n in STFT layers; other
element-wise ops are ignored, so this is a slight lower bound.
The achieved FLOP/s of the model alone is compared with tf.linalg.matmul on this CPU: a matmul of
the model's largest convolution written as one GEMM (im2col), and a large square one (the
machine's practical peak).

    python -m benchmarks.enhance [--experiment audio-noise] [--repeats 3] [--long-seconds 600]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from benchmarks.common import (  # noqa: E402
    ROOT,
    Figure,
    figure,
    log,
    paired_medians,
    print_figures,
    profile_top,
)
from pipeline.config import HarmonicSignal, load_params  # noqa: E402

SECTION = "inference"
TARGET_RTF = 100.0  # below it, the timed part of enhance_file is profiled (targets: benchmarks/speed.py)
SECONDS = 60.0


def audio(seconds: float, rate: int = 16000) -> np.ndarray:
    """Audio-like test signal: frames of the harmonic family laid end to end, plus noise."""
    from pipeline.dsp.signals import harmonic

    T = 4096
    n = int(np.ceil(seconds * rate / T))
    x, _ = harmonic(HarmonicSignal(), n, T, rate, np.random.default_rng(0))
    x = x.reshape(-1)[: int(seconds * rate)]
    return (x + 0.01 * np.random.default_rng(1).standard_normal(len(x))).astype(np.float32)


def model_folder(experiment: str, workdir: Path, params_path: str = "params.yaml",
                 use_trained: bool = True) -> tuple[Path, str]:
    """The model folder to benchmark and a one-line description of where it came from."""
    from pipeline.config import resolve

    params = load_params(params_path)
    exp = params.experiment(experiment)
    model_cfg = resolve(params, experiment, ROOT, tuned=True).model  # what train would build
    want = model_cfg.model_dump(mode="json")
    trained = ROOT / "models" / experiment
    if use_trained and (trained / "model.keras").is_file():
        try:
            meta = json.loads((trained / "meta.json").read_text())
        except (OSError, json.JSONDecodeError):
            meta = {}
        have = meta.get("model") or {}
        # Keys added to the schema since training (with their defaults) do not change the net.
        same = bool(have) and all(want.get(k, v) == v for k, v in have.items())
        if same and meta.get("frame_length") == exp.frame_length:
            return trained, f"trained models/{experiment}"
        why = "its architecture differs from what train would build now"
    else:
        why = "no trained model.keras (DVC-cached, not in git)" if use_trained else "--untrained"
    from pipeline.nn.architectures import build_model

    folder = workdir / experiment
    folder.mkdir(parents=True, exist_ok=True)
    # Random weights; a prefilter gets a unit impulse (its cost does not depend on its taps).
    pf = getattr(model_cfg, "prefilter", None)  # unet only
    n_taps = pf.taps if pf is not None else 0
    taps = np.eye(1, n_taps, n_taps // 2)[0] if n_taps else None
    build_model(model_cfg, exp.frame_length, prefilter=taps).save(folder / "model.keras")
    meta = {"experiment": experiment, "task": exp.task, "sample_rate": exp.sample_rate,
            "frame_length": exp.frame_length, "arch": model_cfg.arch, "model": want,
            "note": "random weights, built by benchmarks/enhance.py"}
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))
    return folder, f"untrained {model_cfg.arch} from params.yaml ({why})"


def _fir_flops(taps: int, T: int) -> float:
    """FixedFIR on one frame: direct below FFT_MIN_TAPS, else two real FFTs, a complex product
    and an inverse real FFT of the power of two that holds the odd-extended frame."""
    from pipeline.nn.layers import FFT_MIN_TAPS

    if taps < FFT_MIN_TAPS:
        return 2.0 * taps * T
    n = 1 << int(np.ceil(np.log2(T + taps - 1)))
    return 3 * 2.5 * n * np.log2(n) + 6 * (n // 2 + 1)


def count_flops(model, T: int) -> tuple[float, list[dict]]:
    """FLOPs of one (1, T, 1) frame: 2 x MACs of each Conv1D/Dense at its real output length,
    plus the prefilter FIR and the STFTs."""
    import keras

    from pipeline.nn.layers import FixedFIR

    layers = [la for la in model.layers if isinstance(la, keras.layers.Conv1D | keras.layers.Dense)]
    probe = keras.Model(model.inputs, [la.output for la in layers])
    outs = probe([np.zeros((1, T, 1), np.float32)], training=False)
    outs = outs if isinstance(outs, list | tuple) else [outs]
    rows, total = [], 0.0
    for la, out in zip(layers, outs, strict=True):
        positions = int(np.prod(out.shape[1:-1]))
        cin = int(la.input.shape[-1])
        if isinstance(la, keras.layers.Conv1D):
            k = int(la.kernel_size[0])
            macs = positions * k * (cin // la.groups) * la.filters
            gemm = (positions, k * cin, la.filters)
        else:
            macs = positions * cin * la.units
            gemm = (positions, cin, la.units)
        total += 2.0 * macs
        rows.append({"layer": la.name, "flops": 2.0 * macs, "gemm_mkn": gemm})
    for la in model.layers:  # the U-Net's prefilter
        if isinstance(la, FixedFIR) and len(la.taps) > 1:  # one tap: a scale, not counted
            flops = _fir_flops(len(la.taps), T)
            total += flops
            rows.append({"layer": la.name, "flops": flops, "gemm_mkn": None})
    for la in model.layers:  # STFT / inverse STFT layers (pipeline.nn.layers.Spectrogram, MaskedISTFT)
        n_fft = getattr(la, "n_fft", None)
        if not n_fft:
            continue
        hop = n_fft // 4
        t_pad = -(-T // hop) * hop
        frames = (t_pad + 2 * (n_fft - hop) - n_fft) // hop + 1
        flops = frames * (2.5 * n_fft * np.log2(n_fft) + 2 * n_fft)  # real FFT + window/mask
        total += flops
        rows.append({"layer": la.name, "flops": float(flops), "gemm_mkn": None})
    return total, rows


def matmul_timer(m: int, k: int, n: int):
    """(fn, flops): `fn()` runs tf.linalg.matmul (m, k) x (k, n) in float32 enough times for
    about 0.2 GFLOP (traced and warmed up here), `flops` is the work of one `fn()` call.

    A callable rather than a number, so a caller can time it interleaved with its own work
    (paired medians under the same load)."""
    import tensorflow as tf

    a = tf.random.normal((m, k))
    b = tf.random.normal((k, n))
    mm = tf.function(lambda a, b: tf.reduce_sum(tf.linalg.matmul(a, b)))
    mm(a, b).numpy()
    inner = max(1, int(2e8 // (2 * m * k * n)) + 1)  # ~0.2 GFLOP per timing, enough to time

    def go():
        for _ in range(inner):
            mm(a, b).numpy()

    return go, 2.0 * m * k * n * inner


def matmul_flops_per_s(m: int, k: int, n: int, repeats: int) -> float:
    """Achieved FLOP/s of tf.linalg.matmul (m, k) x (k, n) in float32, median of repeats."""
    go, flops = matmul_timer(m, k, n)
    sec = paired_medians({"mm": go}, repeats)["mm"]
    return flops / sec


def peak_rss_child(model: Path, seconds: float) -> tuple[float, float]:
    """(peak RSS MiB enhancing a `seconds` file, peak RSS MiB after only loading the model).

    Each in a fresh process, read from /proc/self/status VmHWM (falls back to ru_maxrss).
    """
    from pipeline.io.audio import write_audio_atomic

    hwm = ("def hwm():\n import resource\n try:\n  return [int(l.split()[1])/1024 for l in "
           "open('/proc/self/status') if l.startswith('VmHWM')][0]\n except Exception:\n"
           "  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024\n")
    run = hwm + ("import sys\nfrom pipeline.enhance import enhance_file\n"
                 "enhance_file(sys.argv[1], sys.argv[2], sys.argv[3], show_progress=False)\n"
                 "print(hwm())\n")
    load = hwm + ("import sys\nfrom pipeline.enhance import load_model_dir\n"
                  "p, m = load_model_dir(sys.argv[1])\nimport numpy as np\n"
                  "p(np.zeros((4, m['frame_length']), np.float32))\nprint(hwm())\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "long.wav"
        write_audio_atomic(src, audio(seconds)[:, None], 16000)
        out = subprocess.run([sys.executable, "-c", run, str(model), str(src), str(Path(d) / "o.wav")],
                             capture_output=True, text=True, check=True, env=env)
        base = subprocess.run([sys.executable, "-c", load, str(model)], capture_output=True,
                              text=True, check=True, env=env)
    return float(out.stdout.split()[-1]), float(base.stdout.split()[-1])


def run(experiment: str = "audio-noise", repeats: int = 3, long_seconds: float = 600.0,
        use_trained: bool = True, profile: bool = True,
        params_path: str = "params.yaml") -> tuple[list[Figure], dict]:
    from pipeline.enhance import enhance_file, load_model_dir, naive_frames, overlap_add
    from pipeline.io.audio import write_audio_atomic

    with tempfile.TemporaryDirectory(prefix="bench-model-") as tmp:
        folder, source = model_folder(experiment, Path(tmp), params_path, use_trained)
        log(f"enhance: {source}")
        predict, meta = load_model_dir(folder)
        T, rate = int(meta["frame_length"]), int(meta["sample_rate"])
        hop = T // 2
        x = audio(SECONDS, rate)
        # The frames overlap_add feeds the model, prepared once: timing `predict` on them alone
        # separates the model's time from the overlap-add bookkeeping around it.
        n_frames = (T - hop + len(x) - 1) // hop + 1
        frames = np.resize(x, (n_frames, T))
        overlap_add(x[: 10 * T], predict, T)  # trace the tf.function for full and partial batches
        naive_frames(x[: 10 * T], predict, T)
        predict(frames)
        med = paired_medians({
            "overlap_add": lambda: overlap_add(x, predict, T),
            "model_only": lambda: predict(frames),
            "naive": lambda: naive_frames(x, predict, T),
        }, repeats)
        with tempfile.TemporaryDirectory() as d:
            src, dst = Path(d) / "in.wav", Path(d) / "out.wav"
            write_audio_atomic(src, x[:, None], rate)
            stats = [enhance_file(folder, src, dst, show_progress=False) for _ in range(max(1, repeats))]
        e2e = [s["realtime_factor"] for s in stats]
        rtf_file = float(np.median(e2e))
        rtf_cli = float(np.median([s["seconds"] / (s["elapsed_s"] + s["load_s"]) for s in stats]))
        load_s = float(np.median([s["load_s"] for s in stats]))
        rtf_ola = SECONDS / med["overlap_add"]

        import keras

        model = keras.models.load_model(folder / "model.keras", safe_mode=True, compile=False)
        flops_frame, layers = count_flops(model, T)
        flops_per_audio_s = flops_frame * n_frames / SECONDS  # as run: hop T/2, ~2 frames per T
        achieved = flops_frame * n_frames / med["model_only"]
        big = max((r for r in layers if r["gemm_mkn"]), key=lambda r: r["flops"])
        m, k, n = big["gemm_mkn"]
        mm_same = matmul_flops_per_s(m * 256, k, n, repeats)  # one predict batch of 256 frames
        mm_peak = matmul_flops_per_s(1024, 1024, 1024, repeats)
        log(f"enhance: RTF {rtf_file:.1f}x end to end; measuring peak RSS on {long_seconds:.0f} s")
        peak, base = peak_rss_child(folder, long_seconds)
        prof = None
        if profile and rtf_file < TARGET_RTF:  # where enhance_file's timed part goes (no load)
            from pipeline.enhance import enhance_signal
            from pipeline.io.audio import read_audio

            def timed_part(src: Path, dst: Path) -> None:
                y, r, _ = read_audio(src)
                write_audio_atomic(dst, enhance_signal(y, r, predict, meta), r)

            with tempfile.TemporaryDirectory() as d:
                src = Path(d) / "in.wav"
                write_audio_atomic(src, x[:, None], rate)
                prof = profile_top(lambda: timed_part(src, Path(d) / "o.wav"), 10)

    figs = [
        figure(SECTION, "enhance RTF, 60 s at 16 kHz, end to end", rtf_file, "x",
               key="rtf_enhance_file", note="file read + resample + overlap-add + write; "
               f"the breakdown of {experiment}: its target is in section speed"),
        figure(SECTION, "enhance RTF incl. model load and trace (one CLI call)", rtf_cli, "x",
               key="rtf_enhance_cli", note=f"model load {load_s:.1f} s"),
        figure(SECTION, "overlap-add RTF (model + windowing)", rtf_ola, "x", key="rtf_overlap_add"),
        figure(SECTION, "model-only RTF (same frames, no overlap-add)", SECONDS / med["model_only"],
               "x", key="rtf_model_only", note="upper bound for overlap-add at hop T/2"),
        figure(SECTION, "naive concatenation RTF (seamed)", SECONDS / med["naive"], "x",
               key="rtf_naive"),
        figure(SECTION, "share of overlap-add time spent in the model",
               med["model_only"] / med["overlap_add"], "ratio", key="model_time_share"),
        figure(SECTION, f"peak RSS, {long_seconds / 60:g}-minute file", peak, "MiB",
               key="peak_rss_mib_long"),
        figure(SECTION, "peak RSS after loading the model only", base, "MiB", key="rss_mib_model_loaded"),
        figure(SECTION, "model FLOPs per second of audio (hop T/2)", flops_per_audio_s, "FLOP",
               key="flops_per_audio_s", note="FLOP per audio second"),
        figure(SECTION, "model achieved FLOP/s", achieved, "FLOP/s", key="model_flops_per_s"),
        figure(SECTION, "model FLOP/s vs matmul of its largest conv", achieved / mm_same, "ratio",
               key="model_vs_matmul_same_shape"),
        figure(SECTION, "model FLOP/s vs 1024^3 matmul (machine peak)", achieved / mm_peak, "ratio",
               key="model_vs_matmul_peak"),
        figure(SECTION, "matmul 1024^3 FLOP/s", mm_peak, "FLOP/s", key="matmul_peak_flops_per_s"),
        figure(SECTION, "RTF ceiling: matmul peak / model FLOPs per audio second",
               mm_peak / flops_per_audio_s, "x", key="rtf_ceiling_at_peak",
               note="no implementation of this model can beat it on this CPU"),
    ]
    details = {
        "model": source, "model_meta": {k: meta.get(k) for k in ("experiment", "arch", "frame_length",
                                                                 "sample_rate", "model")},
        "params": int(model.count_params()), "frame_length": T, "hop": hop, "frames_per_60s": n_frames,
        "flops_per_frame": flops_frame, "layers": layers, "median_s": med, "rtf_enhance_file_runs": e2e,
        "matmul_same_shape": {"mkn": [m * 256, k, n], "flops_per_s": mm_same},
        "long_seconds": long_seconds, "repeats": repeats,
    }
    if prof:
        details["profile_enhance_file"] = prof
    return figs, details


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default="audio-noise")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--long-seconds", type=float, default=600)
    ap.add_argument("--untrained", action="store_true", help="ignore models/<experiment>")
    a = ap.parse_args()
    figs, details = run(a.experiment, a.repeats, a.long_seconds, not a.untrained)
    print(f"model: {details['model']}; {details['params']:,} params, "
          f"{details['flops_per_frame'] / 1e6:.1f} MFLOP per {details['frame_length']}-sample frame")
    print_figures(figs)
    for row in details.get("profile_enhance_file", []):
        print(f"  {row['share']:>6.1%}  {row['tottime_s']:8.4f}s  {row['function']}")


if __name__ == "__main__":
    main()
