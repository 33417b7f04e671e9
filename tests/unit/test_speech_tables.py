"""Speech tables: 5 dB buckets, gains over the input, the headline's mean of kinds of bucket
means, the anchors' join, LSD's direction, and the `metrics` params key."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config import Experiment, ParamsError, parse_params
from pipeline.dsp.metrics import SPEECH_SNR_CENTRES, lsd, speech_snr_bucket
from pipeline.evaluation.speech import anchor_tables, conditions, frame_scores, perceptual_scores
from pipeline.evaluation.speech_tables import (
    HEADLINE_RULE,
    PLAIN_RULE,
    headline_numbers,
    join_anchors,
    speech_tables,
)


# ----------------------------------------------------------------------------- buckets
@given(st.floats(-7.5, 22.4999, allow_nan=False))
def test_every_snr_in_range_lands_in_the_bucket_around_it(x):
    c = float(speech_snr_bucket(x))
    assert c in SPEECH_SNR_CENTRES
    assert c - 2.5 <= x < c + 2.5


@given(st.one_of(st.floats(max_value=-7.5001, allow_nan=False, allow_infinity=True),
                 st.floats(min_value=22.5, allow_nan=False, allow_infinity=True)))
def test_snr_outside_the_buckets_has_none(x):
    assert np.isnan(speech_snr_bucket(x))


def test_bucket_edges_are_left_closed():
    got = speech_snr_bucket([-7.5, -2.5, 2.5, 7.5, 12.5, 17.5, 22.5, np.nan])
    np.testing.assert_array_equal(got, [-5, 0, 5, 10, 15, 20, np.nan, np.nan])


# ----------------------------------------------------------------------------- tables
def _cond(kinds, buckets):
    return pd.DataFrame({"index": np.arange(len(kinds)), "noise_kind": kinds,
                         "snr_bucket_db": np.asarray(buckets, dtype=float)})


def _scores(values: dict[str, list[float]], col="si_sdr_db"):
    return pd.concat([pd.DataFrame({"index": np.arange(len(v)), "method": m, col: v})
                      for m, v in values.items()], ignore_index=True)


def test_headline_is_the_mean_over_kinds_of_the_bucket_means():
    # kind a: bucket 0 has frames 1, 3 (mean 2), bucket 5 has 10 -> kind mean 6
    # kind b: bucket 10 has 4 -> 4; the 15 dB frame (100) and the -5 dB one (-50) are outside
    cond = _cond(["a", "a", "a", "b", "b", "b"], [0, 0, 5, 10, 15, -5])
    model = [1.0, 3.0, 10.0, 4.0, 100.0, -50.0]
    t = speech_tables(_scores({"input": [0.0] * 6, "model": model}), cond)
    h = t.headline.set_index("method")
    assert t.rule == HEADLINE_RULE
    assert h.at["model", "si_sdr_db"] == pytest.approx((6.0 + 4.0) / 2)
    assert h.at["model", "si_sdr_db_gain"] == pytest.approx(5.0)
    assert h.at["model", "n"] == 4
    assert list(h.index) == ["input", "model"]


def test_plain_headline_is_the_frame_mean_and_tables_group_by_kind_and_bucket():
    cond = _cond(["a", "b", "b"], [0, 0, np.nan])
    t = speech_tables(_scores({"model": [1.0, 2.0, 6.0], "input": [1.0, 1.0, 1.0]}), cond,
                      headline_buckets=None)
    assert t.rule == PLAIN_RULE
    h = t.headline.set_index("method")
    assert h.at["model", "si_sdr_db"] == pytest.approx(3.0)
    k = t.by_kind.set_index(["noise_kind", "method"])
    assert k.loc[("b", "model"), "si_sdr_db_gain"] == pytest.approx(3.0)
    assert k.loc[("b", "model"), "n"] == 2
    b = t.by_snr  # the frame without a bucket is left out of the bucket table only
    assert set(b["snr_bucket_db"]) == {0.0} and b["n"].max() == 2
    assert list(t.by_kind["method"][:2]) == ["input", "model"]  # input first


def test_lsd_gain_is_positive_when_lsd_drops():
    rng = np.random.default_rng(0)
    clean = rng.standard_normal((4, 2048))
    noisy = clean + 0.3 * rng.standard_normal(clean.shape)
    better = clean + 0.03 * rng.standard_normal(clean.shape)
    assert np.all(lsd(better, clean, 256) < lsd(noisy, clean, 256))  # lower is better
    frames = frame_scores({"input": noisy, "model": better}, clean, 16000, ["lsd"], 256)
    t = speech_tables(frames, _cond(["all"] * 4, [0, 5, 10, 10]))
    h = t.headline.set_index("method")
    assert h.at["model", "lsd"] < h.at["input", "lsd"]
    assert h.at["model", "lsd_gain"] > 0
    nums = headline_numbers(t, best="input")
    assert nums["speech.model_minus_best_classical.lsd"] > 0  # positive: the model is better


def test_the_headline_per_package_applies_the_same_rule_within_each_source():
    cond = _cond(["hum", "hum", "babble", "babble"], [0, 5, 0, 10]).assign(
        package=["a", "b", "a", "b"])
    t = speech_tables(_scores({"input": [0.0, 2.0, 4.0, 6.0], "model": [1.0, 4.0, 7.0, 10.0]}),
                      cond)
    pk = t.by_package.set_index(["package", "method"])
    assert pk.loc[("a", "model"), "si_sdr_db"] == pytest.approx((1.0 + 7.0) / 2)
    assert pk.loc[("b", "model"), "si_sdr_db_gain"] == pytest.approx((2.0 + 4.0) / 2)


def test_anchors_join_our_tables_with_gains_over_our_input():
    cond = _cond(["hum", "hum", "babble"], [0, 5, 10])
    ours = _scores({"input": [0.0, 2.0, 4.0], "model": [5.0, 7.0, 9.0]})
    anchors = pd.DataFrame({"index": [0, 1, 2], "method": "deepfilternet3",
                            "si_sdr_db": [10.0, 12.0, 14.0], "snr_db": [1.0, 1.0, 1.0],
                            "pesq": [3.0, 3.0, 3.0], "stoi": [0.9, 0.9, 0.9],
                            "rtf": [0.1, 0.1, 0.1]})
    t = join_anchors(ours, cond, anchors)
    h = t.headline.set_index("method")
    assert list(h.index) == ["input", "model", "deepfilternet3"]
    assert h.at["deepfilternet3", "si_sdr_db_gain"] == pytest.approx(10.0)
    assert h.at["deepfilternet3", "rtf"] == pytest.approx(0.1)
    assert np.isnan(h.at["model", "pesq"])  # we did not score pesq; the anchor did
    # the anchors' own input rows and a method we evaluated ourselves keep our rows only
    again = join_anchors(ours, cond, pd.concat([anchors, anchors.assign(method="noisy"),
                                                 anchors.assign(method="model")]))
    pd.testing.assert_frame_equal(again.headline, t.headline)


def test_anchor_tables_take_the_manifest_and_ignore_other_splits():
    manifest = pd.DataFrame({"split": ["test", "test", "train"], "index": [1, 0, 0],
                             "noise_kind": ["music", "white", "white"],
                             "snr_db": [9.0, -1.0, 30.0], "input_snr_db": [8.0, -2.0, 30.0]})
    anchors = pd.DataFrame({"index": [0, 1], "method": "rnnoise", "si_sdr_db": [3.0, 5.0]})
    t = anchor_tables(anchors, manifest)
    k = t.by_kind.set_index("noise_kind")
    assert k.at["white", "si_sdr_db"] == 3.0 and k.at["music", "si_sdr_db"] == 5.0
    assert sorted(t.by_snr["snr_bucket_db"]) == [0.0, 10.0]  # bucketed by the drawn snr_db
    assert np.isnan(t.headline["si_sdr_db_gain"]).all()  # no input rows: no gains


def test_conditions_fall_back_to_the_measured_input_snr():
    cond = conditions(None, np.array([-4.0, 7.0]))
    assert list(cond["noise_kind"]) == ["all", "all"]
    np.testing.assert_array_equal(cond["snr_bucket_db"], [-5.0, 5.0])
    with pytest.raises(ValueError, match="test rows"):
        conditions(pd.DataFrame({"index": [0]}), np.zeros(2))


@settings(max_examples=20, deadline=None)
@given(st.lists(st.floats(-20, 20), min_size=1, max_size=12), st.integers(0, 3))
def test_headline_with_one_kind_and_bucket_is_the_plain_mean(values, which):
    bucket = (0.0, 5.0, 10.0, 15.0)[which]
    cond = _cond(["k"] * len(values), [bucket] * len(values))
    t = speech_tables(_scores({"model": values}), cond)
    h = t.headline.set_index("method")
    if bucket == 15.0:
        assert "model" not in h.index  # outside the headline's buckets
    else:
        assert h.at["model", "si_sdr_db"] == pytest.approx(np.mean(values))


# ----------------------------------------------------------------------------- perceptual
def test_perceptual_scores_keep_order_in_and_out_of_process(monkeypatch):
    import pipeline.evaluation.speech as S
    from benchmarks.anchors import voiced_like

    rng = np.random.default_rng(1)
    clean = [voiced_like(1.0, seed=i) for i in range(4)]
    noisy = [c + s * np.std(c) * rng.standard_normal(len(c))
             for c, s in zip(clean, (0.03, 0.3, 1.0, 3.0), strict=True)]
    one = perceptual_scores(noisy, clean, 16000, ["pesq", "stoi"], workers=1)
    assert np.all(np.diff(one["stoi"]) < 0) and one["pesq"][0] > one["pesq"][-1] + 1
    monkeypatch.setattr(S, "MIN_PARALLEL", 0)
    monkeypatch.setattr(S, "CHUNK", 1)
    two = perceptual_scores(noisy, clean, 16000, ["pesq", "stoi"], workers=2)
    for k in one:
        np.testing.assert_array_equal(one[k], two[k])


# ----------------------------------------------------------------------------- params
def _exp(**kw):
    base = {"sample_rate": 16000, "frame_length": 1024,
            "sizes": {"train": 1, "val": 1, "test": 1}, "signal": {"family": "harmonic"},
            "degradation": {"kind": "noise", "snr_db": [0.0, 10.0]}}
    return {**base, **kw}


def test_metrics_default_is_snr_and_si_sdr_and_bad_values_name_the_key():
    assert Experiment.model_validate(_exp()).metrics == ["snr", "si_sdr"]
    raw = {"base": {"seed": 1}, "experiments": {"e": _exp(metrics=["snr", "mos"])}}
    with pytest.raises(ParamsError, match=r"experiments\.e\.metrics"):
        parse_params(raw)
    for bad, msg in ((["pesq", "pesq"], "listed twice"), ([], "at least one")):
        with pytest.raises(ParamsError, match=msg):
            parse_params({"base": {"seed": 1}, "experiments": {"e": _exp(metrics=bad)}})
    low = _exp(sample_rate=1000, frame_length=100, metrics=["stoi"])
    with pytest.raises(ParamsError, match="metrics: stoi need speech audio"):
        parse_params({"base": {"seed": 1}, "experiments": {"e": low}})


def test_one_listening_frame_per_kind_nearest_5_db_first_of_equals():
    from pipeline.evaluation.listening import kind_example_frames

    kinds = np.array(["hum", "babble", "hum", "hum", "babble", "white"])
    buckets = np.array([0.0, np.nan, 5.0, 5.0, 10.0, np.nan])
    assert kind_example_frames(kinds, buckets) == {"babble": 4, "hum": 2, "white": 5}
