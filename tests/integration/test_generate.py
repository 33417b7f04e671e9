"""The generate stage for real: byte-identical outputs, atomic writes, DVC caching, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import load_params, resolve
from pipeline.layout import load_split
from pipeline.stages.generate import generate_experiment


def test_same_params_same_bytes(make_repo, tmp_path):
    repo = make_repo()
    p = load_params(repo / "params.yaml")
    a = generate_experiment(resolve(p, "audio-noise", tmp_path / "a"))
    b = generate_experiment(resolve(p, "audio-noise", tmp_path / "b"))
    assert a.digest == b.digest
    for f in (tmp_path / "a/data/audio-noise").iterdir():
        assert f.read_bytes() == (tmp_path / "b/data/audio-noise" / f.name).read_bytes(), f.name


def test_layout_manifest_and_prefix_property(make_repo, tmp_path):
    repo = make_repo(**{"quick.train": 2000})
    p = load_params(repo / "params.yaml")
    generate_experiment(resolve(p, "seed-noise", tmp_path))
    folder = tmp_path / "data/seed-noise"
    clean, degraded = load_split(folder, "train")
    assert clean.shape == (p.experiment("seed-noise").sizes.train, 100)
    assert clean.dtype == np.float32 and degraded.dtype == np.float32
    np.load(folder / "test_clean.npy", allow_pickle=False)
    m = pd.read_csv(folder / "manifest.csv")
    assert {"split", "index", "f", "amplitude", "noise_std", "input_snr_db"} <= set(m.columns)
    assert len(m) == sum(p.experiment("seed-noise").sizes.model_dump().values())
    digest = json.loads((folder / "digest.json").read_text())
    assert digest["frame_length"] == 100 and len(digest["digest"]) == 16
    # n frames are a prefix of n + k frames: growing a split never moves the existing frames.
    repo2 = make_repo(**{"quick.train": 300})
    generate_experiment(resolve(load_params(repo2 / "params.yaml"), "seed-noise", tmp_path / "small"))
    small, _ = load_split(tmp_path / "small/data/seed-noise", "train")
    np.testing.assert_array_equal(small, clean[:300])


def test_splits_and_experiments_use_independent_streams(make_repo, tmp_path):
    p = load_params(make_repo() / "params.yaml")
    generate_experiment(resolve(p, "seed-noise", tmp_path))
    tr, _ = load_split(tmp_path / "data/seed-noise", "train")
    te, _ = load_split(tmp_path / "data/seed-noise", "test")
    n = min(len(tr), len(te))
    assert not np.array_equal(tr[:n], te[:n])


def test_failed_run_keeps_previous_output(make_repo, monkeypatch):
    repo = make_repo()
    monkeypatch.chdir(repo)
    p = load_params("params.yaml")
    generate_experiment(resolve(p, "seed-noise", "."))
    before = (repo / "data/seed-noise/digest.json").read_text()
    import pipeline.stages.generate as g

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(g.pd.DataFrame, "to_csv", boom)
    with pytest.raises(RuntimeError):
        generate_experiment(resolve(p, "seed-noise", "."))
    assert (repo / "data/seed-noise/digest.json").read_text() == before
    assert sorted(x.name for x in (repo / "data").iterdir()) == ["seed-noise"]


def test_cli_bad_params_write_nothing(make_repo, monkeypatch):
    repo = make_repo(**{"experiments.seed-noise.frame_length": -1})
    monkeypatch.chdir(repo)
    res = CliRunner().invoke(app, ["generate", "-e", "seed-noise"])
    assert res.exit_code == 2
    assert "experiments.seed-noise.frame_length" in res.output
    assert not (repo / "data").exists()


def test_cli_degrade_bad_wav_path(make_repo, monkeypatch, tmp_path):
    repo = make_repo()
    monkeypatch.chdir(repo)
    res = CliRunner().invoke(
        app, ["degrade", "-e", "audio-noise", "-i", "missing.wav", "-o", str(tmp_path / "o.wav")]
    )
    assert res.exit_code == 2 and "missing.wav" in res.output
    assert not (tmp_path / "o.wav").exists()


def test_cli_degrade_keeps_rate_and_length(make_repo, monkeypatch, tmp_path):
    import soundfile as sf

    repo = make_repo()
    monkeypatch.chdir(repo)
    t = np.arange(22050 + 17) / 22050
    sf.write(tmp_path / "in.wav", np.stack([np.sin(2 * np.pi * 300 * t)] * 2, 1) * 0.5, 22050)
    for exp in ("audio-noise", "audio-bandwidth"):
        out = tmp_path / f"{exp}.wav"
        res = CliRunner().invoke(app, ["degrade", "-e", exp, "-i", str(tmp_path / "in.wav"),
                                       "-o", str(out), "--seed", "1"])
        assert res.exit_code == 0, res.output
        y, rate = sf.read(out)
        assert rate == 22050 and y.shape == (22050 + 17, 2)


def _dvc(repo, *args):
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True,
                          text=True, check=True).stdout


def test_dvc_repro_generate_caches_and_reruns_only_what_changed(make_repo):
    repo = make_repo(experiments=["seed-noise", "seed-quantize"], with_dvc=True)
    out = _dvc(repo, "repro", "generate")
    assert "generate@seed-noise" in out and "generate@seed-quantize" in out
    again = _dvc(repo, "repro", "generate")
    assert "didn't change" in again and "Running stage" not in again
    # Change one experiment's degradation: only its stage re-runs.
    import yaml

    p = yaml.safe_load((repo / "params.yaml").read_text())
    p["experiments"]["seed-quantize"]["degradation"]["factor"] = 5
    (repo / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    out = _dvc(repo, "repro", "generate")
    assert "Running stage 'generate@seed-quantize'" in out
    assert "Running stage 'generate@seed-noise'" not in out
