"""Test helpers importable from any test module (`from helpers import ...`)."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]



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
