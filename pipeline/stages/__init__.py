"""The DVC stages' entry point: ``python -m pipeline.stages <stage> [--experiment E]``.

Kept apart from the user CLI (``pipeline/cli.py``, which mounts the same commands) so that
dvc.yaml's deps name only what a stage runs: editing `enhance` or `score` retrains nothing.
Each command validates the whole params.yaml before it touches anything.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from pipeline.config import load_params, resolve
from pipeline.console import friendly, out

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ParamsOpt = Annotated[Path, typer.Option("--params", "-p", help="params file to validate and use")]
ExpOpt = Annotated[str, typer.Option("--experiment", "-e", help="experiment name from params.yaml")]

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="The pipeline's stages, as dvc.yaml runs them.")


@app.command()
@friendly
def corpus(params: ParamsOpt = Path("params.yaml")) -> None:
    """Stage corpus: data/corpus/ (real speech and music from Debian packages, rendered music)."""
    from pipeline.config.corpus import resolve_corpus
    from pipeline.stages.corpus import build

    p = load_params(params)
    r = resolve_corpus(p.corpus, p.base.quick)
    m = build(r)
    report = m.groupby(["kind", "package"])["seconds"].sum().div(60).round(1)
    out.print(f"data/corpus: {len(m)} clips, minutes {report.to_dict()}, "
              f"build {m.attrs.get('build_seconds')} s, render {m.attrs.get('render_seconds')} s",
              highlight=False, soft_wrap=True)


@app.command()
@friendly
def generate(experiment: ExpOpt, params: ParamsOpt = Path("params.yaml")) -> None:
    """Stage generate@E: write data/E/ (clean and degraded splits, manifest, digest)."""
    from pipeline.stages.generate import generate_experiment

    rec = generate_experiment(resolve(load_params(params), experiment))
    out.print(f"data/{experiment}: digest {rec.digest} sizes {rec.sizes}")


@app.command()
@friendly
def train(experiment: ExpOpt, params: ParamsOpt = Path("params.yaml")) -> None:
    """Stage train@E: fit the model, write models/E/{model.keras,meta.json,history.csv}."""
    from pipeline.stages.train import train_experiment

    meta = train_experiment(resolve(load_params(params), experiment, tuned=True))
    out.print(f"models/{experiment}: best val loss {meta.best_val_loss} "
              f"(epoch {meta.best_epoch}, {meta.stopped_by}), run {meta.mlflow_run_id}")


@app.command()
@friendly
def tune(
    experiment: ExpOpt,
    params: ParamsOpt = Path("params.yaml"),
    storage: Annotated[str | None, typer.Option(
        help="Optuna storage URL (default: OPTUNA_STORAGE, then params, then a local file)")] = None,
    n_trials: Annotated[int | None, typer.Option(
        help="trials to add (default: top the study up to tune.n_trials finished trials)")] = None,
    workers: Annotated[int | None, typer.Option(help="local worker processes")] = None,
) -> None:
    """Stage tune@E: run/continue the Optuna study, write reports/E/best_params.yaml."""
    from pipeline.tuning import tune_experiment

    res = tune_experiment(resolve(load_params(params), experiment, tuning=True),
                          storage=storage, n_trials=n_trials, workers=workers)
    out.print(f"reports/{experiment}/best_params.yaml: {res}")


@app.command()
@friendly
def evaluate(experiment: ExpOpt, params: ParamsOpt = Path("params.yaml")) -> None:
    """Stage evaluate@E: score the model against classical baselines and the oracle."""
    from pipeline.stages.evaluate import evaluate_experiment

    m = evaluate_experiment(resolve(load_params(params), experiment))
    out.print(f"reports/{experiment}/metrics.json: model gain {m.get('model_gain_db')} dB")


@app.command()
@friendly
def summary(params: ParamsOpt = Path("params.yaml")) -> None:
    """Stage summary: reports/summary.csv and summary.md over all experiments."""
    from pipeline.layout import RepoPaths
    from pipeline.stages.summary import write_summary

    table = write_summary(load_params(params), RepoPaths(Path(".").resolve()))
    out.print(table.to_string(), highlight=False, soft_wrap=True)


@app.command()
@friendly
def report(params: ParamsOpt = Path("params.yaml")) -> None:
    """Stage report: reports/index.html with figures and audio of every evaluated experiment."""
    from pipeline.layout import RepoPaths
    from pipeline.stages.report import build_report

    res = build_report(load_params(params), RepoPaths(Path(".").resolve()), params_path=params)
    out.print(f"{res['path']}: {len(res['experiments'])} experiments "
              f"({', '.join(res['experiments'])}); reports/ holds {res['bytes'] / 1e6:.1f} MB",
              highlight=False)


STAGE_COMMANDS = (corpus, generate, tune, train, evaluate, summary, report)
