"""dvc.yaml is true to the code: each stage's deps cover every `pipeline` module its command
imports (transitively), its per-experiment tables agree with params.yaml, and nothing a stage
writes escapes its declared outs.

The params side (every key a stage reads is declared) runs the stages for real:
tests/integration/test_params_reads.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, real_params

PKG = ROOT / "pipeline"
OURS = ("pipeline", "benchmarks")  # the packages whose modules stages import


def _module_file(module: str) -> Path:
    path = ROOT / (module.replace(".", "/") + ".py")
    return path if path.is_file() else ROOT / module.replace(".", "/") / "__init__.py"


def _imports(tree: ast.AST, module: str) -> set[str]:
    """`pipeline.*` modules imported anywhere in `tree` (function bodies included: lazy
    imports run too)."""
    package = module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith(OURS)}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = package + (f".{base}" if base else "")
            if not base.startswith(OURS):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if _module_file(sub).is_file() else base)
    return found


def _closure(roots: set[str], entry: str = "") -> set[str]:
    """Every module that runs: imports, their imports, and each one's parent packages (Python
    runs ``pipeline/x/__init__.py`` before ``pipeline.x.y``)."""
    seen: set[str] = {entry} if entry else set()  # the entry module: only its command's body
    todo = list(roots)
    while todo:
        mod = todo.pop()
        if mod in seen or not _module_file(mod).is_file():
            continue
        seen.add(mod)
        todo += _imports(ast.parse(_module_file(mod).read_text()), mod)
        todo += [mod.rsplit(".", k)[0] for k in range(1, mod.count("."))]
    return seen


def _dep_files(dep: str) -> set[str]:
    """The package modules a dvc.yaml dep covers: a file, or every module under a folder."""
    path = ROOT / dep
    if path.is_dir():
        return {f.relative_to(ROOT).as_posix() for f in path.rglob("*.py")}
    return {dep}


def _command_imports(stage_cmd: str) -> set[str]:
    """What `python -m pipeline.stages <command>` imports: the entry module's top level plus
    the body of that command's function."""
    words = stage_cmd.split()
    entry = words[2]
    tree = ast.parse(_module_file(entry).read_text())
    if entry != "pipeline.stages":  # a plain module (benchmarks.*): everything it imports
        return {entry} | _closure(_imports(tree, entry) - {entry}, entry)
    command = words[3]
    top = ast.Module(body=[n for n in tree.body if not isinstance(n, ast.FunctionDef)],
                     type_ignores=[])
    [fn] = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == command]
    direct = (_imports(top, entry) | _imports(fn, entry)) - {entry}
    return {entry} | _closure(direct, entry)


def _stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _body(stage: dict) -> dict:
    return stage.get("do", stage)


@pytest.mark.parametrize("name", sorted(_stages()))
def test_deps_cover_every_imported_module(name):
    stage = _body(_stages()[name])
    deps = [d for d in stage["deps"] if isinstance(d, str)]
    needed = _command_imports(stage["cmd"])
    missing = []
    for mod in sorted(needed):
        path = _module_file(mod).relative_to(ROOT).as_posix()
        if path.endswith("__init__.py") and not _module_file(mod).read_text().strip():
            continue  # an empty package marker
        if not any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps):
            missing.append(path)
    assert not missing, f"dvc.yaml stage {name!r} imports {missing} but does not list them in deps"


@pytest.mark.parametrize("name", sorted(_stages()))
def test_deps_name_no_module_the_command_does_not_import(name):
    """A dep on unused code re-runs the stage for nothing."""
    stage = _body(_stages()[name])
    imported = {_module_file(m).relative_to(ROOT).as_posix()
                for m in _command_imports(stage["cmd"])}
    extra = [d for d in stage["deps"] if isinstance(d, str) and d.startswith(OURS)
             and "${" not in d and not _dep_files(d) <= imported]
    assert not extra, (f"dvc.yaml stage {name!r} depends on {extra}, which its command does not "
                       "import (whole, for a folder)")


def test_deps_are_folders_where_the_stage_imports_the_whole_folder():
    """`pipeline/dsp` rather than its five files, wherever that stays true to the imports."""
    for name, stage in _stages().items():
        body = _body(stage)
        files = [d for d in body["deps"] if d.startswith("pipeline/") and d.endswith(".py")]
        for folder in {Path(d).parent.as_posix() for d in files} - {"pipeline"}:
            inside = _dep_files(folder)
            listed = {d for d in files if d.startswith(folder + "/")}
            assert listed != inside or len(inside) < 2, (
                f"dvc.yaml stage {name!r} lists every module of {folder}/: name the folder")


def test_training_table_lists_every_experiment_and_agrees_with_tune_experiments():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    [table] = [v["trainings"] for v in dvc["vars"] if "trainings" in v]
    params = real_params()
    assert list(table) == list(params["experiments"])
    tuned = params["tune"]["experiments"]
    for name, row in table.items():
        expected = f"reports/{name}/best_params.yaml" if name in tuned else "pipeline/config"
        assert row["tunables"] == expected, name
    assert _stages()["tune"]["foreach"] == "${tune.experiments}"


def test_generation_table_names_the_corpus_for_corpus_experiments():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    [table] = [v["generations"] for v in dvc["vars"] if "generations" in v]
    params = real_params()
    assert list(table) == list(params["experiments"])
    for name, row in table.items():
        corpus = params["experiments"][name]["signal"]["family"] == "corpus"
        assert row["source"] == ("data/corpus" if corpus else "pipeline/dsp/signals.py"), name
    assert _stages()["generate"]["foreach"] == "${generations}"


def test_every_out_is_persisted_so_a_failed_stage_keeps_the_previous_one():
    for name, stage in _stages().items():
        body = _body(stage)
        for kind in ("outs", "metrics", "plots"):
            for entry in body.get(kind, []):
                [(path, opts)] = entry.items() if isinstance(entry, dict) else [(entry, {})]
                assert (opts or {}).get("persist") is True, f"{name}: {kind} {path}"


def test_tracking_is_no_stage_param():
    for name, stage in _stages().items():
        keys = _body(stage).get("params", [])
        assert not [k for k in keys if isinstance(k, str) and k.split(".")[0] == "tracking"], name


def test_summary_and_report_cover_every_experiment():
    names = list(real_params()["experiments"])
    stages = _stages()
    for name in names:
        assert f"reports/{name}/metrics.json" in stages["summary"]["deps"]
        assert f"models/{name}/meta.json" in stages["report"]["deps"]
