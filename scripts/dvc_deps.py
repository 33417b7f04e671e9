"""Rewrite each dvc.yaml stage's `pipeline/...` deps from the imports its command runs.

    python scripts/dvc_deps.py          # rewrite dvc.yaml in place
    python scripts/dvc_deps.py --check  # exit 1 if dvc.yaml differs

Folder deps where the stage runs every module of the folder, files elsewhere; the same rule
tests/unit/test_dvc_yaml.py enforces. Run it after moving code between modules.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "unit")]

import test_dvc_yaml as rules  # noqa: E402  the import-closure rules live with their test


def minimal_deps(cmd: str) -> list[str]:
    files = {rules._module_file(m).relative_to(ROOT).as_posix()
             for m in rules._command_imports(cmd)}
    deps = set(files)
    folders = {p.as_posix() for f in files for p in Path(f).parents} - {"pipeline", "benchmarks", "."}
    for folder in sorted(folders, key=lambda d: -d.count("/")):  # innermost first
        inside = rules._dep_files(folder)
        if len(inside) >= 2 and inside <= files:
            deps = {d for d in deps if not d.startswith(folder + "/")} | {folder}
    return sorted(deps)


def rewrite(text: str) -> str:
    stages = rules._stages()
    out, stage, in_deps = [], None, False
    for line in text.splitlines(keepends=True):
        m = re.match(r"^  ([\w-]+):\s*$", line)
        if m and m.group(1) in stages:
            stage = m.group(1)
        if re.match(r"^\s+deps:\s*$", line):
            in_deps, indent = True, None
            out.append(line)
            continue
        if in_deps:
            dm = re.match(r"^(\s+)- (\S+)\s*$", line)
            if dm and dm.group(2).startswith(rules.OURS):
                if indent is None:
                    indent = dm.group(1)
                    out += [f"{indent}- {d}\n" for d in
                            minimal_deps(rules._body(stages[stage])["cmd"])]
                continue
            if not dm:
                in_deps = False
        out.append(line)
    return "".join(out)


if __name__ == "__main__":
    path = ROOT / "dvc.yaml"
    new = rewrite(path.read_text())
    if "--check" in sys.argv:
        sys.exit(0 if new == path.read_text() else 1)
    path.write_text(new)
