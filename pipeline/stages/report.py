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

import json
import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from pipeline.config import Params
from pipeline.evaluation.speech_tables import (
    CONDITION_COLUMNS,
    HEADLINE_BUCKETS,
    HEADLINE_RULE,
    SpeechTables,
    join_anchors,
)
from pipeline.io.atomic import atomic_dir, atomic_write_text
from pipeline.layout import BestParams, DataError, ExperimentPaths, RepoPaths
from pipeline.reporting.charts import make_figures
from pipeline.reporting.html import TUNE_PLOTS, render

log = logging.getLogger(__name__)


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
def _speech(p: ExperimentPaths, metrics: dict[str, Any]) -> tuple[SpeechTables | None, list[str]]:
    """The speech tables over evaluate's per-frame scores joined with the anchors' per-clip
    rows when reports/E/anchors.csv exists; None for experiments without speech metrics."""
    rule = metrics.get("speech.headline_rule")
    frames = _read_csv(p.scores_by_frame) if rule else None
    if frames is None:
        return None, []
    anchors = _read_csv(p.anchors_csv)
    given = [c for c in CONDITION_COLUMNS if c in frames]
    cond = frames[given].drop_duplicates("index")
    scores = frames.drop(columns=[c for c in given if c != "index"])
    try:
        tables = join_anchors(scores, cond, anchors,
                              HEADLINE_BUCKETS if rule == HEADLINE_RULE else None)
    except (ValueError, KeyError) as err:
        raise DataError(f"{p.anchors_csv}: cannot join the anchors' rows ({err}); re-run the "
                        "anchors tool on this experiment's test frames") from err
    names = [] if anchors is None else list(dict.fromkeys(anchors["method"].astype(str)))
    return tables, names


def _experiment(params: Params, name: str, repo: RepoPaths) -> dict[str, Any] | None:
    """Everything the page shows of one experiment; None if it has not been evaluated."""
    p = repo.experiment(name)
    metrics = _read_json(p.metrics)
    if metrics is None:
        log.warning("%s: missing; run `dvc repro evaluate@%s` (left out of the report)",
                    p.metrics, name)
        return None
    digest_file = _read_json(p.digest) or {}
    speech, anchor_methods = _speech(p, metrics)
    return {
        "speech": speech,
        "anchor_methods": anchor_methods,
        "kind_audio": _read_json(p.audio / "noise_kinds.json"),
        "name": name,
        "exp": params.experiment(name),
        "metrics": metrics,
        "methods": _read_csv(p.methods),
        "figures": {f.stem: f for f in sorted(p.figures.glob("*.png"))},
        "audio": _read_json(p.audio / "examples.json"),
        "history": _read_csv(p.history),
        "meta": _read_json(p.meta) or {},
        "tune_plots": {k: p.tune_dir / f"{k}.png" for k in TUNE_PLOTS
                       if (p.tune_dir / f"{k}.png").is_file()},
        "trials": _read_csv(p.tune_dir / "trials.csv"),
        "best_params": BestParams.read(p.best_params).dump() if p.best_params.is_file() else None,
        "data_digest": digest_file.get("digest"),
    }


def collect(params: Params, repo: RepoPaths) -> list[dict[str, Any]]:
    """Every evaluated experiment's inputs; experiments not evaluated yet are skipped."""
    out = [e for name in params.experiments if (e := _experiment(params, name, repo))]
    if not out:
        raise DataError(f"{repo.summary_csv.parent}: no experiment has a metrics.json; run "
                        "`dvc repro evaluate` first")
    return out


def build_report(params: Params, repo: RepoPaths,
                 params_path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Write reports/index.html and reports/report/; returns the path, experiments and size."""
    from pipeline.tracking import git_commit, mask_passwords, portable_uri, resolve_uri

    exps = collect(params, repo)
    root = repo.root
    uri = portable_uri(resolve_uri(params.tracking, root), root)  # no machine paths in the page
    ppath = Path(params_path) if params_path else root / "params.yaml"
    params_text = mask_passwords(ppath.read_text() if ppath.is_file() else yaml.safe_dump(
        params.model_dump(mode="json"), sort_keys=False))
    with atomic_dir(repo.report_assets) as assets:
        made = make_figures(assets, exps)
        page = render(params, exps, made, uri, git_commit(root), params_text)
    atomic_write_text(repo.index_html, page)
    reports = repo.index_html.parent
    size = sum(f.stat().st_size for f in reports.rglob("*") if f.is_file())
    return {"path": repo.index_html, "experiments": [e["name"] for e in exps], "bytes": size}
