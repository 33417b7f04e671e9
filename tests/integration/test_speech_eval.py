"""evaluate@E with speech metrics on a tiny 16 kHz experiment (noise kinds injected into its
manifest), then the report with an anchors.csv beside it; and `audiorecon score`'s speech
columns and errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import quick_params
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import parse_params, resolve
from pipeline.layout import RepoPaths, read_digest

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.timeout(600)
NAME = "speechy"
KINDS = ("babble", "hum", "white")


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    import pipeline.nn.architectures as models
    from pipeline.config.model import UnetCfg
    from pipeline.stages.evaluate import evaluate_experiment
    from pipeline.stages.generate import generate_experiment

    repo = tmp_path_factory.mktemp("speechrepo")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    raw = quick_params(repo, ["audio-noise"], **{"tracking.required": False})
    exp = raw["experiments"].pop("audio-noise")
    exp.update(frame_length=8192, sizes={"train": 16, "val": 8, "test": 12},
               metrics=["snr", "si_sdr", "pesq", "stoi", "lsd"])
    raw["experiments"] = {NAME: exp}
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    params = parse_params(raw)
    generate_experiment(resolve(params, NAME, repo))
    man_path = repo / "data" / NAME / "manifest.csv"
    man = pd.read_csv(man_path)
    man["noise_kind"] = [KINDS[i % 3] for i in range(len(man))]
    man["snr_db"] = np.tile([0.0, 5.0, 10.0, 20.0], len(man) // 4 + 1)[:len(man)]
    man.to_csv(man_path, index=False)
    keras.utils.set_random_seed(0)
    model = models.build_model(UnetCfg(depth=2, filters=8, kernel_size=5), exp["frame_length"])
    folder = repo / "models" / NAME
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")
    (folder / "meta.json").write_text(json.dumps({
        "frame_length": exp["frame_length"], "sample_rate": exp["sample_rate"],
        "data_digest": read_digest(repo / "data" / NAME)}))
    evaluate_experiment(resolve(params, NAME, repo))
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    return repo


def test_speech_tables_and_metrics(repo):
    out = repo / "reports" / NAME
    frames = pd.read_csv(out / "scores_by_frame.csv")
    assert list(frames.columns[:4]) == ["index", "noise_kind", "snr_bucket_db", "method"]
    assert {"pesq", "stoi", "lsd", "si_sdr_db", "snr_db"} <= set(frames.columns)
    assert frames["method"].iloc[0] == "input" and "identity" not in set(frames["method"])
    assert len(frames) == 12 * frames["method"].nunique()
    by_kind = pd.read_csv(out / "scores_by_kind.csv")
    assert set(by_kind["noise_kind"]) == set(KINDS)
    by_snr = pd.read_csv(out / "scores_by_snr.csv")
    assert set(by_snr["snr_bucket_db"]) == {0.0, 5.0, 10.0, 20.0}
    head = pd.read_csv(out / "scores_headline.csv").set_index("method")
    assert head.at["input", "pesq_gain"] == pytest.approx(0.0)
    assert head.at["input", "n"] == 9  # the 20 dB frames are outside the 0/5/10 dB buckets
    m = json.loads((out / "metrics.json").read_text())
    assert m["speech.model.pesq"] == pytest.approx(head.at["model", "pesq"], abs=1e-3)
    assert m["speech.model.stoi"] == pytest.approx(head.at["model", "stoi"], abs=1e-3)
    assert "mean over noise kinds" in m["speech.headline_rule"]
    best = m["best_classical"]
    assert m["speech.model_minus_best_classical.si_sdr_db"] == pytest.approx(
        head.at["model", "si_sdr_db"] - head.at["input" if best == "identity" else best,
                                                "si_sdr_db"], abs=2e-3)
    key = json.loads((out / "key_metrics.json").read_text())
    assert {"speech.model.pesq", "speech.model.stoi", "speech.model.si_sdr_db"} <= set(key)
    kinds = json.loads((out / "audio" / "noise_kinds.json").read_text())
    assert [e["noise_kind"] for e in kinds["examples"]] == sorted(KINDS)
    for e in kinds["examples"]:
        assert all((out / "audio" / f).is_file() for f in e["files"].values())


def test_report_shows_speech_tables_with_anchors(repo):
    from pipeline.config import load_params
    from pipeline.stages.report import build_report

    frames = pd.read_csv(repo / "reports" / NAME / "scores_by_frame.csv")
    idx = sorted(set(frames["index"]))
    pd.DataFrame({"index": idx, "method": "deepfilternet3", "si_sdr_db": 12.0, "snr_db": 11.0,
                  "pesq": 3.1, "stoi": 0.93, "rtf": 0.05}).to_csv(
        repo / "reports" / NAME / "anchors.csv", index=False)
    (repo / "reports" / "summary.csv").write_text("experiment\n")
    build_report(load_params(repo / "params.yaml"), RepoPaths(repo))
    page = (repo / "reports" / "index.html").read_text()
    assert "Speech metrics" in page and "deepfilternet3" in page and "anchor" in page
    assert "Per noise kind" in page and "kind-babble-model.wav" in page
    assert f"{NAME}-speech.png" in page
    assert (repo / "reports" / "report" / f"{NAME}-speech.png").is_file()


def test_score_cli_speech_columns_and_errors(tmp_path):
    import soundfile as sf

    from benchmarks.anchors import voiced_like

    clean = voiced_like(1.0, seed=3)
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "c.wav", clean, 16000)
    sf.write(tmp_path / "e.wav", clean + 0.05 * rng.standard_normal(len(clean)), 16000)
    sf.write(tmp_path / "short.wav", clean[8000:9600], 16000)
    sf.write(tmp_path / "short_e.wav", clean[8000:9600], 16000)
    runner = CliRunner()
    ok = runner.invoke(app, ["score", "--clean", str(tmp_path / "c.wav"),
                             "--estimate", str(tmp_path / "e.wav")])
    assert ok.exit_code == 0, ok.output
    assert "PESQ-WB" in ok.output and "STOI" in ok.output
    short = runner.invoke(app, ["score", "--clean", str(tmp_path / "short.wav"),
                                "--estimate", str(tmp_path / "short_e.wav")])
    assert short.exit_code == 2 and "too short" in short.output
    plain = runner.invoke(app, ["score", "--clean", str(tmp_path / "short.wav"),
                                "--estimate", str(tmp_path / "short_e.wav"), "--no-speech"])
    assert plain.exit_code == 0 and "PESQ" not in plain.output
