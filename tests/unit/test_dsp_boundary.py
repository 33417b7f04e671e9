"""pipeline/dsp stays plain numerical code: no ML frameworks, no tracking, no stage or nn modules.

Checked statically on the source (ast), so imports inside function bodies and behind
``TYPE_CHECKING`` count too, and nothing has to be importable for the test to see them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

DSP = Path(__file__).resolve().parents[2] / "pipeline" / "dsp"
FORBIDDEN_TOP = {"keras", "tensorflow", "optuna", "mlflow"}
ALLOWED_PIPELINE = ("pipeline.dsp", "pipeline.config", "pipeline.errors", "pipeline.io")
MODULES = sorted(DSP.rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(DSP.parents[1]).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Absolute names of every module the file imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                own = _module_name(path)
                package = own if path.name == "__init__.py" else own.rpartition(".")[0]
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            # `from pipeline import tracking` imports pipeline.tracking, not just pipeline
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _pipeline_allowed(name: str) -> bool:
    return any(name == a or name.startswith(a + ".") for a in ALLOWED_PIPELINE)


def test_the_walk_finds_the_dsp_modules():
    found = {_module_name(p) for p in MODULES}
    assert {"pipeline.dsp.metrics", "pipeline.dsp.oracles", "pipeline.dsp.baselines.base"} <= found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(DSP)))
def test_dsp_module_imports_stay_inside_the_boundary(path):
    bad = []
    for name in sorted(imported(path)):
        top = name.split(".")[0]
        if top in FORBIDDEN_TOP or (top == "pipeline" and name != "pipeline" and not _pipeline_allowed(name)):
            bad.append(name)
    assert not bad, f"{path.relative_to(DSP)} imports {bad}"


def test_the_check_catches_hidden_imports(tmp_path):
    src = tmp_path / "mod.py"
    src.write_text(
        "def f():\n    import tensorflow as tf\n    from pipeline import tracking\n"
        "    from pipeline.config import NoiseDeg\n"
    )
    names = imported(src)
    assert "tensorflow" in names and "pipeline.tracking" in names
    assert not _pipeline_allowed("pipeline.tracking") and _pipeline_allowed("pipeline.config.NoiseDeg")
