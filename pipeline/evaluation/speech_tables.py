"""The speech tables over per-frame scores: per noise kind, per 5 dB input-SNR bucket, and the
headline; pure pandas, so the report builds them too (joining the anchors' rows) without the
scoring code. See :mod:`pipeline.evaluation.speech` for what the numbers mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

COLUMNS = {"snr": "snr_db", "si_sdr": "si_sdr_db", "pesq": "pesq", "stoi": "stoi", "lsd": "lsd"}
LOWER_IS_BETTER = frozenset({"lsd"})
EXTRA = ("rtf",)  # anchors' real-time factor: averaged, no gain
INPUT = "input"  # the degraded input as a method (the `identity` baseline's figures)
ALL_KINDS = "all"  # noise_kind of every frame when the manifest has no such column
HEADLINE_BUCKETS = (0.0, 5.0, 10.0)
HEADLINE_RULE = "mean over noise kinds of the mean over the 0/5/10 dB input-SNR buckets"
PLAIN_RULE = "mean over test frames"
CONDITION_COLUMNS = ("index", "noise_kind", "snr_bucket_db", "package")
ALL_SOURCES = "all"  # package of every frame when the manifest has no such column


@dataclass(frozen=True)
class SpeechTables:
    by_kind: pd.DataFrame  # noise_kind, method, n, <metric>..., <metric>_gain...
    by_snr: pd.DataFrame  # snr_bucket_db, method, n, ...
    headline: pd.DataFrame  # method, n, ... (rule: HEADLINE_RULE or PLAIN_RULE)
    rule: str
    # package, method, n, ...: the headline rule within each source of the test speech (the
    # corpus' game voices are processed recordings, its spoken letters studio speech)
    by_package: pd.DataFrame | None = None


# ----------------------------------------------------------------------------- tables
def _metric_columns(scores: pd.DataFrame) -> list[str]:
    return [c for c in COLUMNS.values() if c in scores]


def _with_gains(scores: pd.DataFrame) -> pd.DataFrame:
    """`scores` plus <metric>_gain: the method minus the input on the same frame (NaN when
    the input's figure is missing), signed so that positive is better."""
    cols = _metric_columns(scores)
    base = scores[scores["method"] == INPUT].set_index("index")[cols]
    if base.index.has_duplicates:
        raise ValueError(f"method `{INPUT}` has more than one row per frame index")
    out = scores.copy()
    for c in cols:
        sign = -1.0 if c in LOWER_IS_BETTER else 1.0
        out[f"{c}_gain"] = sign * (out[c].to_numpy(np.float64)
                                   - out["index"].map(base[c]).to_numpy(np.float64))
    return out


def _value_columns(t: pd.DataFrame) -> list[str]:
    cols = _metric_columns(t)
    return cols + [f"{c}_gain" for c in cols] + [c for c in EXTRA if c in t]


def _grouped(t: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    vals = _value_columns(t)
    g = t.groupby(keys, sort=True, observed=True)
    out = g[vals].mean()
    out.insert(0, "n", g.size())
    return out.reset_index()


def _ordered(t: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """Methods as a categorical in first-appearance order (input first), so groups sort so."""
    t = t.copy()
    t["method"] = pd.Categorical(t["method"], categories=order, ordered=True)
    return t


def _unordered(t: pd.DataFrame) -> pd.DataFrame:
    t["method"] = t["method"].astype(str)
    return t


def speech_tables(scores: pd.DataFrame, cond: pd.DataFrame,
                  headline_buckets: Sequence[float] | None = HEADLINE_BUCKETS) -> SpeechTables:
    """Per-kind, per-bucket and headline tables of per-frame `scores` (``index``, ``method``,
    metric columns; any subset) joined to the frames' `cond` (:func:`conditions`) on ``index``.

    With `headline_buckets` the headline is, per method, the mean over kinds of the mean over
    those buckets of the frame means in each (kind, bucket) cell (empty cells skipped); with
    None it is the mean over all frames. Rows whose index is not a test frame are dropped.
    """
    order = list(dict.fromkeys([INPUT, *scores["method"].astype(str)]))
    order = order if (scores["method"] == INPUT).any() else order[1:]
    t = _ordered(_with_gains(scores), order)
    if "package" not in cond:
        cond = cond.assign(package=ALL_SOURCES)
    t = t.merge(cond[list(CONDITION_COLUMNS)], on="index", how="inner", validate="many_to_one")
    vals = _value_columns(t)
    by_kind = _grouped(t, ["noise_kind", "method"])
    by_snr = _grouped(t.dropna(subset=["snr_bucket_db"]), ["snr_bucket_db", "method"])
    headline, rule = _headline(t, headline_buckets, vals)
    by_package = pd.concat([_headline(g, headline_buckets, vals)[0].assign(package=pkg)
                            for pkg, g in t.groupby("package", sort=True)], ignore_index=True)
    by_package = by_package[["package", *[c for c in by_package if c != "package"]]]
    return SpeechTables(*(_unordered(x) for x in (by_kind, by_snr, headline)), rule=rule,
                        by_package=_unordered(by_package))


def _headline(t: pd.DataFrame, headline_buckets: Sequence[float] | None,
              vals: list[str]) -> tuple[pd.DataFrame, str]:
    """Per method: the mean over kinds of the mean over `headline_buckets` of the (kind,
    bucket) cells' frame means (empty cells skipped), or with None the mean over all frames."""
    if headline_buckets is None:
        return _grouped(t, ["method"]), PLAIN_RULE
    sel = t[t["snr_bucket_db"].isin(list(headline_buckets))]
    cells = _grouped(sel, ["noise_kind", "snr_bucket_db", "method"])
    kinds = cells.groupby(["noise_kind", "method"], observed=True)
    per_kind = kinds[vals].mean()
    per_kind["n"] = kinds["n"].sum()
    by_method = per_kind.groupby("method", observed=True)
    headline = by_method[vals].mean()
    headline.insert(0, "n", by_method["n"].sum())
    return headline.reset_index(), HEADLINE_RULE


ANCHOR_INPUT = "noisy"  # benchmarks/anchors_split.py's name for the unprocessed input


def join_anchors(scores: pd.DataFrame, cond: pd.DataFrame, anchors: pd.DataFrame | None,
                 headline_buckets: Sequence[float] | None = HEADLINE_BUCKETS) -> SpeechTables:
    """The tables over our methods' per-frame `scores` and the anchors' per-clip rows (their
    ``index`` is the test frame index; gains are over our input on the same frame)."""
    if anchors is None or not len(anchors):
        return speech_tables(scores, cond, headline_buckets)
    missing = {"index", "method"} - set(anchors.columns)
    if missing:
        raise ValueError(f"anchors table lacks column(s) {', '.join(sorted(missing))}")
    keep = ["index", "method", *_metric_columns(anchors), *(c for c in EXTRA if c in anchors)]
    # The anchors' own `noisy` rows are our input, and a method evaluate also ran (the tracking
    # Wiener) keeps evaluate's rows: one row per method and frame.
    ours = set(scores["method"].astype(str)) | {ANCHOR_INPUT}
    anchors = anchors[~anchors["method"].astype(str).isin(ours)]
    return speech_tables(pd.concat([scores, anchors[keep]], ignore_index=True), cond,
                         headline_buckets)


# ----------------------------------------------------------------------------- records
def headline_numbers(t: SpeechTables, best: str | None) -> dict[str, float | str]:
    """metrics.json's flat ``speech.<method>.<column>`` figures from the headline table (plus
    ``speech.model_minus_best_classical.<column>``) and the rule that made them."""
    out: dict[str, float | str] = {"speech.headline_rule": t.rule}
    best = INPUT if best == "identity" else best  # the input's rows are identity's
    h = t.headline.set_index("method")
    cols = _metric_columns(h)
    for method, row in h.iterrows():
        for c in cols + [f"{c}_gain" for c in cols]:
            out[f"speech.{method}.{c}"] = float(row[c])
    if best in h.index and "model" in h.index:
        for c in cols:
            sign = -1.0 if c in LOWER_IS_BETTER else 1.0
            out[f"speech.model_minus_best_classical.{c}"] = sign * float(h.at["model", c]
                                                                        - h.at[best, c])
    return out
