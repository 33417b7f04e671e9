"""The package's boundaries, checked: imports only go down the layers, user errors share one
base class, and dvc.yaml's outs are the files pipeline/layout.py names."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest
import yaml
from helpers import ROOT

import pipeline
from pipeline.errors import UserError
from pipeline.layout import STAGE_OUTS, ExperimentPaths, RepoPaths

PKG = ROOT / "pipeline"
# Lower ranks never import higher ones; a package may import itself. (docs/architecture.md)
RANKS = {
    "errors": 0, "versions": 0,
    "layout": 1, "io": 1,
    "config": 2,
    "dsp": 3, "corpus": 3,
    "nn": 4, "tracking": 4, "evaluation": 4,
    "reporting": 5, "enhance": 5, "tuning": 5,
    "console": 6, "stages": 7, "verify": 7,
    "cli": 8, "__main__": 9,
}
HEAVY = ("keras", "tensorflow", "optuna", "mlflow")


def _unit(path: Path) -> str:
    """The top-level unit of a module: its subpackage, or the module itself."""
    return path.relative_to(PKG).parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, function bodies (lazy imports) included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


MODULES = sorted(p for p in PKG.rglob("*.py"))


def test_every_unit_has_a_rank():
    assert {_unit(p) for p in MODULES} - {"__init__"} <= set(RANKS)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PKG).as_posix())
def test_imports_only_go_down(path):
    unit = _unit(path)
    if unit == "__init__":
        return
    up = sorted({m for m in _imports(path) if m.startswith("pipeline.")
                 and (other := m.split(".")[1]) in RANKS and other != unit
                 and RANKS[other] > RANKS[unit]})
    assert not up, f"{path.relative_to(ROOT)} ({unit}, rank {RANKS[unit]}) imports upwards: {up}"


@pytest.mark.parametrize("path", sorted((PKG / "dsp").rglob("*.py")) + [PKG / "layout.py"],
                         ids=lambda p: p.relative_to(PKG).as_posix())
def test_dsp_and_layout_import_no_framework(path):
    heavy = sorted(m for m in _imports(path) if m.split(".")[0] in HEAVY)
    assert not heavy, f"{path.relative_to(ROOT)} imports {heavy}"


def _pipeline_modules():
    for info in pkgutil.walk_packages(pipeline.__path__, "pipeline."):
        if not info.name.endswith("__main__"):
            yield importlib.import_module(info.name)


def test_every_user_facing_error_is_a_user_error():
    """One base class: the command lines map it to one line and exit 2 (pipeline/console.py)."""
    internal = {"DivergedError"}  # a trial's outcome, handled inside the study
    found = {}
    for mod in _pipeline_modules():
        for name, cls in inspect.getmembers(mod, inspect.isclass):
            if issubclass(cls, Exception) and cls.__module__.startswith("pipeline."):
                found[name] = cls
    assert {"ParamsError", "DataError", "AudioError", "TrackingError"} <= set(found)
    strays = sorted(n for n, c in found.items() if n not in internal and not issubclass(c, UserError))
    assert not strays, f"exceptions that are not UserError: {strays}"


def test_console_maps_errors_by_class_not_by_module_name():
    source = (PKG / "console.py").read_text()
    assert "sys.modules" not in source and "except UserError" in source


def _declared_outs() -> dict[str, set[str]]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    out = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        paths = set()
        for kind in ("outs", "metrics", "plots"):
            for entry in body.get(kind, []):
                paths |= set(entry) if isinstance(entry, dict) else {entry}
        # the anchors stage serves one experiment, named in its command
        exp = body["cmd"].split("--experiment ")[-1] if name == "anchors" else "${key}"
        out[name] = {p.replace("${item}", "E").replace("${key}", "E").replace(f"/{exp}/", "/E/")
                     for p in paths}
    return out


def test_dvc_yaml_outs_are_the_layout_files():
    root = Path("/repo")
    exp, repo = ExperimentPaths(root, "E"), RepoPaths(root)
    declared = _declared_outs()
    assert set(declared) == set(STAGE_OUTS)
    for stage, attrs in STAGE_OUTS.items():
        owner = repo if hasattr(repo, attrs[0]) else exp
        expected = {getattr(owner, a).relative_to(root).as_posix() for a in attrs}
        assert declared[stage] == expected, stage
