"""`audiorecon verify`: does this run reproduce the committed results?

Compares every number in ``reports/*/metrics.json`` and ``reports/summary.csv`` of the working
tree with the same files at a git revision (HEAD by default, i.e. what the repository
committed). dB figures must agree within a tolerance (0.05 dB by default), every other number
to a relative 1e-3; strings and run ids are not results and are skipped. No TensorFlow.
"""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import UserError

RESULT_FILES = ("reports/*/metrics.json", "reports/summary.csv")
REL_TOL = 1e-3  # numbers that are not dB (fractions, counts, LSD)
SKIP = {"mlflow_run_id", "train_run_id"}


class VerifyError(UserError, RuntimeError):
    """verify cannot compare (not a git checkout, unknown revision, no results)."""


@dataclass(frozen=True)
class Difference:
    file: str
    key: str
    committed: Any
    now: Any

    def __str__(self) -> str:
        delta = ""
        if _is_number(self.committed) and _is_number(self.now):
            delta = f" ({self.now - self.committed:+.4g})"
        return f"{self.file}: {self.key}: committed {self.committed!r}, now {self.now!r}{delta}"


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _git_show(root: Path, rev: str, path: str) -> str | None:
    res = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True,
                         text=True, check=False)
    return res.stdout if res.returncode == 0 else None


def _committed_files(root: Path, rev: str) -> list[str]:
    res = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev, "--", "reports"],
                         cwd=root, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        first = (res.stderr.strip().splitlines() or ["git ls-tree failed"])[0]
        raise VerifyError(f"{root}: cannot read revision {rev!r}: {first}")
    names = res.stdout.split()
    return sorted(n for n in names if n == "reports/summary.csv"
                  or (n.startswith("reports/") and n.endswith("/metrics.json")
                      and n.count("/") == 2))


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def _numbers(path: str, text: str) -> dict[str, Any]:
    """{key: value} of one results file; CSV rows keyed by their first column."""
    out: dict[str, Any] = {}
    if path.endswith(".json"):
        _flatten("", json.loads(text), out)
        return out
    rows = list(csv.DictReader(io.StringIO(text)))
    for row in rows:
        first = next(iter(row))
        for col, cell in row.items():
            if col == first:
                continue
            try:
                value: Any = float(cell) if cell not in ("", None) else None
            except ValueError:
                value = cell
            out[f"{row[first]}.{col}"] = value
    return out


def _differs(key: str, a: Any, b: Any, tol_db: float) -> bool:
    if _is_number(a) and _is_number(b):
        if math.isnan(a) and math.isnan(b):
            return False
        if key.endswith("_db") or "_db." in key:
            return abs(a - b) > tol_db
        return not math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-9)
    if isinstance(a, str) or isinstance(b, str) or isinstance(a, list) or isinstance(b, list):
        return False  # names, run ids, notes: not results
    return a != b  # None vs a number: a result appeared or vanished


def compare(root: str | Path = ".", rev: str = "HEAD", tolerance_db: float = 0.05
            ) -> tuple[list[str], list[Difference]]:
    """(files compared, differences) between the working tree's results and `rev`'s."""
    root = Path(root)
    files = _committed_files(root, rev)
    if not files:
        raise VerifyError(f"revision {rev} has no reports/*/metrics.json or reports/summary.csv")
    diffs: list[Difference] = []
    for name in files:
        committed = _numbers(name, _git_show(root, rev, name) or "")
        path = root / name
        if not path.is_file():
            diffs.append(Difference(name, "(file)", "present", "missing"))
            continue
        now = _numbers(name, path.read_text())
        for key in sorted(set(committed) | set(now)):
            if key.rsplit(".", 1)[-1] in SKIP:
                continue
            a, b = committed.get(key), now.get(key)
            if _differs(key, a, b, tolerance_db):
                diffs.append(Difference(name, key, a, b))
    return files, diffs
