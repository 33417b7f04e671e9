"""The stage's outputs: reports/E/best_params.yaml and reports/E/tune/ (trials.csv, plots)."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

from pipeline import tracking
from pipeline.config import Resolved
from pipeline.io.atomic import atomic_dir, atomic_write_text
from pipeline.layout import BestParams
from pipeline.tuning.errors import FINISHED, TuneError
from pipeline.tuning.objective import untuned_values

log = logging.getLogger("audiorecon.tune")


def _plots(study: optuna.Study, folder: Path) -> list[Path]:
    """Optuna's matplotlib plots as PNGs; a plot that cannot be drawn is skipped, not fatal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    varied = [k for k in {k for t in done for k in t.params}
              if len({json.dumps(t.params.get(k), default=str) for t in done}) > 1]
    plots = {"optimization_history": ovm.plot_optimization_history}
    if len(done) >= 2 and len(varied) > 1:
        plots["param_importances"] = ovm.plot_param_importances
    if len(done) >= 2:
        plots["parallel_coordinate"] = ovm.plot_parallel_coordinate
    paths = []
    for label, plot in plots.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = plot(study)
            fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
            fig.set_size_inches(8, 5)
            fig.tight_layout()
            path = folder / f"{label}.png"
            fig.savefig(path, dpi=100)
            paths.append(path)
        except Exception as err:
            log.warning("skipping the %s plot: %s", label, err)
        finally:
            plt.close("all")
    return paths


def write_tune_dir(r: Resolved, study: optuna.Study | None) -> list[str]:
    """reports/<name>/tune/: trials.csv (+ plots), swapped in atomically; returns file names."""
    import pandas as pd

    with atomic_dir(r.paths.tune_dir) as tmp:
        # Only what the trials found: their times and worker ids differ from run to run, and
        # the committed table must be the same for every clone (the study keeps the rest).
        attrs = ("number", "value", "params", "state", "user_attrs", "intermediate_values")
        df = study.trials_dataframe(attrs=attrs) if study is not None else pd.DataFrame()
        df = df.drop(columns=[c for c in df.columns if c.startswith("user_attrs_")
                              and c != "user_attrs_origin"])
        if df.empty:
            df = pd.DataFrame(columns=["number", "value", "state"])
        df.to_csv(tmp / "trials.csv", index=False)
        if study is not None:
            _plots(study, tmp)
        files = sorted(p.name for p in tmp.iterdir())
    return files


def write_best(r: Resolved, record: BestParams) -> None:
    atomic_write_text(r.paths.best_params, record.text("yaml"))


def untuned(r: Resolved, why: str) -> dict:
    """Write params.yaml's own values as the answer (no study): tuning off or nothing to use."""
    record = BestParams(params=untuned_values(r), source="untuned", n_trials=0)
    write_best(r, record)
    write_tune_dir(r, None)
    log.info("tune@%s: %s; wrote params.yaml's values", r.name, why)
    return record.dump()


def finish(r: Resolved, study: optuna.Study, spec: str, run: tracking.RunHandle) -> dict:
    """Write the outputs from the study's best trial and log the summary to the parent run."""
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    if not done:
        raise TuneError(
            f"study {study.study_name}: no trial completed ({counts}); see the log above "
            "for why they failed (lower the learning-rate range?)"
        )
    best = study.best_trial
    untuned_value = [t.value for t in done if t.user_attrs.get("origin") == "params.yaml"]
    record = BestParams(
        params=dict(best.params), source="optuna", study=study.study_name,
        storage=tracking.portable_uri(spec, r.paths.root), best_value=float(best.value),
        untuned_value=float(untuned_value[0]) if untuned_value else None,
        n_trials=sum(t.state in FINISHED for t in trials),
    )
    files = write_tune_dir(r, study)
    write_best(r, record)
    run.log_params({"best": dict(best.params), "best_trial": best.number})
    run.log_metrics({"best_value": float(best.value), "n_trials": len(trials),
                     **{f"n_{k}": v for k, v in counts.items() if k != "waiting"}})
    for f in files:
        run.log_artifact(r.paths.tune_dir / f, "tune")
    run.log_artifact(r.paths.best_params)
    log.info("tune@%s: best val_loss %.5g (trial %d of %d) %s", r.name, best.value, best.number,
             len(trials), best.params)
    return record.dump()
