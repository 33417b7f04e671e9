"""The library versions a result depends on: train and evaluate record them in their outputs
and MLflow runs, beside the pins of constraints.txt."""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version

PACKAGES = ("tensorflow-cpu", "tensorflow", "keras", "numpy", "scipy", "optuna", "mlflow", "dvc",
            "pandas", "pydantic", "soundfile")


def library_versions() -> dict[str, str]:
    """{package: version} of the installed PACKAGES (those present), plus Python's."""
    out = {"python": sys.version.split()[0]}
    for pkg in PACKAGES:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return out
