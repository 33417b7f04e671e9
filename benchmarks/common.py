"""Shared pieces of the suite: figures with targets, paired medians, machine facts, profiles.

A figure is a plain dict so it goes to JSON, markdown and MLflow unchanged. Timings are medians
of repeats because single wall times on a shared machine swing by tens of percent; ratios are
taken between two sides measured alternately in the same process so both see the same load.
"""

from __future__ import annotations

import cProfile
import datetime as dt
import io
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

Figure = dict[str, Any]


def figure(section: str, name: str, value: float | None, unit: str, target: float | None = None,
           op: str = ">=", note: str = "", key: str | None = None) -> Figure:
    """One row of the report; `met` is None when there is no target (or no value)."""
    met = None
    if target is not None and value is not None:
        met = bool(value >= target) if op == ">=" else bool(value <= target)
    return {"section": section, "key": key or name, "name": name,
            "value": None if value is None else float(value), "unit": unit,
            "target": target, "op": op if target is not None else None, "met": met, "note": note}


def paired_medians(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median wall seconds of each callable, run alternately (a, b, a, b, ...) `repeats` times.

    Alternating puts both sides of a ratio under the same drift in machine load.
    """
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(max(1, repeats)):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(mod: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(mod)
    except Exception:
        return None


def git_commit(root: Path = ROOT) -> str | None:
    res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                         check=False)
    if res.returncode:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                           capture_output=True, text=True, check=False).stdout.strip()
    return res.stdout.strip() + ("+dirty" if dirty else "")


def machine() -> dict[str, Any]:
    """What the figures depend on: cores, CPU, load at start, library versions, code version."""
    try:
        load = [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        load = None
    try:
        mem = next(int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text()
                   .splitlines() if line.startswith("MemTotal"))
    except (OSError, StopIteration):
        mem = None
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "cpu_model": cpu_model(),
        "mem_total_mib": mem,
        "loadavg_at_start": load,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "tensorflow": _version("tensorflow-cpu") or _version("tensorflow"),
        "keras": _version("keras"),
        "dvc": _version("dvc"),
        "optuna": _version("optuna"),
        "git_commit": git_commit(),
    }


def profile_top(fn: Callable[[], Any], n: int = 12) -> list[dict[str, Any]]:
    """cProfile `fn` once; the top `n` functions by own time, as rows for the report."""
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    st = pstats.Stats(prof, stream=io.StringIO())
    total = sum(v[2] for v in st.stats.values()) or 1e-12
    rows = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:n]
    return [{"function": f"{Path(f).name}:{line}({name})", "calls": int(v[1]),
             "tottime_s": round(v[2], 4), "cumtime_s": round(v[3], 4),
             "share": round(v[2] / total, 3)} for (f, line, name), v in rows]


def run_timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None,
              timeout: float | None = None) -> float:
    """Wall seconds of a subprocess; raises with its stderr tail if it fails."""
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                         check=False)
    elapsed = time.perf_counter() - t0
    if res.returncode:
        tail = (res.stderr or res.stdout).strip().splitlines()[-15:]
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}) in {cwd}:\n" + "\n".join(tail))
    return elapsed


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def print_figures(figs: list[Figure]) -> None:
    for f in figs:
        tgt = "" if f["target"] is None else f"  (target {f['op']} {f['target']:g})"
        mark = {True: "  met", False: "  MISSED", None: ""}[f["met"]]
        print(f"{f['name']:<52}{fmt_value(f['value'], f['unit']):>16}{tgt}{mark}")


def fmt_value(v: float | None, unit: str) -> str:
    if v is None:
        return "–"
    if unit == "x":
        return f"{v:,.0f}x" if v >= 100 else f"{v:.1f}x" if v >= 10 else f"{v:.2f}x"
    if unit == "ratio":
        return f"{v:.2f}"
    if unit == "s":
        return f"{int(v // 60)} m {v % 60:04.1f} s" if v >= 60 else f"{v:.2f} s"
    if unit == "FLOP/s":
        return f"{v / 1e9:.2f} GFLOP/s"
    if unit == "FLOP":
        return f"{v / 1e6:.1f} MFLOP"
    if abs(v) >= 1000:
        return f"{v:,.0f} {unit}"
    return f"{v:.3g} {unit}"
