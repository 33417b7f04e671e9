"""Orchestration and scaling: no-op `dvc repro`, tuning throughput with 1 vs 2 workers, and
(opt-in, --full) the default `dvc repro` from scratch and `make test`.

Everything that runs stages runs in a temporary copy of the working tree (never in the user's
repo, whose data, models and studies it would overwrite): quick params, one real `dvc repro`,
then repeated no-op repros. The tuning figures run `audiorecon tune` there on fresh journal
files with tiny trials, 1 worker then 2, and count trials per minute between the first trial's
start and the last one's end (process start-up is reported apart as wall time).

    python -m benchmarks.orchestration [--repeats 3] [--tune-trials 6] [--full]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import ROOT, Figure, figure, log, print_figures, run_timed

SECTION_ORCH = "orchestration"
SECTION_SCALE = "scaling"
TARGET_NOOP_S = 5.0
TARGET_FULL_REPRO_S = 45 * 60.0  # issue 18's budget with the speech experiments
TARGET_MAKE_TEST_S = 10 * 60.0
# Last measured values of the opt-in figures, used until a --full run replaces them.
KNOWN_FULL = {
    "full_dvc_repro_s": {"value": 29 * 60 + 48, "measured_on": "2026-12-02T19:26",
                         "source": "README: fresh clone of 01f71db, make install (1 m 09 s) + "
                                   "dvc repro -f (28 m 39 s), every stage"},
    "make_test_s": {"value": 5 * 60 + 14, "measured_on": "2026-12-02",
                    "source": "session log: python -m pytest -q, 831 passed (2 cores)"},
}

def stage_env() -> dict[str, str]:
    """This interpreter's tools on PATH; the user's tracking/study stores never inherited."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "OPTUNA_STORAGE")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = ""
    return env


def copy_repo(dest: Path, quick: bool, tune_enabled: bool | None = None) -> Path:
    """Copy the working tree's files (not data/models/stores: git ignores them) into a git+DVC repo."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file() and not rel.startswith(("reports/benchmarks.", ".venv/")):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["base"]["quick"] = quick
    if quick:  # smallest sizes: the no-op repro needs outputs, not good models
        params["quick"] = {"train": 128, "val": 32, "test": 32, "epochs": 1, "n_trials": 1,
                           "tune_epochs": 1}
    if tune_enabled is not None:
        params["tune"]["enabled"] = tune_enabled
    # Flow style for leaf collections, like the user's file: DVC parses it once per stage.
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, default_flow_style=None))
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], [*git, "commit", "-qm", "bench copy"]):
        subprocess.run(cmd, cwd=dest, check=True, capture_output=True)
    return dest


def noop_repro(repo: Path, repeats: int, env: dict[str, str]) -> tuple[list[Figure], dict[str, Any]]:
    """One real quick `dvc repro`, then `repeats` no-op ones (median wall time)."""
    log("orchestration: quick dvc repro in a temp copy (the no-op needs its outputs)")
    first = run_timed(["dvc", "repro", "-q"], repo, env)
    times, ran = [], []
    for _ in range(max(1, repeats)):
        res = _run(["dvc", "repro"], repo, env)
        if res.returncode:
            raise RuntimeError(f"dvc repro failed in {repo}:\n{res.stderr[-2000:]}")
        times.append(res.elapsed)  # type: ignore[attr-defined]
        ran += [line for line in res.stdout.splitlines() if line.startswith("Running stage")]
    noop = statistics.median(times)
    details: dict[str, Any] = {"noop_runs_s": times, "stages_rerun": ran, "quick_repro_s": first}
    if noop > TARGET_NOOP_S:
        details["profile_noop"] = noop_profile(repo, env)
    figs = [figure(SECTION_ORCH, "no-op dvc repro (quick params, all stages)", noop, "s", TARGET_NOOP_S,
                   "<=", key="noop_dvc_repro_s",
                   note="stages re-ran: " + "; ".join(ran) if ran else ""),
            figure(SECTION_ORCH, "quick dvc repro from scratch (base.quick, tune off)", first, "s",
                   key="quick_dvc_repro_s")]
    return figs, details


def noop_profile(repo: Path, env: dict[str, str], n: int = 8) -> list[dict[str, Any]]:
    """Where a no-op `dvc repro` spends its time: DVC's own cProfile dump, by cumulative time.

    Wrappers that only pass the whole run through (cumulative time >= 90% of the total) are left
    out, so the rows name the expensive steps (YAML parsing, stage status checks, ...).
    """
    import pstats

    dump = repo / ".noop.prof"
    res = _run(["dvc", "repro", "--cprofile-dump", str(dump)], repo, env)
    if res.returncode or not dump.is_file():
        return []
    st = pstats.Stats(str(dump))
    total = max(v[3] for v in st.stats.values())
    rows = sorted(st.stats.items(), key=lambda kv: kv[1][3], reverse=True)
    out = []
    for (f, line, name), v in rows:
        if v[3] >= 0.9 * total or "site-packages" not in f and "dvc" not in f:
            continue
        mod = f.split("site-packages/")[-1]
        pkg = mod.split("/")[0]
        if pkg != "dvc" and any(o["function"].startswith(pkg + "/") for o in out):
            continue  # one row per library (its outermost expensive call); DVC's own steps all
        out.append({"function": f"{mod}:{line}({name})", "calls": int(v[1]),
                    "cumtime_s": round(v[3], 3), "share": round(v[3] / total, 3)})
        if len(out) == n:
            break
    return out


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run and keep the output; the wall time goes in `.elapsed`."""
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    res.elapsed = time.perf_counter() - t0  # type: ignore[attr-defined]
    return res


def study_throughput(journal: Path) -> dict[str, Any]:
    """Trials/minute between the first trial start and the last trial end in a journal file."""
    # One import statement (it binds `optuna` too): isort order cannot then depend on whether
    # an optuna/ study folder exists in the repo root, which makes ruff call optuna first-party.
    import optuna.storages.journal

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    (name,) = optuna.get_all_study_names(storage)
    trials = [t for t in optuna.load_study(study_name=name, storage=storage).trials
              if t.datetime_complete is not None]
    span = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials))
    states: dict[str, int] = {}
    for t in trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    return {"trials": len(trials), "span_s": span.total_seconds(),
            "trials_per_min": 60 * len(trials) / max(span.total_seconds(), 1e-9), "states": states}


def tune_scaling(repo: Path, n_trials: int, repeats: int,
                 env: dict[str, str]) -> tuple[list[Figure], dict[str, Any]]:
    """Tiny trials on seed-noise (quick data already generated), 1 then 2 workers, journal files."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["tune"].update(enabled=True, epochs=1, max_train_frames=256, max_val_frames=64,
                          pruner="none")
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, default_flow_style=None))
    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for r in range(max(1, repeats)):
        for w in (1, 2):
            journal = repo / "optuna" / f"bench-w{w}-r{r}.journal"
            log(f"scaling: {n_trials} tiny trials with {w} worker(s)")
            res = _run([sys.executable, "-m", "pipeline", "tune", "-e", "seed-noise", "--n-trials",
                        str(n_trials), "--workers", str(w), "--storage", f"journal:{journal}"],
                       repo, env)
            if res.returncode:
                raise RuntimeError(f"audiorecon tune failed:\n{res.stderr[-2000:]}")
            runs[w].append({**study_throughput(journal), "wall_s": res.elapsed})  # type: ignore[attr-defined]
    med = {w: statistics.median(x["trials_per_min"] for x in runs[w]) for w in runs}
    wall = {w: statistics.median(x["wall_s"] for x in runs[w]) for w in runs}
    figs = [
        figure(SECTION_SCALE, "tuning trials/min, 1 worker (journal)", med[1], "trials/min",
               key="tune_trials_per_min_w1"),
        figure(SECTION_SCALE, "tuning trials/min, 2 workers (journal)", med[2], "trials/min",
               key="tune_trials_per_min_w2"),
        figure(SECTION_SCALE, "2 workers / 1 worker throughput", med[2] / med[1], "x",
               key="tune_speedup_w2", note=f"{os.cpu_count()} cores; each worker gets cores/workers "
               "TF threads"),
        figure(SECTION_SCALE, "2 workers / 1 worker, wall time incl. start-up", wall[1] / wall[2], "x",
               key="tune_speedup_w2_wall"),
    ]
    return figs, {"n_trials": n_trials, "runs": {str(k): v for k, v in runs.items()},
                  "settings": "seed-noise quick data, tune.epochs 1, 256 train / 64 val frames"}


def full_runs(env: dict[str, str]) -> tuple[list[Figure], dict[str, Any]]:
    """The opt-in figures: default `dvc repro -f` from scratch in a temp copy, and `make test`."""
    with tempfile.TemporaryDirectory(prefix="bench-full-") as d:
        repo = copy_repo(Path(d), quick=False)
        log("full: default dvc repro from scratch (about 20 minutes)")
        full = run_timed(["dvc", "repro", "-f", "-q"], repo, env)
    log("full: make test in the repo (about 10 minutes)")
    test = run_timed(["make", "test"], ROOT, env)
    return [
        figure(SECTION_ORCH, "default dvc repro from scratch", full, "s", TARGET_FULL_REPRO_S, "<=",
               key="full_dvc_repro_s"),
        figure(SECTION_ORCH, "make test", test, "s", TARGET_MAKE_TEST_S, "<=", key="make_test_s"),
    ], {"full_dvc_repro_s": full, "make_test_s": test}


def carried(previous: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Last measured opt-in figures (from the previous report, else KNOWN_FULL), clearly dated."""
    prev = {f["key"]: f for f in (previous or {}).get("figures", [])}
    prev.update({f["key"]: f for f in (previous or {}).get("not_measured_in_this_run", [])})
    out = []
    for key, name, target in (("full_dvc_repro_s", "default dvc repro from scratch", TARGET_FULL_REPRO_S),
                              ("make_test_s", "make test", TARGET_MAKE_TEST_S)):
        p = prev.get(key) or {}
        on = p.get("measured_on") or (previous or {}).get("machine", {}).get("date")
        if p.get("value") is not None and str(on) >= KNOWN_FULL[key]["measured_on"]:
            value, src = p["value"], p.get("source") or "previous reports/benchmarks.json"
        else:  # the newer of the previous report's value and the one recorded here
            k = KNOWN_FULL[key]
            value, on, src = k["value"], k["measured_on"], k["source"]
        f = figure(SECTION_ORCH, name, value, "s", target, "<=", key=key,
                   note=f"not measured in this run; measured {on}")
        out.append({**f, "measured_on": on, "source": src, "measured_in_this_run": False})
    return out


def run(repeats: int = 3, tune_trials: int = 6, tune_repeats: int = 1,
        full: bool = False) -> tuple[list[Figure], dict[str, Any]]:
    env = stage_env()
    figs: list[Figure] = []
    details: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-repo-") as d:
        repo = copy_repo(Path(d), quick=True, tune_enabled=False)
        f, details["noop"] = noop_repro(repo, repeats, env)
        if "profile_noop" in details["noop"]:  # the report lists a section's profile_* entries
            details["profile_noop"] = details["noop"].pop("profile_noop")
        figs += f
        f, details["tune_scaling"] = tune_scaling(repo, tune_trials, tune_repeats, env)
        figs += f
    if full:
        f, details["full"] = full_runs(env)
        figs += f
    return figs, details


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tune-trials", type=int, default=6)
    ap.add_argument("--tune-repeats", type=int, default=1)
    ap.add_argument("--full", action="store_true")
    a = ap.parse_args()
    figs, details = run(a.repeats, a.tune_trials, a.tune_repeats, a.full)
    print_figures(figs)
    print(details)


if __name__ == "__main__":
    main()
