"""The report's speech part of an experiment: the headline (with the outside anchors when
reports/E/anchors.csv exists), per-noise-kind and per-input-SNR-bucket tables of SI-SDR, PESQ-WB
and STOI per method, and one listening example of real speech per noise kind."""

from __future__ import annotations

from typing import Any

import pandas as pd

from pipeline.reporting.html import ASSETS, _e, _figure, _href, _num

LABELS = {"si_sdr_db": "SI-SDR (dB)", "pesq": "PESQ-WB", "stoi": "STOI", "snr_db": "SNR (dB)",
          "lsd": "LSD (lower is better)", "rtf": "real-time factor"}
SHOWN = ("si_sdr_db", "pesq", "stoi", "lsd")  # per kind / per bucket: the speech figures
FORMATS = {"si_sdr_db": "{:+.2f}", "snr_db": "{:+.2f}", "pesq": "{:.2f}", "stoi": "{:.3f}",
           "lsd": "{:.3f}", "rtf": "{:.3f}"}


def _kind_of(method: str, best: str | None, anchors: set[str]) -> str:
    if method == best:
        return "best classical"
    if method in anchors:
        return "anchor"
    return {"input": "input", "model": "model", "oracle": "oracle",
            "ideal_mask": "bound"}.get(method, "classical")


def _cells(row: pd.Series, cols: list[str], gains: bool) -> str:
    out = []
    for c in cols:
        v = row.get(c)
        g = row.get(f"{c}_gain") if gains else None
        extra = "" if g is None or g != g else f' <span class="note">({_num(g, "{:+.2f}")})</span>'
        out.append(f"<td>{_num(v, FORMATS.get(c, '{:.3g}'))}{extra}</td>")
    return "".join(out)


def _headline(t, best: str | None, anchors: set[str]) -> str:
    h = t.headline
    cols = [c for c in ("si_sdr_db", "pesq", "stoi", "snr_db", "lsd", "rtf") if c in h
            and h[c].notna().any()]
    head = ("<tr><th class=l>method</th><th class=l>kind</th><th>frames</th>"
            + "".join(f"<th>{_e(LABELS[c])}</th>" for c in cols) + "</tr>")
    rows = []
    for _, r in h.iterrows():
        m = str(r["method"])
        cls = ' class="best"' if m in ("model", best) else ""
        rows.append(f'<tr{cls}><td class="l">{_e(m)}</td><td class="l">'
                    f'{_e(_kind_of(m, best, anchors))}</td><td>{int(r["n"])}</td>'
                    f"{_cells(r, cols, gains=True)}</tr>")
    return (f'<p class="note">Headline: {_e(t.rule)}; in brackets the gain over the noisy '
            "input on the same frames (for LSD: the drop). The model and the best classical "
            "baseline are highlighted"
            + ("; anchors are outside systems scored on the same test frames" if anchors else "")
            + f".</p><table>{head}{''.join(rows)}</table>")


def _pivot(table: pd.DataFrame, key: str, col: str, fmt_key) -> str:
    """Methods down, `key` values across, `col`'s mean in each cell."""
    if col not in table or not table[col].notna().any():
        return ""
    p = table.pivot(index="method", columns=key, values=col)
    p = p.reindex(list(dict.fromkeys(table["method"])))  # the tables' method order
    head = ("<tr><th class=l>method</th>"
            + "".join(f"<th>{_e(fmt_key(k))}</th>" for k in p.columns) + "</tr>")
    rows = "".join(f'<tr><td class="l">{_e(m)}</td>'
                   + "".join(f"<td>{_num(v, FORMATS.get(col, '{:.3g}'))}</td>" for v in r)
                   + "</tr>" for m, r in p.iterrows())
    return f"<h4>{_e(LABELS[col])}</h4><table>{head}{rows}</table>"


def _kind_audio(e: dict[str, Any]) -> str:
    a = e.get("kind_audio")
    if not a or not a.get("examples"):
        return ""
    cols = [("clean", "clean"), ("degraded", "noisy (input)"), ("model", "model"),
            ("best_classical", f"best classical: {a.get('best_classical', '')}")]
    head = "<tr><th class=l>noise kind</th>" + "".join(f"<th>{_e(t)}</th>" for _, t in cols)
    rows = []
    for ex in a["examples"]:
        cells = []
        for kind, _ in cols:
            rel = f"{e['name']}/audio/{ex['files'][kind]}"
            si = (ex.get("si_sdr_db") or {}).get(kind)
            label = "" if si is None else f"<br><span class=note>SI-SDR {_num(si, '{:+.1f}')} dB</span>"
            cells.append(f'<td><audio controls preload="metadata" src="{_href(rel)}"></audio>'
                         f"{label}</td>")
        rows.append(f'<tr><td class="l">{_e(ex["noise_kind"])}<br><span class=note>frame '
                    f'{_e(ex["frame"])}, {_num(ex.get("snr_bucket_db"), "{:.0f}")} dB bucket'
                    f'</span></td>{"".join(cells)}</tr>')
    return ("<h4>Listen: one test frame per noise kind</h4><p class=\"note\">The frame of each "
            "kind nearest the 5 dB bucket; its four versions share one gain.</p>"
            f"<table>{head}</tr>{''.join(rows)}</table>")


def speech_section(e: dict[str, Any], made: dict[str, str] | None = None) -> str:
    """The speech tables of experiment `e` ("" when it has none); `made`: the report's own
    figures (the per-bucket chart)."""
    t = e.get("speech")
    if t is None:
        return ""
    best = e["metrics"].get("best_classical")
    best = "input" if best == "identity" else best  # evaluate scores identity as the input
    anchors = set(e.get("anchor_methods") or ())
    parts = ["<h3>Speech metrics</h3>", _headline(t, best, anchors)]
    chart = (made or {}).get(f"{e['name']}/speech")
    if chart:
        parts.append(_figure(f"{ASSETS}/{chart}", "SI-SDR, PESQ-WB and STOI per input-SNR "
                             "bucket (input, model, best classical, anchors)", 900))
    kinds = t.by_kind["noise_kind"].nunique()
    if kinds > 1 or (kinds == 1 and t.by_kind["noise_kind"].iloc[0] != "all"):
        parts.append("<details open><summary>Per noise kind (mean over its test frames)"
                     "</summary>" + "".join(_pivot(t.by_kind, "noise_kind", c, str)
                                            for c in SHOWN) + "</details>")
    parts.append("<details open><summary>Per input-SNR bucket (5 dB wide, by centre)</summary>"
                 + "".join(_pivot(t.by_snr, "snr_bucket_db", c, lambda k: f"{k:+.0f} dB")
                           for c in SHOWN) + "</details>")
    pk = t.by_package
    if pk is not None and pk["package"].nunique() > 1:
        parts.append("<details open><summary>Headline per source of the test speech (game voices "
                     "are processed recordings: an anchor that also removes their effects "
                     "scores lower against them)</summary>"
                     + "".join(_pivot(pk, "package", c, str) for c in SHOWN) + "</details>")
    parts.append(_kind_audio(e))
    return "".join(parts)
