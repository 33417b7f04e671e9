"""train_experiment end to end on a tiny repo: outputs, MLflow run, overrides, backend failures."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

import pipeline.nn.layers  # noqa: F401  (registers the custom layers for load_model)
from pipeline import tracking
from pipeline.config import ParamsError, load_params, resolve
from pipeline.config.resolve import derive_seed
from pipeline.layout import DataDigest, DataError
from pipeline.stages.train import train_experiment


def effective_config(params, name, root):
    """(model, train, where-from) as the train stage resolves them."""
    r = resolve(params, name, root, tuned=True)
    return r.model, r.train, {"tuned": r.tuning.tuned, **r.tuning.record.dump()}

REAL_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"
NAME = "seed-noise"
DEAD = "http://127.0.0.1:9"


def write_fake_dataset(folder: Path, frame_length: int, sizes: dict[str, int], seed: int = 0):
    """data/<name>/ as generate writes it: noisy integer-cycle sines, float32 (n, T)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(frame_length) / frame_length
    arrays = {}
    for split, n in sizes.items():
        f = rng.integers(1, 9, (n, 1))
        a = rng.uniform(0.05, 1.0, (n, 1))
        clean = (a * np.sin(2 * np.pi * f * t)).astype(np.float32)
        degraded = (clean + rng.normal(0.0, 0.05, clean.shape)).astype(np.float32)
        np.save(folder / f"{split}_clean.npy", clean)
        np.save(folder / f"{split}_degraded.npy", degraded)
        arrays[split] = clean
    digest = f"{seed:02d}" * 32
    record = DataDigest(experiment=folder.name, digest=digest, seed=seed,
                        frame_length=frame_length, sample_rate=1000, sizes=sizes, config={})
    (folder / "digest.json").write_text(record.text())
    (folder / "manifest.csv").write_text("split,index\n")
    return digest


def make_repo(
    root: Path, tracking_cfg: dict, tune_enabled: bool = True, train: dict | None = None,
    tuned: bool = False,
) -> Path:
    """A repo dir with params.yaml derived from the real one (quick, tiny net) and data.

    `tuned` lists the experiment in tune.experiments (train then needs best_params.yaml)."""
    raw = yaml.safe_load(REAL_PARAMS.read_text())
    raw["base"]["quick"] = True
    raw["tracking"].update(tracking_cfg)
    raw["tune"]["enabled"] = tune_enabled
    raw["tune"]["experiments"] = [NAME] if tuned else []
    raw["experiments"][NAME]["model"].update(filters=4, depth=2)
    raw["experiments"][NAME]["train"].update(train or {})
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    q = raw["quick"]
    write_fake_dataset(
        root / "data" / NAME,
        raw["experiments"][NAME]["frame_length"],
        {"train": q["train"], "val": q["val"], "test": q["test"]},
    )
    return root


@pytest.fixture(scope="module")
def env():
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("DVC_EXP_NAME", raising=False)
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        mp.setenv("CI", "true")
        yield mp


@pytest.fixture(scope="module")
def trained(env, tmp_path_factory):
    root = tmp_path_factory.mktemp("repo")
    db = root / "mlflow.db"
    make_repo(root, {"uri": f"sqlite:///{db}"})
    meta = train_experiment(resolve(load_params(root / "params.yaml"), NAME, root, tuned=True))
    return root, meta


def test_outputs_and_meta(trained):
    root, meta = trained
    out = root / "models" / NAME
    assert sorted(p.name for p in out.iterdir()) == ["history.csv", "meta.json", "model.keras"]
    assert json.loads((out / "meta.json").read_text()) == meta.dump()
    params = load_params(root / "params.yaml")
    assert meta.experiment == NAME and meta.task == "noise"
    assert meta.sample_rate == 1000 and meta.frame_length == 100
    assert meta.arch == params.experiments[NAME].model.arch and meta.model["filters"] == 4
    assert meta.train["epochs"] == params.quick.epochs  # quick cap applied
    assert meta.tuned is False
    assert meta.stopped_by in ("epochs", "early_stopping")
    assert meta.budget == {"epochs": params.quick.epochs}
    assert {"tensorflow-cpu", "keras", "numpy", "optuna", "mlflow", "dvc"} <= set(meta.versions)
    assert meta.data_digest == json.loads((root / "data" / NAME / "digest.json").read_text())[
        "digest"
    ]
    assert meta.seed == derive_seed(params.base.seed, NAME, "train")
    assert isinstance(meta.mlflow_run_id, str)
    assert np.isfinite(meta.best_val_loss)
    assert 1 <= meta.best_epoch <= meta.epochs_run <= params.quick.epochs
    assert meta.train_seconds > 0 and meta.samples_per_second > 0
    hist = pd.read_csv(out / "history.csv")
    assert list(hist.columns[:3]) == ["epoch", "loss", "val_loss"]
    assert hist["epoch"].tolist() == list(range(1, meta.epochs_run + 1))
    assert hist["val_loss"].min() == pytest.approx(meta.best_val_loss, rel=1e-5)
    # No temp folders left behind by the atomic swap.
    assert [p.name for p in (root / "models").iterdir()] == [NAME]


def test_saved_model_loads_in_safe_mode(trained):
    root, _ = trained
    model = keras.models.load_model(root / "models" / NAME / "model.keras", safe_mode=True,
                                    compile=False)
    x = np.load(root / "data" / NAME / "test_degraded.npy")[:5, :, None]
    y = model.predict(x, verbose=0)
    assert y.shape == x.shape and np.isfinite(y).all()


def test_mlflow_run_has_params_metrics_model_dataset_and_tags(trained, monkeypatch):
    root, meta = trained
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name(f"audiorecon/{NAME}")
    assert exp.artifact_location == (root / "mlartifacts" / NAME).as_uri()
    runs = client.search_runs([exp.experiment_id])
    assert [r.info.run_id for r in runs] == [meta.mlflow_run_id]
    run = runs[0]
    assert run.info.status == "FINISHED"
    p = run.data.params
    assert p["model.depth"] == "2" and p["model.arch"] == meta.arch
    assert float(p["train.learning_rate"]) == pytest.approx(1e-3)
    assert p["degradation.std"] == "[0.01, 0.1]" and p["degradation.kind"] == "noise"
    assert p["frame_length"] == "100" and p["seed"] == str(meta.seed)
    for key in ("loss", "val_loss", "epoch_seconds"):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert steps == list(range(1, meta.epochs_run + 1)), key
    m = run.data.metrics
    assert m["best_val_loss"] == pytest.approx(meta.best_val_loss)
    assert {"train_seconds", "samples_per_second", "best_epoch"} <= set(m)
    tags = run.data.tags
    assert tags["stage"] == "train" and tags["experiment"] == NAME
    assert tags["data_digest"] == meta.data_digest
    assert tags["params_hash"] == meta.params_hash
    assert "budget" not in tags and tags["stopped_by"] == meta.stopped_by
    assert p["versions.keras"] == keras.__version__
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    contexts = {ds.dataset.name: {t.key: t.value for t in ds.tags}["mlflow.data.context"]
                for ds in run.inputs.dataset_inputs}
    assert contexts == {f"{NAME}-train": "training", f"{NAME}-val": "validation"}
    assert {ds.dataset.digest for ds in run.inputs.dataset_inputs} == {meta.data_digest[:32]}
    [logged] = client.search_logged_models(
        [exp.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
    )
    assert logged.name == "model" and logged.model_id == meta.mlflow_model_id
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # set_tracking_uri exports it
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    info = mlflow.models.get_model_info(logged.model_uri)
    assert info.signature.inputs.inputs[0].shape == (-1, -1, 1)
    reloaded = mlflow.keras.load_model(logged.model_uri)
    x = np.zeros((1, 100, 1), np.float32)
    assert reloaded.predict(x, verbose=0).shape == (1, 100, 1)
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"input_example.json", "history.csv"} <= names


def test_rerun_is_deterministic_and_optional_dead_backend_still_writes(trained, tmp_path):
    root, meta = trained
    again = make_repo(tmp_path / "repo", {"uri": DEAD, "required": False})
    meta2 = train_experiment(resolve(load_params(again / "params.yaml"), NAME, again, tuned=True))
    assert meta2.mlflow_run_id is None
    assert json.loads((again / "models" / NAME / "meta.json").read_text())["mlflow_run_id"] is None
    assert (again / "models" / NAME / "model.keras").is_file()
    assert meta2.best_val_loss == pytest.approx(meta.best_val_loss, abs=1e-4)
    assert meta2.params_hash == meta.params_hash


def test_required_dead_backend_fails_before_writing(env, tmp_path):
    root = make_repo(tmp_path / "repo", {"uri": DEAD, "required": True})
    with pytest.raises(tracking.TrackingError, match="unreachable.*tracking.required: false"):
        train_experiment(resolve(load_params(root / "params.yaml"), NAME, root, tuned=True))
    assert not (root / "models").exists()


def _write_best(root: Path, params: dict, **meta) -> None:
    p = root / "reports" / NAME / "best_params.yaml"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(yaml.safe_dump({"params": params, **meta}))


def test_effective_config_uses_best_params_only_when_tuning_enabled(tmp_path):
    root = make_repo(tmp_path / "repo", {"uri": DEAD}, tune_enabled=True, tuned=True)
    best = {"learning_rate": 0.002, "batch_size": 32, "depth": 3, "dropout": 0.1}
    _write_best(root, best, source="optuna", study="s1", best_value=-12.5)
    model_cfg, train_cfg, source = effective_config(load_params(root / "params.yaml"), NAME, root)
    assert (train_cfg.learning_rate, train_cfg.batch_size) == (0.002, 32)
    assert (model_cfg.depth, model_cfg.dropout, model_cfg.filters) == (3, 0.1, 4)
    assert train_cfg.epochs == 2  # quick cap survives the override
    assert source["tuned"] and source["study"] == "s1" and source["best_value"] == -12.5

    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["tune"]["enabled"] = False
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    model_cfg, train_cfg, source = effective_config(load_params(root / "params.yaml"), NAME, root)
    assert train_cfg.learning_rate == 1e-3 and model_cfg.depth == 2
    assert source["source"] == "params.yaml" and not source["tuned"]


def test_best_params_of_a_too_small_study_are_not_used(tmp_path):
    root = make_repo(tmp_path / "repo", {"uri": DEAD}, tune_enabled=True, tuned=True)
    _write_best(root, {"learning_rate": 0.002}, source="optuna", study="s1", best_value=-1.0, n_trials=1)
    params = load_params(root / "params.yaml")
    assert params.tune_settings().min_trials == 2  # quick mode: the smoke study's size
    _, train_cfg, source = effective_config(params, NAME, root)
    assert train_cfg.learning_rate == 1e-3 and not source["tuned"]
    assert "1 of the 2" in source["source"] and "tune.min_trials" in source["source"]
    _write_best(root, {"learning_rate": 0.002}, source="optuna", study="s1", best_value=-1.0,
                n_trials=2)
    _, train_cfg, source = effective_config(params, NAME, root)
    assert train_cfg.learning_rate == 0.002 and source["tuned"]


def test_untuned_experiment_ignores_a_stale_record_and_tuned_one_needs_it(tmp_path):
    root = make_repo(tmp_path / "repo", {"uri": DEAD})
    _write_best(root, {"learning_rate": 0.002}, source="optuna", study="s1", best_value=-1.0,
                n_trials=50)
    _, train_cfg, source = effective_config(load_params(root / "params.yaml"), NAME, root)
    assert train_cfg.learning_rate == 1e-3 and source["source"] == "params.yaml"
    tuned = make_repo(tmp_path / "tuned", {"uri": DEAD}, tuned=True)
    with pytest.raises(DataError, match=r"best_params.yaml is missing.*dvc repro tune@seed-noise"):
        effective_config(load_params(tuned / "params.yaml"), NAME, tuned)


def test_bad_best_params_are_rejected_with_the_file_named(tmp_path):
    root = make_repo(tmp_path / "repo", {"uri": DEAD}, tuned=True)
    params = load_params(root / "params.yaml")
    _write_best(root, {"epochs": 5})
    with pytest.raises(ParamsError, match="best_params.yaml: unknown tunable"):
        effective_config(params, NAME, root)
    _write_best(root, {"dropout": 2.0})
    with pytest.raises(ParamsError, match="best_params.yaml: dropout"):
        effective_config(params, NAME, root)


def test_train_applies_best_params(env, tmp_path):
    root = make_repo(tmp_path / "repo", {"uri": DEAD, "required": False}, tuned=True)
    _write_best(root, {"batch_size": 32, "filters": 2}, source="optuna", study="s", best_value=-1.0,
                untuned_value=-0.5, n_trials=2)
    meta = train_experiment(resolve(load_params(root / "params.yaml"), NAME, root, tuned=True))
    assert meta.tuned is True and meta.config_source.source == "optuna"
    assert meta.config_source.untuned_value == -0.5
    assert meta.train["batch_size"] == 32 and meta.model["filters"] == 2
    assert meta.train["epochs"] == 2 and meta.stopped_by in ("epochs", "early_stopping")
    model = keras.models.load_model(root / "models" / NAME / "model.keras", safe_mode=True,
                                    compile=False)
    first = next(la for la in model.layers if isinstance(la, (keras.layers.Conv1D, keras.layers.Dense)))
    assert (first.filters if isinstance(first, keras.layers.Conv1D) else first.units) == 2


def test_failed_training_keeps_previous_outputs(env, tmp_path):
    root = make_repo(tmp_path / "repo", {"uri": DEAD, "required": False})
    out = root / "models" / NAME
    out.mkdir(parents=True)
    (out / "meta.json").write_text("{}")
    shutil.rmtree(root / "data" / NAME)
    with pytest.raises(Exception, match="missing"):
        train_experiment(resolve(load_params(root / "params.yaml"), NAME, root, tuned=True))
    assert (out / "meta.json").read_text() == "{}"
