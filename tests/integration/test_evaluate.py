"""evaluate@E and summary on real (quick) data, a tiny saved model and a temp MLflow store."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import quick_params
from typer.testing import CliRunner

from pipeline import tracking
from pipeline.cli import app
from pipeline.config import parse_params, resolve
from pipeline.config.model import UnetCfg
from pipeline.layout import DataError, RepoPaths, read_digest
from pipeline.stages.evaluate import evaluate_experiment
from pipeline.stages.generate import generate_experiment
from pipeline.stages.summary import write_summary

keras = pytest.importorskip("keras")
mlflow = pytest.importorskip("mlflow")

EXPERIMENTS = ["seed-noise", "seed-quantize", "audio-bandwidth"]
MISSING_RUN = "0" * 32  # a train run id the store does not know


def _save_model(repo: Path, name: str, run_id: str | None, model_id: str | None = None) -> None:
    """An untrained small U-Net (the real registered layers, residual) plus meta.json.

    Untrained keeps the module fast; the scores only need to be consistent, not good.
    """
    import pipeline.nn.architectures as models

    p = parse_params(yaml.safe_load((repo / "params.yaml").read_text()))
    exp = p.experiment(name)
    cfg = UnetCfg(depth=2, filters=8, kernel_size=5)
    keras.utils.set_random_seed(0)
    model = models.build_model(cfg, exp.frame_length)
    folder = repo / "models" / name
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model.keras")
    meta = {"mlflow_run_id": run_id, "mlflow_model_id": model_id, "frame_length": exp.frame_length,
            "sample_rate": exp.sample_rate, "data_digest": read_digest(repo / "data" / name)}
    (folder / "meta.json").write_text(json.dumps(meta))


@pytest.fixture(autouse=True)
def _no_uri_env(monkeypatch):
    """mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI, which would beat params' uri."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def _train_run(repo: Path, params, name: str) -> tuple[str, str]:
    """Stand-in for the train stage's run and logged model: the evaluation run must nest under
    the run and link its scores to the model."""
    import pipeline.nn.architectures as models

    tracker = tracking.setup(params.tracking, repo)
    with tracker.start_run(name, f"train-{name}", tags={"stage": "train"}) as run:
        model = models.build_model(UnetCfg(depth=2, filters=8, kernel_size=5),
                                   params.experiment(name).frame_length)
        model_id = run.log_keras_model(model, example=np.zeros((1, 100, 1), np.float32))
        return run.run_id, model_id


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """Data, models and evaluation reports for three experiments (evaluated once per module)."""
    repo = tmp_path_factory.mktemp("evalrepo")
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # left behind by other modules' mlflow calls
    raw = quick_params(repo, EXPERIMENTS)
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    params = parse_params(raw)
    run_id, model_id = _train_run(repo, params, "seed-noise")
    run_ids = {"seed-noise": run_id, "seed-quantize": None, "audio-bandwidth": MISSING_RUN}
    for name in EXPERIMENTS:
        generate_experiment(resolve(params, name, repo))
        _save_model(repo, name, run_ids[name], model_id if name == "seed-noise" else None)
        evaluate_experiment(resolve(params, name, repo))
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    return repo


def _metrics(repo: Path, name: str) -> dict:
    return json.loads((repo / "reports" / name / "metrics.json").read_text())


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_outputs_exist_and_are_sane(repo, name):
    out = repo / "reports" / name
    for f in ("metrics.json", "methods.csv", "gain_by_snr.csv", "figures/examples.png",
              "figures/gain_vs_snr.png", "figures/spectrograms.png", "audio/examples.json"):
        assert (out / f).is_file(), f
    sine = name.startswith("seed-")
    assert (out / "figures" / "gain_by_frequency.png").is_file() == sine
    assert (out / "figures" / "gain_by_frequency.csv").is_file() == sine
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no staging leftovers

    m = _metrics(repo, name)
    for key in ("model_gain_db", "model_gain_median_db", "model_snr_median_db",
                "model_aggregate_gain_db", "model_si_sdr_gain_db", "model_lsd", "best_classical",
                "best_classical_gain_db", "model_minus_best_classical_db", "oracle_gain_db",
                "fraction_of_oracle_gain", "input_snr_median_db", "n_test", "task_facts",
                "data_digest", "mlflow_run_id", "lsd_n_fft", "lsd_units"):
        assert key in m, key
    assert m["n_test"] == 64
    assert m["data_digest"] == read_digest(repo / "data" / name)
    assert m["identity_gain_db"] == pytest.approx(0.0, abs=1e-6)
    assert m["lsd_units"] == "log10 power"
    assert m["lsd_n_fft"] == min(2048, 1024 if name.startswith("audio") else 100)
    assert m["model_minus_best_classical_db"] == pytest.approx(
        m["model_gain_db"] - m["best_classical_gain_db"], abs=2e-4)
    assert isinstance(m["task_facts"], list)

    methods = pd.read_csv(out / "methods.csv")
    assert methods["method"].iloc[0] == "identity"
    ident = methods.set_index("method").loc["identity"]
    assert ident["gain_mean_db"] == pytest.approx(0.0, abs=1e-6)
    assert ident["snr_median_db"] == pytest.approx(m["input_snr_median_db"], abs=1e-3)
    model = methods.set_index("method").loc["model"]
    assert model["gain_mean_db"] == pytest.approx(m["model_gain_db"], abs=1e-3)
    assert np.isfinite(methods[["snr_mean_db", "gain_mean_db", "lsd"]].to_numpy()).all()
    assert ("oracle" in set(methods["method"])) == sine


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_best_classical_is_chosen_on_val(repo, name):
    m = _metrics(repo, name)
    assert "val" in m["best_classical_selected_by"]
    methods = pd.read_csv(repo / "reports" / name / "methods.csv")
    candidates = methods[methods["kind"].isin(["identity", "classical"])]
    assert candidates["val_gain_db"].notna().all()
    assert m["best_classical"] == candidates.loc[candidates["val_gain_db"].idxmax(), "method"]
    assert methods.loc[methods["best_classical"], "method"].tolist() == [m["best_classical"]]
    assert len(candidates) > 1  # real DSP methods competed, not just identity


def test_oracle_fraction_and_task_facts(repo):
    noise = _metrics(repo, "seed-noise")
    assert noise["oracle_gain_db"] > noise["best_classical_gain_db"]
    assert noise["fraction_of_oracle_gain"] == pytest.approx(
        noise["model_gain_db"] / noise["oracle_gain_db"], rel=1e-3, abs=1e-4)
    quant = _metrics(repo, "seed-quantize")
    assert quant["oracle_gain_db"] is not None
    assert any("quantize" in f for f in quant["task_facts"])
    audio = _metrics(repo, "audio-bandwidth")
    assert audio["oracle_gain_db"] is None and audio["fraction_of_oracle_gain"] is None
    assert audio["bound"] is None
    assert any("cannot be predicted" in f for f in audio["task_facts"])
    assert noise["bound"] is None and noise["bound_gain_db"] is None


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_gain_by_snr_table(repo, name):
    t = pd.read_csv(repo / "reports" / name / "gain_by_snr.csv")
    assert {"input_snr_db", "bucket", "n", "model", "best_classical", "oracle"} <= set(t.columns)
    assert t["n"].sum() == 64 and (t["n"] > 0).all()
    assert set(t["bucket"]) <= {"<0", "0-10", "10-20", ">20"}
    centres = {"<0": -5, "0-10": 5, "10-20": 15, ">20": 25}
    assert t["input_snr_db"].tolist() == [centres[b] for b in t["bucket"]]
    assert t["model"].notna().all() and t["best_classical"].notna().all()
    assert t["oracle"].notna().all() if name.startswith("seed-") else t["oracle"].isna().all()
    # n-weighted bucket means give back the overall mean gain
    overall = float((t["model"] * t["n"]).sum() / t["n"].sum())
    assert overall == pytest.approx(_metrics(repo, name)["model_gain_db"], abs=1e-3)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_listening_examples(repo, name):
    """Audible in a browser: >= 8 kHz, >= 1 s, 16-bit, the four versions aligned, in [-1, 1]."""
    import soundfile as sf

    folder = repo / "reports" / name / "audio"
    rec = json.loads((folder / "examples.json").read_text())
    m = _metrics(repo, name)
    assert rec["best_classical"] == m["best_classical"]
    assert rec["sample_rate"] == (1000 if name.startswith("seed-") else 16000)
    assert rec["playback_rate"] == (8000 if name.startswith("seed-") else 16000)
    assert len(rec["examples"]) == 3
    assert sorted(p.name for p in folder.glob("*.wav")) == sorted(
        f for ex in rec["examples"] for f in ex["files"].values())
    snrs = [ex["input_snr_db"] for ex in rec["examples"]]
    assert snrs == sorted(snrs)  # low, middle, high input SNR
    for ex in rec["examples"]:
        assert ex["seconds"] >= 1.0 and len(set(ex["frames"])) == len(ex["frames"])
        data = {k: sf.read(folder / f) for k, f in ex["files"].items()}
        assert {rate for _, rate in data.values()} == {rec["playback_rate"]}
        assert len({len(x) for x, _ in data.values()}) == 1
        peak = max(float(np.max(np.abs(x))) for x, _ in data.values())
        assert 0.8 < peak <= 0.92  # one common gain brings the loudest version near 0.9
        assert sf.info(folder / ex["files"]["clean"]).subtype == "PCM_16"


def test_gain_by_frequency_table(repo):
    t = pd.read_csv(repo / "reports" / "seed-noise" / "figures" / "gain_by_frequency.csv")
    assert {"f_cycles", "f_hz", "n", "model", "best_classical", "oracle"} <= set(t.columns)
    assert t["n"].sum() == 64 and t["f_cycles"].between(1, 9).all()
    assert np.allclose(t["f_hz"], t["f_cycles"] * 1000 / 100)


def _run(repo: Path, name: str):
    m = _metrics(repo, name)
    return m, _client(repo).get_run(m["mlflow_run_id"])


def _client(repo: Path):
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")


def test_mlflow_run_nested_under_train_run(repo):
    m, run = _run(repo, "seed-noise")
    train_id = json.loads((repo / "models/seed-noise/meta.json").read_text())["mlflow_run_id"]
    assert run.data.tags["mlflow.parentRunId"] == train_id
    assert run.data.tags["stage"] == "evaluate" and run.data.tags["train_run_id"] == train_id
    assert run.data.metrics["model_gain_db"] == pytest.approx(m["model_gain_db"])
    assert run.data.metrics["best_classical_gain_db"] == pytest.approx(m["best_classical_gain_db"])
    client = _client(repo)
    assert client.get_experiment(run.info.experiment_id).name == "audiorecon/seed-noise"
    top = {a.path for a in client.list_artifacts(run.info.run_id, "evaluate")}
    assert {"evaluate/metrics.json", "evaluate/methods.csv", "evaluate/gain_by_snr.csv",
            "evaluate/figures", "evaluate/audio"} <= top
    figs = {a.path for a in client.list_artifacts(run.info.run_id, "evaluate/figures")}
    assert "evaluate/figures/examples.png" in figs


def test_scores_are_linked_to_the_logged_model_and_the_test_set(repo):
    m, run = _run(repo, "seed-noise")
    model_id = json.loads((repo / "models/seed-noise/meta.json").read_text())["mlflow_model_id"]
    logged = _client(repo).get_logged_model(model_id)
    linked = {x.key: x for x in logged.metrics if x.run_id == run.info.run_id}
    assert linked["model_gain_db"].value == pytest.approx(m["model_gain_db"])
    assert linked["model_gain_db"].dataset_name == "seed-noise-test"
    contexts = {ds.dataset.name: {t.key: t.value for t in ds.tags}["mlflow.data.context"]
                for ds in run.inputs.dataset_inputs}
    assert contexts == {"seed-noise-test": "evaluation"}


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_versions_are_recorded(repo, name):
    m, run = _metrics(repo, name), None
    assert {"numpy", "scipy", "keras", "mlflow"} <= set(m["versions"])
    if m["mlflow_run_id"]:
        run = _client(repo).get_run(m["mlflow_run_id"])
        assert run.data.params["versions.numpy"] == np.__version__


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_key_metrics_are_the_few_headline_numbers(repo, name):
    """DVC's declared metric: what `dvc exp show` lists, equal to metrics.json's values."""
    m = _metrics(repo, name)
    key = json.loads((repo / "reports" / name / "key_metrics.json").read_text())
    assert 3 <= len(key) <= 6 and all(key[k] == m[k] for k in key)
    assert {"model_gain_db", "model_minus_best_classical_db"} <= set(key)


def test_mlflow_standalone_runs_without_parent(repo):
    _, run = _run(repo, "seed-quantize")  # meta.json has no train run
    assert "mlflow.parentRunId" not in run.data.tags and "train_run_id" not in run.data.tags
    _, run = _run(repo, "audio-bandwidth")  # train run unknown to this store: linked by tag only
    assert "mlflow.parentRunId" not in run.data.tags
    assert run.data.tags["train_run_id"] == MISSING_RUN


def test_summary(repo, monkeypatch):
    monkeypatch.chdir(repo)
    res = CliRunner().invoke(app, ["summary"])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(repo / "reports" / "summary.csv", index_col="experiment")
    assert list(table.index) == EXPERIMENTS
    for col in ("model_gain_db", "best_classical", "best_classical_gain_db", "oracle_gain_db",
                "fraction_of_oracle_gain", "model_snr_median_db", "model_minus_best_classical_db"):
        assert col in table.columns
    assert table.loc["seed-noise", "model_gain_db"] == pytest.approx(
        _metrics(repo, "seed-noise")["model_gain_db"], abs=1e-3)
    md = (repo / "reports" / "summary.md").read_text()
    assert "| seed-noise" in md and "audio-bandwidth" in md


def test_summary_warns_on_missing_and_fails_on_none(tmp_path, repo, caplog):
    params = parse_params(yaml.safe_load((repo / "params.yaml").read_text()))
    other = tmp_path / "r"
    shutil.copytree(repo / "reports" / "seed-noise", other / "reports" / "seed-noise")
    table = write_summary(params, RepoPaths(Path(other)))
    assert list(table.index) == ["seed-noise"]
    assert "seed-quantize" in caplog.text and "audio-bandwidth" in caplog.text
    with pytest.raises(DataError, match="metrics.json"):
        write_summary(params, RepoPaths(Path(tmp_path / "empty")))
    assert not (tmp_path / "empty").exists()


def test_missing_model_writes_nothing(tmp_path, repo, monkeypatch):
    other = tmp_path / "r"
    shutil.copytree(repo / "data" / "seed-noise", other / "data" / "seed-noise")
    shutil.copy(repo / "params.yaml", other / "params.yaml")
    params = parse_params(yaml.safe_load((other / "params.yaml").read_text()))
    with pytest.raises(DataError, match=r"model\.keras: missing"):
        evaluate_experiment(resolve(params, "seed-noise", other))
    assert not (other / "reports").exists()
    monkeypatch.chdir(other)
    res = CliRunner().invoke(app, ["evaluate", "--experiment", "seed-noise"])
    assert res.exit_code == 2 and "model.keras" in res.output and "Traceback" not in res.output
    assert not (other / "reports").exists()


def test_optional_tracking_backend_down(tmp_path, repo):
    """tracking.required false: an unreachable store only warns; reports still get written."""
    other = tmp_path / "r"
    for sub in ("data/seed-quantize", "models/seed-quantize"):
        shutil.copytree(repo / sub, other / sub)
    raw = quick_params(other, ["seed-quantize"], **{"tracking.uri": "http://127.0.0.1:9",
                                                    "tracking.required": False})
    m = evaluate_experiment(resolve(parse_params(raw), "seed-quantize", other))
    assert m["mlflow_run_id"] is None
    assert _metrics(other, "seed-quantize")["model_gain_db"] == m["model_gain_db"]
