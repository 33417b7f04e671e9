"""Lines per module and the longest functions of the package (issue 17's before/after figures).

    python scripts/code_stats.py [--top 15] [package_dir]
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path


def functions(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found.append((node.end_lineno - node.lineno + 1, f"{path}:{node.lineno} {node.name}"))
    return found


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("package", nargs="?", default="pipeline")
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    files = sorted(Path(args.package).rglob("*.py"))
    sizes = sorted(((len(f.read_text().splitlines()), str(f)) for f in files), reverse=True)
    total = sum(n for n, _ in sizes)
    print(f"{len(files)} modules, {total} lines; over 400 lines: "
          f"{sum(n > 400 for n, _ in sizes)}; largest 4 hold {sum(n for n, _ in sizes[:4]) / total:.0%}")
    for n, f in sizes[: args.top]:
        print(f"  {n:5d}  {f}")
    funcs = sorted((fn for f in files for fn in functions(f)), reverse=True)
    print(f"functions over 60 lines: {sum(n > 60 for n, _ in funcs)}; longest:")
    for n, where in funcs[: args.top]:
        print(f"  {n:5d}  {where}")


if __name__ == "__main__":
    main()
