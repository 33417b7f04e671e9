"""The report page as HTML: escaped text, tables, figures, players; offline, no scripts."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
import yaml

from pipeline.config import Params
from pipeline.layout import RepoPaths
from pipeline.tracking.uris import public_uri, run_url

ASSETS = RepoPaths(Path()).report_assets.name  # hrefs are relative to index.html
TUNE_PLOTS = {"optimization_history": "Optuna optimization history",
              "param_importances": "Optuna hyperparameter importances",
              "parallel_coordinate": "Optuna parallel coordinates"}
MAX_TRIAL_ROWS = 30
METHOD_COLUMNS = {"method": "method", "kind": "kind", "val_gain_db": "val gain (dB)",
                  "gain_mean_db": "test gain (dB)", "gain_median_db": "median gain (dB)",
                  "snr_median_db": "median SNR (dB)", "si_sdr_gain_db": "SI-SDR gain (dB)",
                  "lsd": "LSD"}
CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1180px;
     padding:0 1.2em 3em;color:#1d232a;background:#fff}
h1{margin:.8em 0 .2em}h2{border-bottom:2px solid #e3e7ec;padding-bottom:.2em;margin-top:2.2em}
h3{margin:1.6em 0 .4em}
table{border-collapse:collapse;margin:.6em 0;font-size:14px}
th,td{border:1px solid #d9dee4;padding:.3em .55em;text-align:right;vertical-align:middle}
th{background:#f3f5f8}td.l,th.l{text-align:left}tr.best td{background:#fff7e6}
figure{margin:1em 0;display:inline-block;max-width:100%;vertical-align:top}
figure img{max-width:100%;height:auto;border:1px solid #e3e7ec}
figcaption{font-size:13px;color:#4b5563}
audio{width:190px;height:34px}
code,pre{font:13px/1.4 ui-monospace,Menlo,Consolas,monospace;background:#f5f7f9}
pre{padding:.7em;overflow-x:auto}
.note{color:#4b5563;font-size:14px}.muted{color:#8a94a0}
nav a{margin-right:1em}
"""



# ----------------------------------------------------------------------------- helpers
def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _href(rel: str) -> str:
    return _e(quote(rel, safe="/#"))


def _num(v: Any, fmt: str = "{:+.2f}", unit: str = "") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return '<span class="muted">–</span>'
    try:
        text = fmt.format(float(v))
        return (text[1:] if text.startswith("-") and float(text) == 0 else text) + unit  # no -0.00
    except (TypeError, ValueError):
        return _e(v)


def _run_cell(uri: str | None, run_id: str | None) -> str:
    if not run_id:
        return '<span class="muted">–</span>'
    url = run_url(uri, run_id)
    short = f'<code title="{_e(run_id)}">{_e(run_id[:8])}</code>'
    return f'<a href="{_e(url)}">{short}</a>' if url else short


def _figure(rel: str, caption: str, width: int = 560) -> str:
    return (f'<figure style="width:{width}px"><a href="{_href(rel)}"><img src="{_href(rel)}" '
            f'alt="{_e(caption)}"></a><figcaption>{_e(caption)}</figcaption></figure>')


def _table(df: pd.DataFrame, left: set[str], row_class=None) -> str:
    head = "".join(f'<th class="{"l" if c in left else ""}">{_e(c)}</th>' for c in df.columns)
    rows = []
    for i, r in df.iterrows():
        cls = row_class(i) if row_class else ""
        cells = []
        for c in df.columns:
            v = r[c]
            if isinstance(v, float):  # signed 2 decimals for dB columns, 4 digits otherwise
                txt = _num(v, "{:+.2f}") if "dB" in str(c) else _num(v, "{:.4g}")
            else:
                txt = _e(v)
            cells.append(f'<td class="{"l" if c in left else ""}">{txt}</td>')
        rows.append(f'<tr class="{cls}">{"".join(cells)}</tr>')
    return f'<table><tr>{head}</tr>{"".join(rows)}</table>'


def _summary_section(exps: list[dict[str, Any]], uri: str | None, made: dict[str, str]) -> str:
    rows = []
    for e in exps:
        m, exp = e["metrics"], e["exp"]
        rows.append(
            f'<tr><td class="l"><a href="#{_e(e["name"])}">{_e(e["name"])}</a></td>'
            f'<td class="l">{_e(exp.signal.family)} → {_e(exp.degradation.kind)}</td>'
            f'<td>{_num(m.get("input_snr_median_db"), "{:.1f}")}</td>'
            f'<td><b>{_num(m.get("model_gain_db"))}</b></td>'
            f'<td class="l">{_e(m.get("best_classical", "–"))}</td>'
            f'<td>{_num(m.get("best_classical_gain_db"))}</td>'
            f'<td>{_num(m.get("model_minus_best_classical_db"))}</td>'
            f'<td>{_num(m.get("oracle_gain_db"))}</td>'
            f'<td>{_num(m.get("fraction_of_oracle_gain"), "{:.2f}")}</td>'
            f'<td class="l">{_e(m.get("bound") or "–")} {_num(m.get("bound_gain_db"))}</td>'
            f'<td>{_num(m.get("model_snr_median_db"), "{:.1f}")}</td>'
            f'<td>{_run_cell(uri, m.get("train_run_id") or e["meta"].get("mlflow_run_id"))}</td>'
            f'<td>{_run_cell(uri, m.get("mlflow_run_id"))}</td></tr>')
    head = ("<tr><th class=l>experiment</th><th class=l>task</th><th>input median SNR (dB)</th>"
            "<th>model gain (dB)</th><th class=l>best classical</th><th>its gain (dB)</th>"
            "<th>model − classical (dB)</th><th>oracle gain (dB)</th><th>fraction of oracle</th>"
            "<th class=l>bound, gain (dB)</th><th>model median SNR (dB)</th><th>train run</th>"
            "<th>evaluate run</th></tr>")
    return (
        '<h2 id="summary">Summary</h2>'
        '<p class="note">Test split, mean per-frame SNR gain over the degraded input. The best '
        "classical baseline is chosen by its gain on the validation split; the oracle knows the "
        "signal family (sine experiments only). A bound needs the clean signal and caps a whole "
        "class of methods (see each experiment's notes). Run ids are MLflow's"
        + (", linked to the tracking server." if uri and run_url(uri, "x") else
           "; open them with <code>mlflow ui</code>.") + "</p>"
        f"<table>{head}{''.join(rows)}</table>"
        + _figure(f"{ASSETS}/{made['summary']}", "SNR gain per experiment: model, best "
                  "classical, oracle", 700)
    )


def _audio_section(e: dict[str, Any]) -> str:
    a = e["audio"]
    if not a or not a.get("examples"):
        return '<p class="note">No listening examples (re-run evaluate to write them).</p>'
    best = a.get("best_classical", "best classical")
    cols = [("clean", "clean"), ("degraded", "degraded (input)"), ("model", "model"),
            ("best_classical", f"best classical: {best}")]
    head = "<tr><th class=l>example</th>" + "".join(f"<th>{_e(t)}</th>" for _, t in cols) + "</tr>"
    rows = []
    for ex in a["examples"]:
        cells = []
        for kind, _ in cols:
            rel = f"{e['name']}/audio/{ex['files'][kind]}"
            snr = ex.get("snr_db", {}).get(kind)
            label = "" if snr is None else f"<br><span class=note>SNR {_num(snr, '{:.1f}')} dB</span>"
            cells.append(f'<td><audio controls preload="metadata" src="{_href(rel)}"></audio>'
                         f"{label}</td>")
        rows.append(f'<tr><td class="l">{_e(ex["id"])}: {len(ex["frames"])} frames, '
                    f'{_num(ex.get("seconds"), "{:.2f}")} s<br><span class=note>input SNR '
                    f'{_num(ex.get("input_snr_db"), "{:.1f}")} dB</span></td>{"".join(cells)}</tr>')
    rate_note = (f"recorded at {a['sample_rate']} Hz and upsampled to {a['playback_rate']} Hz "
                 "for playback (browsers do not decode such low rates; pitch and duration are "
                 "unchanged)" if a.get("upsampled") else f"at {a['playback_rate']} Hz")
    return (f'<p class="note">Consecutive test frames of similar input SNR joined end to end with '
            f"{_e(a.get('fade_ms'))} ms fades at each frame edge, {rate_note}. The four versions of "
            f"an example share one gain (loudest at {_e(a.get('peak'))} of full scale), so loudness "
            f"compares; SNR is measured on the joined signal.</p><table>{head}{''.join(rows)}</table>")


def _tune_section(e: dict[str, Any]) -> str:
    parts = []
    bp = e["best_params"]
    if bp:
        parts.append(f'<p>Best params ({_e(bp.get("source", "?"))}'
                     + (f', study <code>{_e(bp["study"])}</code>, best value '
                        f'{_num(bp.get("best_value"), "{:.4g}")} of {_e(bp.get("n_trials"))} trials'
                        if bp.get("study") else "")
                     + f'): <code>{_e(json.dumps(bp.get("params", {})))}</code></p>')
    for key, caption in TUNE_PLOTS.items():
        if key in e["tune_plots"]:
            parts.append(_figure(f"{e['name']}/tune/{key}.png", caption, 520))
    t = e["trials"]
    if t is not None and len(t):
        cols = ["number", "value", "state", *[c for c in t.columns if c.startswith("params_")]]
        shown = t[[c for c in cols if c in t.columns]].head(MAX_TRIAL_ROWS)
        shown = shown.rename(columns=lambda c: c.removeprefix("params_"))
        more = f" (first {MAX_TRIAL_ROWS} of {len(t)})" if len(t) > MAX_TRIAL_ROWS else ""
        parts.append(f"<details><summary>Trials{more}</summary>"
                     f"{_table(shown, {'state'})}</details>")
    if not parts:
        return '<p class="note">No Optuna study for this experiment (tune.enabled false?).</p>'
    return "".join(parts)


def _experiment_section(e: dict[str, Any], made: dict[str, str], uri: str | None) -> str:
    name, m, exp, figs = e["name"], e["metrics"], e["exp"], e["figures"]
    s = [f'<h2 id="{_e(name)}">{_e(name)}</h2>',
         f'<p>{_e(exp.signal.family)} signal → {_e(exp.degradation.kind)} degradation; '
         f"{exp.frame_length}-sample frames at {exp.sample_rate} Hz; "
         f"{_e(m.get('n_test'))} test frames. Model gain <b>{_num(m.get('model_gain_db'), unit=' dB')}"
         f"</b>, best classical {_e(m.get('best_classical'))} "
         f"{_num(m.get('best_classical_gain_db'), unit=' dB')}, oracle "
         f"{_num(m.get('oracle_gain_db'), unit=' dB')}"
         + (f", bound {_e(m['bound'])} {_num(m.get('bound_gain_db'), unit=' dB')}" if m.get("bound")
            else "") + ".</p>"]
    facts = m.get("task_facts") or []
    if facts:
        s.append("<ul>" + "".join(f"<li>{_e(f)}</li>" for f in facts) + "</ul>")
    s.append("<h3>Listen</h3>" + _audio_section(e))
    s.append("<h3>Gain</h3>")
    for key, caption in (("gain_vs_snr", "SNR gain vs input SNR: every test frame as a dot, "
                          "bucket means as lines"),
                         ("gain_by_frequency", "mean SNR gain per sine frequency")):
        if key in figs:
            s.append(_figure(f"{name}/figures/{key}.png", caption))
    if e["methods"] is not None:
        df = e["methods"]
        best = df["best_classical"].astype(str).str.lower().eq("true") if "best_classical" in df \
            else pd.Series(False, index=df.index)
        shown = df[[c for c in METHOD_COLUMNS if c in df.columns]].rename(columns=METHOD_COLUMNS)
        s.append("<details open><summary>All methods (test split; val gain picks the best "
                 "classical, highlighted)</summary>"
                 + _table(shown, {"method", "kind"}, lambda i: "best" if best[i] else "")
                 + "</details>")
    from pipeline.reporting.speech import speech_section  # it uses this module's helpers

    s.append(speech_section(e, made))
    s.append("<h3>Waveforms and spectrograms</h3>")
    for key, caption in (("examples", "test frames: clean, degraded, model, best classical"),
                         ("spectrograms", "spectrograms before/after (listening example)")):
        if key in figs:
            s.append(_figure(f"{name}/figures/{key}.png", caption, 760 if key == "examples" else 620))
    s.append("<h3>Training</h3>")
    train_png = made.get(f"{name}/training")
    meta = e["meta"]
    if train_png:
        s.append(_figure(f"{ASSETS}/{train_png}", "loss per epoch (train and validation)", 520))
    if meta:
        s.append(f'<p class="note">best val loss {_num(meta.get("best_val_loss"), "{:.4g}")} at '
                 f'epoch {_e(meta.get("best_epoch", "–"))} of {_e(meta.get("epochs_run", "–"))}; '
                 f'{_num(meta.get("train_seconds"), "{:.0f}", " s")}; model '
                 f'<code>{_e(json.dumps(meta.get("model", {})))}</code>; train '
                 f'<code>{_e(json.dumps(meta.get("train", {})))}</code>; MLflow run '
                 f'{_run_cell(uri, meta.get("mlflow_run_id"))}</p>')
    s.append("<h3>Tuning</h3>" + _tune_section(e))
    digest = e["data_digest"] or m.get("data_digest")
    stale = (e["data_digest"] and m.get("data_digest") and e["data_digest"] != m["data_digest"])
    s.append("<h3>Provenance</h3>"
             f"<p>data digest <code>{_e(digest or '–')}</code>"
             + (" <b>(data changed since this evaluation)</b>" if stale else "")
             + f"; model trained on <code>{_e(m.get('model_data_digest') or '–')}</code>.</p>"
             "<details><summary>params of this experiment</summary><pre>"
             + _e(yaml.safe_dump({name: exp.model_dump(mode="json")}, sort_keys=False))
             + "</pre></details>")
    return "".join(s)


def render(params: Params, exps: list[dict[str, Any]], made: dict[str, str], uri: str | None,
           commit: str | None, params_text: str) -> str:
    nav = "".join(f'<a href="#{_e(e["name"])}">{_e(e["name"])}</a>' for e in exps)
    shown_uri = public_uri(uri)
    body = [
        "<h1>audiorecon report</h1>",
        f'<p class="note">git commit <code>{_e(commit or "unknown")}</code>; seed '
        f"{params.base.seed}{' (quick run)' if params.base.quick else ''}; MLflow "
        f"<code>{_e(shown_uri or '–')}</code>. Built by the <code>report</code> stage "
        "(<code>dvc repro report</code>); offline, no scripts.</p>",
        f'<nav><a href="#summary">summary</a>{nav}<a href="#params">params</a></nav>',
        _summary_section(exps, uri, made),
        *(_experiment_section(e, made, uri) for e in exps),
        '<h2 id="params">params.yaml</h2><pre>' + _e(params_text) + "</pre>",
    ]
    return ('<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>audiorecon report</title><style>{CSS}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")


