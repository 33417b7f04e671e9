"""The `report` stage: reports/index.html, one offline page to read, look at and listen to.

It only assembles what the other stages wrote (no TensorFlow): each experiment's metrics.json,
methods.csv, figures/, audio/ (evaluate), tune/ and best_params.yaml (tune), models/E/history.csv
and meta.json (train), data/E/digest.json (generate), params.yaml and the git commit. Its own
figures (summary chart, training curves) go to ``reports/report/``. Every link is relative and
there is no JavaScript, so the ``reports/`` folder can be zipped and opened anywhere, offline.

The assets folder is swapped in whole and index.html written last, both atomically: a failed
build leaves the previous report as it was.
"""

from __future__ import annotations

import html
import json
import logging
import math
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pandas as pd
import yaml

from pipeline.config import Params
from pipeline.io.atomic import atomic_dir, atomic_write_text
from pipeline.layout import DataError

log = logging.getLogger(__name__)

ASSETS = "report"  # reports/report/: figures made by this stage
DPI = 90
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


def public_uri(uri: str | None) -> str | None:
    """`uri` without a password (user names stay): safe to print into a committed page."""
    if not uri:
        return uri
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urlunsplit(parts._replace(netloc=user + host))


def run_url(uri: str | None, run_id: str | None) -> str | None:
    """MLflow UI link of a run, only for an http(s) tracking server; never with credentials."""
    if not uri or not run_id:
        return None
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return None
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    base = urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))
    # MLflow 3's UI starts in its GenAI mode (a per-browser setting): ask for model training.
    return f"{base}/#/runs/{run_id}?workflowType=machine_learning"


def _run_cell(uri: str | None, run_id: str | None) -> str:
    if not run_id:
        return '<span class="muted">–</span>'
    url = run_url(uri, run_id)
    short = f'<code title="{_e(run_id)}">{_e(run_id[:8])}</code>'
    return f'<a href="{_e(url)}">{short}</a>' if url else short


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err}); re-run the stage that writes it") from err


def _read_csv(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: unreadable CSV ({err}); re-run the stage that writes it") from err


# ----------------------------------------------------------------------------- inputs
def collect(params: Params, root: Path) -> list[dict[str, Any]]:
    """Everything the page shows, per experiment; experiments not evaluated yet are skipped."""
    out = []
    for name in params.experiments:
        rep = root / "reports" / name
        metrics = _read_json(rep / "metrics.json")
        if metrics is None:
            log.warning("%s: missing; run `dvc repro evaluate@%s` (left out of the report)",
                        rep / "metrics.json", name)
            continue
        digest_file = _read_json(root / "data" / name / "digest.json") or {}
        tune_dir = rep / "tune"
        best_params = rep / "best_params.yaml"
        out.append({
            "name": name,
            "exp": params.experiment(name),
            "metrics": metrics,
            "methods": _read_csv(rep / "methods.csv"),
            "figures": {p.stem: p for p in sorted((rep / "figures").glob("*.png"))},
            "audio": _read_json(rep / "audio" / "examples.json"),
            "history": _read_csv(root / "models" / name / "history.csv"),
            "meta": _read_json(root / "models" / name / "meta.json") or {},
            "tune_plots": {k: tune_dir / f"{k}.png" for k in TUNE_PLOTS
                           if (tune_dir / f"{k}.png").is_file()},
            "trials": _read_csv(tune_dir / "trials.csv"),
            "best_params": yaml.safe_load(best_params.read_text()) if best_params.is_file()
            else None,
            "data_digest": digest_file.get("digest"),
        })
    if not out:
        raise DataError(f"{root / 'reports'}: no experiment has a metrics.json; run "
                        "`dvc repro evaluate` first")
    return out


# ----------------------------------------------------------------------------- figures
def _style():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
                         "axes.spines.right": False, "font.size": 9})
    return plt


def _summary_chart(path: Path, exps: list[dict[str, Any]]) -> None:
    """Model vs best classical vs oracle gain, one group of bars per experiment."""
    import numpy as np

    plt = _style()
    keys = [("model_gain_db", "model", "tab:blue"),
            ("best_classical_gain_db", "best classical", "tab:orange"),
            ("oracle_gain_db", "oracle", "tab:green")]
    x = np.arange(len(exps))
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    for j, (key, label, colour) in enumerate(keys):
        vals = [e["metrics"].get(key) for e in exps]
        ax.bar(x + (j - 1) * 0.27, [v if v is not None else 0.0 for v in vals], 0.27,
               label=label, color=colour)
    ax.set_xticks(x, [e["name"] for e in exps])
    ax.axhline(0.0, color="0.4", lw=0.8)
    ax.set_ylabel("mean SNR gain (dB)")
    ax.set_title("Test-split SNR gain over the degraded input (oracle: sine family only)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def _loss_label(meta: dict[str, Any]) -> str:
    loss = (meta.get("train") or {}).get("loss")
    return "loss = −SNR (dB)" if loss == "snr" else f"loss ({loss})" if loss else "loss"


def _training_chart(path: Path, e: dict[str, Any]) -> None:
    plt = _style()
    h = e["history"]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for col, label in (("loss", "train"), ("val_loss", "validation")):
        if col in h:
            ax.plot(h["epoch"], h[col], marker="o", ms=3, label=label)
    best = e["meta"].get("best_epoch")
    if best:
        ax.axvline(best, color="0.5", ls=":", lw=1, label=f"best epoch {best}")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(_loss_label(e["meta"]))
    ax.set_title(f"{e['name']}: training curves")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def _make_figures(assets: Path, exps: list[dict[str, Any]]) -> dict[str, str]:
    """Draw this stage's own figures into `assets`; returns {key: file name}."""
    made = {"summary": "summary.png"}
    _summary_chart(assets / made["summary"], exps)
    for e in exps:
        h = e["history"]
        if h is not None and "epoch" in h and len(h):
            made[f"{e['name']}/training"] = f"{e['name']}-training.png"
            _training_chart(assets / made[f"{e['name']}/training"], e)
    return made


# ----------------------------------------------------------------------------- html
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


def build_report(params: Params, root: str | os.PathLike[str] = ".",
                 params_path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Write reports/index.html and reports/report/; returns the path, experiments and size."""
    root = Path(root).resolve()
    exps = collect(params, root)
    from pipeline.tracking import git_commit, portable_uri, resolve_uri

    uri = portable_uri(resolve_uri(params.tracking, root), root)  # no machine paths in the page
    ppath = Path(params_path) if params_path else root / "params.yaml"
    from pipeline.tracking import mask_passwords

    params_text = mask_passwords(ppath.read_text() if ppath.is_file() else yaml.safe_dump(
        params.model_dump(mode="json"), sort_keys=False))
    reports = root / "reports"
    with atomic_dir(reports / ASSETS) as assets:
        made = _make_figures(assets, exps)
        page = render(params, exps, made, uri, git_commit(root), params_text)
    atomic_write_text(reports / "index.html", page)
    size = sum(p.stat().st_size for p in reports.rglob("*") if p.is_file())
    return {"path": reports / "index.html", "experiments": [e["name"] for e in exps],
            "bytes": size}
