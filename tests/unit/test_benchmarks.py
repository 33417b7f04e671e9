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
