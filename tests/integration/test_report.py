"""The report stage on real evaluate outputs, checked in headless Chromium; `audiorecon compare`.

The module builds one tiny project: real generate and evaluate (an untrained U-Net stands in for
a trained one: the report needs consistent outputs, not good ones), a two-epoch history.csv and
a small trials.csv standing in for train/tune. The whole pipeline, real training included, is
checked by tests/integration/test_pipeline_e2e.py.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf
import yaml
from helpers import quick_params
from typer.testing import CliRunner

from pipeline import tracking
from pipeline.cli import app
from pipeline.config import parse_params, resolve
from pipeline.config.model import UnetCfg
from pipeline.layout import RepoPaths, read_digest
from pipeline.stages.evaluate import evaluate_experiment
from pipeline.stages.generate import generate_experiment
from pipeline.stages.report import build_report
from pipeline.stages.summary import write_summary
from pipeline.tracking import mask_passwords
from pipeline.tracking.uris import public_uri, run_url

keras = pytest.importorskip("keras")

EXPERIMENTS = ["seed-noise", "audio-noise"]  # 1 kHz sines (upsampled audio) and 16 kHz audio


class _Links(HTMLParser):
    """Every src/href of the page, and whether it has any <script>."""

    def __init__(self):
        super().__init__()
        self.refs: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        self.scripts += tag == "script"
        self.refs += [v for k, v in attrs if k in ("src", "href") and v]


def _links(page: Path) -> _Links:
    p = _Links()
    p.feed(page.read_text())
    return p


def _fake_train_and_tune(repo: Path, name: str, exp) -> None:
    """Untrained model + meta.json/history.csv (train's files) and trials.csv (tune's)."""
    import pipeline.nn.architectures as models

    keras.utils.set_random_seed(0)
    model = models.build_model(UnetCfg(depth=2, filters=8, kernel_size=5),
                               exp.frame_length)
    folder = repo / "models" / name
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model.keras")
    meta = {"experiment": name, "frame_length": exp.frame_length, "sample_rate": exp.sample_rate,
            "data_digest": read_digest(repo / "data" / name), "mlflow_run_id": None,
            "train": {"loss": "snr"}, "best_epoch": 2, "epochs_run": 2, "best_val_loss": -12.5}
    (folder / "meta.json").write_text(json.dumps(meta))
    (folder / "history.csv").write_text("epoch,loss,val_loss,epoch_seconds\n"
                                        "1,-10.1,-11.2,3.1\n2,-12.0,-12.5,2.2\n")
    tune = repo / "reports" / name / "tune"
    tune.mkdir(parents=True, exist_ok=True)
    (tune / "trials.csv").write_text("number,value,state,params_learning_rate\n"
                                     "0,-11.0,COMPLETE,0.001\n1,-12.0,COMPLETE,0.0005\n")


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("reportrepo")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    raw = quick_params(repo, EXPERIMENTS)
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    params = parse_params(raw)
    for name in EXPERIMENTS:
        generate_experiment(resolve(params, name, repo))
        _fake_train_and_tune(repo, name, params.experiment(name))
        evaluate_experiment(resolve(params, name, repo))
    write_summary(params, RepoPaths(Path(repo)))
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    cwd = Path.cwd()
    os.chdir(repo)
    try:
        res = CliRunner().invoke(app, ["report"])
    finally:
        os.chdir(cwd)
    assert res.exit_code == 0, res.output
    return repo


# ----------------------------------------------------------------------------- files
def test_report_files_and_relative_links(repo):
    page = repo / "reports" / "index.html"
    assert page.is_file()
    assets = repo / "reports" / "report"
    assert {"summary.png", "seed-noise-training.png", "audio-noise-training.png"} <= {
        p.name for p in assets.iterdir()}
    links = _links(page)
    assert links.scripts == 0  # offline and script-free
    local = [r for r in links.refs if not r.startswith("#")]
    assert len([r for r in local if r.endswith(".wav")]) == 2 * 3 * 4  # 3 examples x 4 versions
    for ref in local:
        assert "://" not in ref and not ref.startswith("/"), ref  # relative, zip-and-go
        assert (repo / "reports" / ref).is_file(), ref
    html = page.read_text()
    for text in ("seed-noise", "audio-noise", "best classical", "oracle", "upsampled to 8000 Hz",
                 read_digest(repo / "data" / "seed-noise"), "params.yaml", "learning_rate"):
        assert text in html, text
    assert not [p.name for p in (repo / "reports").iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_listening_examples(repo, name):
    folder = repo / "reports" / name / "audio"
    rec = json.loads((folder / "examples.json").read_text())
    assert rec["playback_rate"] >= 8000 and rec["upsampled"] == name.startswith("seed-")
    assert len(rec["examples"]) == 3
    for ex in rec["examples"]:
        lengths = set()
        for kind in ("clean", "degraded", "model", "best_classical"):
            info = sf.info(folder / ex["files"][kind])
            assert info.samplerate == rec["playback_rate"] and info.subtype == "PCM_16"
            assert info.duration >= 1.0
            lengths.add(info.frames)
        assert len(lengths) == 1  # the four versions line up sample for sample


def test_report_size_is_small(repo):
    size = sum(p.stat().st_size for p in (repo / "reports").rglob("*") if p.is_file())
    assert size < 3e6, size  # two experiments; the four-experiment report stays under ~5 MB


# ----------------------------------------------------------------------------- browser
def test_report_in_headless_chromium(repo, tmp_path):
    from browser import check_page

    page = check_page(repo / "reports" / "index.html", tmp_path / "report.png")
    assert page.title == "audiorecon report"
    assert len(page.images) >= 10
    assert len(page.audio) == 2 * 3 * 4


# ----------------------------------------------------------------------------- failures, links
def test_failed_build_keeps_previous_report(repo, tmp_path, monkeypatch):
    other = tmp_path / "r"
    shutil.copytree(repo, other, ignore=shutil.ignore_patterns("data", "models", "mlflow.db"))
    before = (other / "reports" / "index.html").read_bytes()
    (other / "reports" / "audio-noise" / "metrics.json").write_text("{not json")
    monkeypatch.chdir(other)
    res = CliRunner().invoke(app, ["report"])
    assert res.exit_code == 2 and "metrics.json" in res.output and "Traceback" not in res.output
    assert (other / "reports" / "index.html").read_bytes() == before
    assert not [p.name for p in (other / "reports").iterdir() if p.name.startswith(".")]


def test_nothing_evaluated_is_one_clear_error(tmp_path, monkeypatch):
    raw = quick_params(tmp_path, EXPERIMENTS)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["report"])
    assert res.exit_code == 2 and "no experiment has a metrics.json" in res.output
    assert not (tmp_path / "reports" / "index.html").exists()


def test_run_links_for_a_tracking_server_hide_the_password(repo, tmp_path):
    other = tmp_path / "r"
    shutil.copytree(repo / "reports", other / "reports")
    raw = quick_params(other, EXPERIMENTS,
                       **{"tracking.uri": "https://alice:s3cret@mlflow.example.org:8443/ml"})
    build_report(parse_params(raw), RepoPaths(Path(other)))
    html = (other / "reports" / "index.html").read_text()
    run_id = json.loads((repo / "reports/seed-noise/metrics.json").read_text())["mlflow_run_id"]
    assert (f'href="https://mlflow.example.org:8443/ml/#/runs/{run_id}'
            '?workflowType=machine_learning"') in html
    assert "s3cret" not in html and "alice:***@mlflow.example.org" in html


def test_uri_helpers():
    assert public_uri("postgresql://u:pw@db:5432/x") == "postgresql://u:***@db:5432/x"
    assert public_uri("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"
    assert run_url("sqlite:////tmp/mlflow.db", "abc") is None
    assert run_url("http://127.0.0.1:5000/", "abc") == (
        "http://127.0.0.1:5000/#/runs/abc?workflowType=machine_learning")
    text = "uri: https://bob:pw@h/x\nstorage: postgresql://u:p%40ss@db/optuna  # sqlite:///a.db\n"
    assert mask_passwords(text) == ("uri: https://bob:***@h/x\nstorage: postgresql://u:***@db/optuna"
                                    "  # sqlite:///a.db\n")


# ----------------------------------------------------------------------------- compare
@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    """A repo whose params point at a real sqlite store with three train runs + evaluations."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    raw = quick_params(tmp_path, ["seed-noise", "audio-noise"])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    params = parse_params(raw)
    tracker = tracking.setup(params.tracking, tmp_path)
    for i, lr in enumerate([1e-3, 3e-4, 1e-4]):
        with tracker.start_run("seed-noise", f"train/seed-noise #{i}", {"stage": "train"}) as run:
            run.log_params({"train": {"learning_rate": lr, "batch_size": 64}, "seed": 1})
            run.log_metrics({"best_val_loss": -20.0 - i, "epochs_run": 3})
            train_id = run.run_id
        with tracker.start_run("seed-noise", "evaluate/seed-noise",
                                {"stage": "evaluate", "train_run_id": train_id}) as run:
            run.log_metrics({"model_gain_db": 10.0 + i, "best_classical_gain_db": 7.5})
        time.sleep(0.02)  # distinct start times: newest first must be well defined
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_compare_table_csv_and_markdown(store):
    res = CliRunner().invoke(app, ["compare", "-e", "seed-noise", "--csv", "cmp.csv",
                                   "--markdown", "cmp.md"])
    assert res.exit_code == 0, res.output
    t = pd.read_csv(store / "cmp.csv")
    assert len(t) == 3
    assert t["train.learning_rate"].tolist() == [1e-4, 3e-4, 1e-3]  # newest first
    assert "train.batch_size" not in t and "seed" not in t  # equal everywhere: left out
    assert t["model_gain_db"].tolist() == [12.0, 11.0, 10.0]  # joined from the evaluate runs
    assert t["best_val_loss"].tolist() == [-22.0, -21.0, -20.0]
    assert set(t["stage"]) == {"train"}
    md = (store / "cmp.md").read_text()
    assert md.startswith("| run_id") and "train.learning_rate" in md
    assert all(run_id[:8] in res.output for run_id in t["run_id"])  # the rich table on stdout

    res = CliRunner().invoke(app, ["compare", "-e", "seed-noise", "--limit", "2", "--csv", "two.csv",
                                   "--stage", "evaluate"])
    assert res.exit_code == 0, res.output
    t = pd.read_csv(store / "two.csv")
    assert len(t) == 2 and t["model_gain_db"].tolist() == [12.0, 11.0]


def test_compare_errors_are_one_line(store):
    res = CliRunner().invoke(app, ["compare", "-e", "audio-noise"])  # no runs logged
    assert res.exit_code == 2 and "audiorecon/audio-noise" in res.output
    assert "Traceback" not in res.output
    res = CliRunner().invoke(app, ["compare", "-e", "seed-noise", "--stage", "tune"])
    assert res.exit_code == 2 and "no tune runs" in res.output
    res = CliRunner().invoke(app, ["compare", "-e", "seed-noise", "--stage", "bogus"])
    assert res.exit_code == 2 and "--stage" in res.output
    raw = yaml.safe_load((store / "params.yaml").read_text())
    raw["tracking"]["uri"] = "http://127.0.0.1:9"
    (store / "params.yaml").write_text(yaml.safe_dump(raw))
    t0 = time.monotonic()
    res = CliRunner().invoke(app, ["compare", "-e", "seed-noise"])
    assert res.exit_code == 2 and "unreachable" in res.output and "Traceback" not in res.output
    assert time.monotonic() - t0 < 30
