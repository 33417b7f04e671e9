"""Fast checks of the benchmark suite's helpers: targets, carried figures, report, FLOP counting."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.common import figure, fmt_value, paired_medians
from benchmarks.generate import floor, naive_numpy_scalars, naive_stdlib, pipeline_gen
from benchmarks.orchestration import KNOWN_FULL, carried
from benchmarks.suite import markdown


def test_figure_targets_both_directions():
    assert figure("s", "a", 600, "x", 500)["met"] is True
    assert figure("s", "a", 400, "x", 500)["met"] is False
    assert figure("s", "a", 4.0, "s", 5.0, "<=")["met"] is True
    assert figure("s", "a", 6.0, "s", 5.0, "<=")["met"] is False
    assert figure("s", "a", 6.0, "s")["met"] is None
    assert figure("s", "a", None, "s", 5.0)["met"] is None


def test_fmt_value_units():
    assert fmt_value(1178, "s") == "19 m 38.0 s"
    assert fmt_value(2.5, "s") == "2.50 s"
    assert fmt_value(187.4, "x") == "187x"
    assert fmt_value(3.2e9, "FLOP/s") == "3.20 GFLOP/s"
    assert fmt_value(None, "x") == "–"


def test_paired_medians_runs_each_side_per_repeat():
    calls = []
    med = paired_medians({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3)
    assert calls == ["a", "b"] * 3
    assert set(med) == {"a", "b"} and all(v >= 0 for v in med.values())


def test_generators_make_frames_of_the_same_shape():
    rng = np.random.default_rng(0)
    assert pipeline_gen(8, rng).shape == (8, 100)
    assert naive_numpy_scalars(2, rng).shape == (2, 100)
    assert np.shape(naive_stdlib(2, __import__("random").Random(0))) == (2, 100)
    assert [a.shape for a in floor(8, rng)] == [(8, 100), (8, 100)]


def test_carried_prefers_previous_report_and_marks_it():
    out = carried(None)
    assert {f["key"] for f in out} == set(KNOWN_FULL)
    assert all(f["measured_in_this_run"] is False and f["measured_on"] for f in out)
    prev = {"machine": {"date": "2027-01-02T00:00:00+00:00"},
            "figures": [figure("orchestration", "make test", 500, "s", 600, "<=", key="make_test_s")]}
    test = next(f for f in carried(prev) if f["key"] == "make_test_s")
    assert test["value"] == 500 and test["met"] is True and test["measured_on"].startswith("2027-01-02")
    # Carried again on the next run: keeps its own date, not the new run's.
    again = next(f for f in carried({"machine": {"date": "2027-02-01"}, "not_measured_in_this_run": [test]})
                 if f["key"] == "make_test_s")
    assert again["measured_on"].startswith("2027-01-02")
    # An older report's value loses to a newer measurement recorded in KNOWN_FULL.
    old = {"machine": {"date": "2026-01-01"},
           "figures": [figure("orchestration", "make test", 999, "s", 600, "<=", key="make_test_s")]}
    stale = next(f for f in carried(old) if f["key"] == "make_test_s")
    assert stale["value"] == KNOWN_FULL["make_test_s"]["value"]


def test_markdown_has_table_and_carried_section():
    figs = [figure("generation", "speedup", 187.0, "x", 500.0)]
    report = {"machine": {"date": "2026-11-29T09:00:00+00:00", "cores": 2, "cpu_model": "cpu",
                          "python": "3.11", "tensorflow": "2.21", "git_commit": "abc",
                          "loadavg_at_start": [0.1, 0.1, 0.1]},
              "command": "python -m benchmarks", "duration_s": 60.0, "settings": {"repeats": 3},
              "figures": figs, "not_measured_in_this_run": carried(None), "details": {}}
    md = markdown(report)
    assert "| generation | speedup | 187x | >= 500x | **no** |" in md
    assert "Not measured in this run" in md and "2026-11-29" in md


def test_count_flops_matches_hand_count():
    keras = pytest.importorskip("keras")
    from benchmarks.enhance import count_flops

    inp = keras.Input((None, 1))
    h = keras.layers.Conv1D(4, 3, strides=2, padding="same")(inp)
    out = keras.layers.Dense(2)(h)
    flops, rows = count_flops(keras.Model(inp, out), 16)
    # conv: 8 outputs x 3 taps x 1 in x 4 filters; dense: 8 positions x 4 in x 2 out; 2 FLOP per MAC
    assert flops == 2 * (8 * 3 * 1 * 4 + 8 * 4 * 2)
    assert [r["gemm_mkn"] for r in rows] == [(8, 3, 4), (8, 4, 2)]


# --------------------------------------------------------------------------- speed, limits


def test_speed_targets_per_experiment():
    from benchmarks.speed import target_rtf

    assert target_rtf("speech-denoise") == 20.0
    assert {target_rtf(e) for e in ("seed-noise", "seed-quantize", "audio-noise", "audio-bandwidth",
                                    "speech-bandwidth")} == {100.0}


def test_ola_model_latency_is_one_frame():
    """The stated delay (T / rate) bounds overlap-add's real lookahead, and is not loose by more
    than a sample: a model whose every output depends on its whole frame, fed impulses."""
    from benchmarks.speed import model_latency
    from pipeline.enhance import overlap_add

    T, rate = 64, 16000

    def whole_frame(frames):  # every output sample depends on every input sample of the frame
        return np.repeat(np.abs(frames).sum(axis=1, keepdims=True), frames.shape[1], axis=1)

    lookahead = []
    for p in range(200, 200 + T):
        x = np.zeros(600, np.float32)
        x[p] = 1.0
        y = overlap_add(x, whole_frame, T)
        lookahead.append(p - int(np.flatnonzero(np.abs(y) > 1e-9)[0]))
    assert T - 2 <= max(lookahead) <= T - 1
    ms, how = model_latency({"frame_length": T, "sample_rate": rate})
    assert ms == pytest.approx(1000 * T / rate) and "non-causal" in how


def test_model_latency_adds_the_resamplers_lookahead():
    """16 kHz input to a 1 kHz model: the two resample_poly filters add their real lookahead."""
    from benchmarks.speed import model_latency, resampler_lookahead_s
    from pipeline.io.audio import resample

    x = np.zeros(16000, np.float32)
    p = 8000
    x[p] = 1.0
    y = resample(resample(x, 16000, 1000), 1000, 16000)
    first = int(np.flatnonzero(y)[0])  # the filters' exact support (zeros stay exact zeros)
    assert resampler_lookahead_s(16000, 1000) * 16000 == pytest.approx(p - first, abs=1)
    assert resampler_lookahead_s(16000, 16000) == 0.0
    ms, how = model_latency({"frame_length": 100, "sample_rate": 1000})
    assert ms == pytest.approx(100 + 20) and "resampling" in how


def test_anchor_latency_from_facts(tmp_path):
    import json

    from benchmarks.speed import anchor_latency

    assert anchor_latency("deepfilternet3", tmp_path)[0] == pytest.approx(30.0)  # anchors.py: 1440/48k
    assert anchor_latency("rnnoise", tmp_path)[0] == pytest.approx(20.0)
    assert anchor_latency("wiener_dd", tmp_path)[0] == pytest.approx(64.0)
    rep = tmp_path / "reports" / "speech-denoise"
    rep.mkdir(parents=True)
    (rep / "anchors.json").write_text(json.dumps({"latency_ms": {"rnnoise": 21.5}}))
    ms, src = anchor_latency("rnnoise", tmp_path)
    assert ms == 21.5 and "anchors.json" in src


def test_speed_clip_is_the_same_length_without_data(tmp_path):
    from benchmarks.speed import test_clip

    x, source, fit = test_clip(2.0, root=tmp_path)
    assert x.shape == (32000,) and x.dtype == np.float32 and np.isfinite(x).all()
    assert "voiced_like" in source and fit and len(fit[0]) == 2
    x2, _, _ = test_clip(2.0, root=tmp_path)
    assert np.array_equal(x, x2)  # the same audio for every method and every run


def test_speed_memory_child_reports_peak_over_imports(tmp_path):
    """A real child process (the Wiener anchor on 1 s): VmHWM after imports <= after the run."""
    import soundfile as sf

    from benchmarks.speed import run_child, test_clip

    x, _, fit = test_clip(1.0, root=tmp_path)
    src, fit_npz = tmp_path / "in.wav", tmp_path / "fit.npz"
    sf.write(src, x, 16000, subtype="FLOAT")
    np.savez(fit_npz, clean=np.stack([c for c, _ in fit]), noisy=np.stack([n for _, n in fit]))
    mem = run_child("wiener_dd", fit_npz, src, tmp_path / "out.wav")
    assert 10 < mem["imports_hwm_mib"] <= mem["peak_hwm_mib"]
    assert sf.info(tmp_path / "out.wav").frames == len(x)


def test_speed_run_times_enhance_file_and_states_latency():
    """The section end to end on one tiny untrained model (no anchors, no memory child)."""
    pytest.importorskip("keras")
    from benchmarks.speed import run

    figs, details = run(["seed-noise"], seconds=2.0, repeats=1, use_trained=False,
                        build_missing=True, anchors=False, memory=False)
    by_key = {f["key"]: f for f in figs}
    rtf = by_key["speed_rtf_seed-noise"]
    assert rtf["target"] == 100.0 and rtf["value"] > 0 and rtf["met"] is not None
    assert by_key["speed_latency_ms_seed-noise"]["value"] == pytest.approx(120.0)
    row = details["methods"]["seed-noise"]
    assert row["load_s"] > 0 and len(row["runs_s"]) == 1

    # enhance_file refuses a 1 kHz model today; the row must say how it was timed instead
    assert "via" not in row  # the 1 kHz seed model goes through enhance_file itself


def test_limits_fractions_are_positive_and_bounded():
    pytest.importorskip("keras")
    from benchmarks.limits import TRAIN_FLOPS_PER_FORWARD, run

    figs, details = run(["seed-noise"], repeats=1, use_trained=False, seconds=2.0, min_timing_s=0.02)
    row = details["rows"]["seed-noise"]
    assert 0 < row["inference_fraction"] < 2 and 0 < row["train_fraction"] < 2
    assert row["train_batch_size"] == 64 and row["frame_length"] == 100  # params.yaml's seed-noise
    assert TRAIN_FLOPS_PER_FORWARD == 3.0
    assert row["train_flops_per_s"] == pytest.approx(
        3.0 * row["train_forward_flops_per_frame"] * row["train_samples_per_s"])
    assert {f["key"] for f in figs} == {"limits_inference_fraction_seed-noise",
                                        "limits_train_fraction_seed-noise",
                                        "limits_rtf_ceiling_seed-noise",
                                        "limits_matmul_peak_flops_per_s"}
    # 2 s at 1 kHz, hop 50: overlap_add's grid has 41 frames of 100 samples (OLAPlan.n_frames)
    from pipeline.enhance.ola import OLAPlan

    assert row["frames"] == OLAPlan(2000, 100).n_frames == 41
    assert row["flops_per_audio_s"] == pytest.approx(row["forward_flops_per_frame"] * 41 / 2.0)
    assert row["rtf_ceiling"] == pytest.approx(row["matmul_flops_per_s"] / row["flops_per_audio_s"])


def test_generation_target_is_the_floor_ratio():
    from benchmarks.generate import run

    figs, _ = run(frames=500, naive_frames=4, repeats=1, profile=False)
    by_key = {f["key"]: f for f in figs}
    assert by_key["gen_efficiency_vs_floor"]["target"] == 0.8
    assert by_key["gen_speedup_vs_numpy_scalar"]["target"] is None  # a reference row now


def test_markdown_speed_table():
    from benchmarks.speed import markdown_table

    details = {"clip_seconds": 60.0, "clip": "clip", "latency_definition": "delay",
               "methods": {"audio-noise": {"kind": "model", "rtf": 150.2, "target_rtf": 100.0,
                                           "load_s": 1.5, "peak_rss_mib": 700.0,
                                           "imports_rss_mib": 600.0, "rss_increment_mib": 100.0,
                                           "latency_ms": 64.0},
                           "rnnoise": {"kind": "anchor", "label": "RNNoise", "rtf": 15.0,
                                       "target_rtf": None, "load_s": 0.01, "latency_ms": 20.0}},
               "skipped": {"speech-denoise": "model.keras missing"}}
    md = "\n".join(markdown_table(details))
    assert "| audio-noise | 150.2x | >= 100x | 1.50 s | 700 MiB | 600 MiB | 100 MiB | 64.0 ms |" in md
    assert "| RNNoise | 15.0x | – |" in md and "skipped: model.keras missing" in md


def test_report_markdown_includes_the_speed_table():
    from benchmarks.suite import SECTIONS

    assert {"speed", "limits"} <= set(SECTIONS)
    speed = {"clip_seconds": 60.0, "seconds": 34.0, "clip": "clip",  # seconds: the suite's lap
             "latency_definition": "delay", "skipped": {},
             "methods": {"rnnoise": {"kind": "anchor", "label": "RNNoise", "rtf": 15.0,
                                     "target_rtf": None, "load_s": 0.01, "latency_ms": 20.0}}}
    report = {"machine": {"date": "2026-12-02T09:00:00+00:00", "cores": 2, "cpu_model": "cpu",
                          "python": "3.11", "tensorflow": "2.21", "git_commit": "abc",
                          "loadavg_at_start": [0.1, 0.1, 0.1]},
              "command": "python -m benchmarks", "duration_s": 60.0, "settings": {"repeats": 3},
              "figures": [figure("speed", "RNNoise: RTF, same 60 s", 15.0, "x", key="speed_rtf_rnnoise")],
              "not_measured_in_this_run": [], "details": {"speed": speed}}
    md = markdown(report)
    assert "## Speed against the anchors (60 s at 16 kHz: clip)" in md and "| RNNoise | 15.0x |" in md


def test_bandwidth_bounds_split_the_error_by_band():
    from benchmarks.bandwidth_bounds import band_edges, report

    n = np.arange(1024)
    low = np.sin(2 * np.pi * 32 * n / 1024)  # 500 Hz at 16 kHz, on a DFT bin
    clean = np.stack([low + 0.5 * np.sin(2 * np.pi * 192 * n / 1024 + k) for k in range(3)])  # + 3 kHz
    degraded = np.stack([low] * 3)  # the kept band exactly, nothing above
    lines = report(clean, degraded, 16000, 4, estimate=clean.copy())
    assert any("2000 Hz: gain +0.00 dB" in s for s in lines)  # the band-limited copy is the input
    share = {s.split(":")[0].strip(): s for s in lines if "of the spline's error" in s}
    assert "1.000 of the spline's error; model error / spline error 0.000" in share["2000- 4000 Hz"]
    assert band_edges(16000, 4) == [(0.0, 1600.0), (1600.0, 2000.0), (2000.0, 4000.0), (4000.0, 8001)]


def test_excitation_coherence_finds_phase_locked_harmonics():
    from benchmarks.bandwidth_bounds import excitation_coherence

    n = np.arange(8192)
    arg = 2 * np.pi * np.array([1550.0, 1650, 1750, 1850])[:, None] * n / 16000 + np.arange(4)[:, None]
    locked = np.cos(arg) + 0.3 * np.cos(2 * arg)  # a second harmonic at 3.1-3.7 kHz, in phase
    rows = excitation_coherence(locked, 16000, 4)
    lo, hi, own, other = rows[-1]
    assert (lo, hi) == (3000.0, 4000.0)
    assert own > 0.99 and other < 0.1  # another frame's harmonic is 200 Hz away


def test_oracle_hints_carry_one_half_of_the_missing_band():
    from benchmarks.bandwidth_hints import oracle_hint

    n = np.arange(8192)
    high = np.sin(2 * np.pi * 3000 * n / 16000)  # above the 2 kHz cut, on an STFT bin
    clean = np.stack([a * high + np.sin(2 * np.pi * 500 * n / 16000) for a in (1.0, 0.25)])
    rng = np.random.default_rng(0)
    inner = slice(512, -512)  # away from the STFT's frame-edge windows

    def corr(a, b):
        return float(np.dot(a[inner], b[inner]) / np.linalg.norm(a[inner]) / np.linalg.norm(b[inner]))

    phase = oracle_hint(clean, "phase", 16000, 2000.0, rng)
    assert corr(phase[0], high) > 0.99  # the true phase; the 500 Hz part is gone
    magnitude = oracle_hint(clean, "magnitude", 16000, 2000.0, rng)
    spectrum = np.abs(np.fft.rfft(magnitude[0]))
    assert abs(np.argmax(spectrum) * 16000 / 8192 - 3000) < 100  # the energy where it belongs
    assert abs(corr(magnitude[0], high)) < 0.3  # but not in phase
    rms = np.sqrt(np.mean(magnitude[:, inner] ** 2, axis=1))
    assert rms[0] / rms[1] == pytest.approx(4.0, rel=0.1)  # the envelope, up to one factor
    assert not oracle_hint(clean, "none", 16000, 2000.0, rng).any()
    with pytest.raises(ValueError, match="hint must be one of"):
        oracle_hint(clean, "both", 16000, 2000.0, rng)
