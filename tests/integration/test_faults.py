"""Bad input through the real CLI (`python -m pipeline ...` in a subprocess), one row per fault:
each gives exit code 2, one `error:` line naming the problem, no traceback, and leaves every
file of the repository byte-for-byte and mtime-for-mtime as it was.

The same faults are checked at the API level, with finer detail, in tests/unit/test_config.py
(params), tests/unit/test_audio.py (WAV reading), tests/integration/test_streaming.py (model
folders) and tests/integration/test_tune.py (storage URLs); this table is the CLI-level, no-
damage check over all of them. Faults of running services (a stopped MLflow server, a killed
tuning worker) are in tests/services/.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from helpers import quick_params

from pipeline.config import load_params, resolve
from pipeline.stages.generate import generate_experiment

EXP = "seed-noise"
SECRET = "s3cret-pw"
RATE = 16000
pytestmark = pytest.mark.timeout(300)


# ----------------------------------------------------------------------------- the repository
@pytest.fixture(scope="module")
def base_repo(tmp_path_factory) -> Path:
    """Generated data, placeholder model outputs, a good WAV, an earlier output WAV, and a
    model folder whose model.keras is not a Keras file."""
    repo = tmp_path_factory.mktemp("faults") / "repo"
    repo.mkdir()
    raw = quick_params(repo, [EXP, "audio-noise"])
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    generate_experiment(resolve(load_params(repo / "params.yaml"), EXP, repo))
    models = repo / "models" / EXP
    models.mkdir(parents=True)
    for name in ("model.keras", "meta.json", "history.csv"):
        (models / name).write_bytes(os.urandom(64))  # stands for an earlier run's outputs
    t = np.arange(RATE // 4) / RATE
    sf.write(repo / "good.wav", 0.3 * np.sin(2 * np.pi * 440 * t), RATE, subtype="PCM_16")
    sf.write(repo / "out.wav", np.zeros(100), RATE, subtype="PCM_16")
    bad = repo / "models" / "not-keras"
    bad.mkdir()
    (bad / "model.keras").write_text("<html>403 Forbidden</html>\n")
    (bad / "meta.json").write_text(json.dumps(
        {"experiment": "x", "task": "t", "sample_rate": RATE, "frame_length": 256, "arch": "x"}))
    return repo


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime of every file below `root`: equal snapshots mean nothing was touched."""
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*")) if p.is_file()
    }


# ----------------------------------------------------------------------------- the faults
def _edit_params(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def setup(repo: Path) -> None:
        raw = yaml.safe_load((repo / "params.yaml").read_text())
        edit(raw)
        (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return setup


def _exp(**values) -> Callable[[Path], None]:
    return _edit_params(lambda raw: raw["experiments"][EXP].update(values))


def _malformed_yaml(repo: Path) -> None:
    with (repo / "params.yaml").open("a") as fh:
        fh.write("\nexperiments: [unclosed\n")


def _wav(make: Callable[[Path], None]) -> Callable[[Path], None]:
    return lambda repo: make(repo / "in.wav")


def _truncated(path: Path) -> None:
    sf.write(path, np.full(4000, 0.1), RATE, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:-3001])


def _nan(path: Path) -> None:
    x = np.full(4000, 0.1, dtype=np.float32)
    x[1234] = np.nan
    sf.write(path, x, RATE, subtype="FLOAT")


def _lambda_model(repo: Path) -> None:
    """A model whose Lambda layer carries Python bytecode: safe_mode must refuse to run it."""
    import keras

    folder = repo / "models" / "lambda"
    folder.mkdir(parents=True)
    model = keras.Sequential([keras.Input((None, 1)), keras.layers.Lambda(lambda x: x * 2.0)])
    model.save(folder / "model.keras")
    (folder / "meta.json").write_text(json.dumps(
        {"experiment": "x", "task": "t", "sample_rate": RATE, "frame_length": 256, "arch": "x"}))


def _best_params(text: str) -> Callable[[Path], None]:
    def setup(repo: Path) -> None:
        (repo / "reports" / EXP).mkdir(parents=True, exist_ok=True)
        (repo / "reports" / EXP / "best_params.yaml").write_text(text)
    return setup


DEGRADE = ["degrade", "-e", "audio-noise", "-i", "in.wav", "-o", "out.wav"]


@dataclass
class Fault:
    id: str
    argv: list[str]
    setup: Callable[[Path], None] | None
    needle: str  # in the one error line (case-insensitive)
    env: dict[str, str] = field(default_factory=dict)


FAULTS = [
    Fault("params-malformed-yaml", ["generate", "-e", EXP], _malformed_yaml, "malformed YAML"),
    Fault("params-not-a-mapping", ["check"],
          lambda r: (r / "params.yaml").write_text("- a\n- list\n"), "expected a mapping"),
    Fault("params-unknown-key", ["train", "-e", EXP], _exp(frame_lenght=100), "frame_lenght"),
    Fault("params-out-of-range", ["generate", "-e", EXP], _exp(frame_length=-5),
          "experiments.seed-noise.frame_length"),
    Fault("params-probability-above-1", ["tune", "-e", EXP],
          _edit_params(lambda r: r["experiments"][EXP]["degradation"].update(
              impulse_prob=[0.0, 1.5])), "impulse_prob"),
    Fault("params-unknown-experiment", ["generate", "-e", "seed-nois"], None, "did you mean"),
    Fault("best-params-malformed", ["train", "-e", EXP], _best_params("params: [1, 2\n"),
          "malformed YAML"),
    Fault("best-params-unknown-tunable", ["train", "-e", EXP],
          _best_params("params: {momentum: 0.9}\n"), "momentum"),
    Fault("wav-truncated", DEGRADE, _wav(_truncated), "truncated"),
    Fault("wav-empty", DEGRADE, _wav(lambda p: p.write_bytes(b"")), "empty"),
    Fault("wav-not-audio", DEGRADE, _wav(lambda p: p.write_text("meeting notes\n" * 50)),
          "not a readable audio file"),
    Fault("wav-nan", DEGRADE, _wav(_nan), "nan"),
    Fault("wav-missing", DEGRADE, None, "no such file"),
    Fault("model-not-keras", ["enhance", "-m", "models/not-keras", "-i", "good.wav", "-o", "out.wav"],
          None, "not a Keras 3 model archive"),
    Fault("model-with-code-refused-by-safe-mode",
          ["enhance", "-m", "models/lambda", "-i", "good.wav", "-o", "out.wav"], _lambda_model,
          "safe_mode"),
    Fault("model-missing", ["enhance", "-m", "models/nope", "-i", "good.wav", "-o", "out.wav"],
          None, "no such model folder"),
    Fault("storage-unreachable", ["tune", "-e", EXP, "--storage",
                                  f"postgresql://bob:{SECRET}@127.0.0.1:1/optuna"],
          None, "cannot open Optuna storage postgresql://bob:***@127.0.0.1:1/optuna"),
    Fault("storage-unreachable-env", ["tune", "-e", EXP], None, "cannot open Optuna storage",
          env={"OPTUNA_STORAGE": f"postgresql+psycopg2://bob:{SECRET}@127.0.0.1:1/optuna"}),
    Fault("storage-unknown-scheme", ["tune", "-e", EXP, "--storage", f"nosuchdb://bob:{SECRET}@h/x"],
          None, "cannot open Optuna storage"),
    Fault("tracking-unreachable", ["train", "-e", EXP],
          _best_params("params: {learning_rate: 0.001}\nsource: optuna\nn_trials: 2\n"),
          "MLflow tracking backend http://127.0.0.1:9 unreachable",
          env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}),
]


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
def test_fault_gives_one_message_and_changes_nothing(fault, base_repo, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(base_repo, repo)
    if fault.setup is not None:
        fault.setup(repo)
    before = snapshot(repo)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OPTUNA_"))}
    env.update(CI="true", MLFLOW_DISABLE_TELEMETRY="true", **fault.env)
    res = subprocess.run([sys.executable, "-m", "pipeline", *fault.argv], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=240)
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert res.returncode == 2, res.stdout + res.stderr
    assert len(errors) == 1, res.stderr
    assert fault.needle.lower() in errors[0].lower(), errors[0]
    assert "Traceback" not in res.stderr + res.stdout
    assert SECRET not in res.stderr + res.stdout
    assert snapshot(repo) == before  # nothing written, nothing replaced, no temp files left


# ----------------------------------------------------------------------------- unsafe loading
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
PIPELINE = Path(__file__).resolve().parents[2] / "pipeline"


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            kw = {k.arg: k.value for k in node.keywords}
            yield node, name, kw


def test_pipeline_never_unpickles():
    """Data and models are read by formats that cannot run code: .npy without pickles, Keras
    archives with safe_mode, YAML with safe_load. A scan of pipeline/ keeps it that way."""
    problems = []
    for path in sorted(PIPELINE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                bad = [n for n in names if n and n.split(".")[0] in UNSAFE_MODULES]
                if bad:
                    problems.append(f"{path.name}:{node.lineno}: imports {bad}")
        for node, name, kw in _calls(tree):
            where = f"{path.name}:{node.lineno}"
            if "allow_pickle" in kw and not (isinstance(kw["allow_pickle"], ast.Constant)
                                             and kw["allow_pickle"].value is False):
                problems.append(f"{where}: allow_pickle is not False")
            if name == "load" and isinstance(node.func, ast.Attribute) and getattr(
                    node.func.value, "id", "") in ("np", "numpy") and "allow_pickle" not in kw:
                problems.append(f"{where}: np.load without allow_pickle=False")
            if name == "load_model" and not (isinstance(kw.get("safe_mode"), ast.Constant)
                                             and kw["safe_mode"].value is True):
                problems.append(f"{where}: load_model without safe_mode=True")
            if name in ("read_pickle", "enable_unsafe_deserialization", "unsafe_load", "full_load"):
                problems.append(f"{where}: {name}")
            if name == "load" and getattr(node.func, "value", None) is not None and getattr(
                    node.func.value, "id", "") == "yaml":
                problems.append(f"{where}: yaml.load (use yaml.safe_load)")
    assert not problems, problems
    n_loads = sum(name == "load_model" for p in PIPELINE.rglob("*.py")
                  for _, name, _ in _calls(ast.parse(p.read_text())))
    assert n_loads >= 2  # streaming and evaluate: the scan sees the real call sites
