"""Test helpers importable from any test module (`from helpers import ...`)."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def save_model_dir(folder: Path, model, rate: int = 16000, frame: int = 256) -> Path:
    """A model folder `enhance` loads: the Keras model plus a minimal meta.json."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model.keras")
    meta = {"experiment": folder.name, "task": "test", "sample_rate": rate,
            "frame_length": frame, "arch": "test"}
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def conv_net(seed: int = 0):
    """A tiny random Conv1D model ('same' padding: position-dependent near frame edges)."""
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((None, 1)),
        keras.layers.Conv1D(4, 9, padding="same", activation="tanh"),
        keras.layers.Conv1D(1, 5, padding="same"),
    ])



def real_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def quick_params(tmp: Path, experiments: list[str] | None = None, **overrides) -> dict:
    """The real params.yaml with base.quick on, tracking in `tmp`, and optional overrides."""
    p = real_params()
    p["base"]["quick"] = True
    p["tracking"]["uri"] = f"sqlite:///{tmp / 'mlflow.db'}"
    if experiments is not None:
        p["experiments"] = {k: v for k, v in p["experiments"].items() if k in experiments}
        p["tune"]["experiments"] = [k for k in p["tune"]["experiments"] if k in experiments]
    for dotted, value in overrides.items():
        node = p
        *head, last = dotted.split(".")
        for k in head:
            node = node.setdefault(k, {})
        node[last] = value
    return p
