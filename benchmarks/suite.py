"""`make bench`: run every benchmark section, write reports/benchmarks.{json,md}, log to MLflow.

Sections: generation, training feed, inference, speed (every default model beside the anchors),
limits (fractions of the matmul FLOP/s), orchestration + scaling (temp repo copies). The
slow opt-in figures (default `dvc repro` from scratch, `make test`) run with --full or
BENCH_FULL=1; otherwise their last measured values are carried in a separate, dated section.
Each figure carries its target and whether it was met; missed targets come with a profile.

    python -m benchmarks [--repeats 3] [--full] [--only generation inference] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, Figure, fmt_value, log, machine, print_figures

SECTIONS = ("generation", "feed", "inference", "speed", "limits", "orchestration")
SMOKE_EXPERIMENT = "audio-noise"  # --smoke: one model (trained if present, else random weights)


def run_sections(a: argparse.Namespace) -> tuple[list[Figure], dict[str, Any]]:
    figs: list[Figure] = []
    details: dict[str, Any] = {}
    smoke = a.smoke
    t0 = time.perf_counter()

    def lap(section: str) -> None:
        nonlocal t0
        details[section]["seconds"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
    if "generation" in a.only:
        from benchmarks import generate

        log("generation")
        f, details["generation"] = generate.run(frames=4000 if smoke else 20000,
                                                naive_frames=100 if smoke else 400,
                                                repeats=max(a.repeats, 5))
        figs += f
        lap("generation")
    if "feed" in a.only:
        from benchmarks import train_feed

        log("training feed")
        f, details["feed"] = train_feed.run(steps=4 if smoke else 8, repeats=a.repeats,
                                            experiments=["seed-noise"] if smoke else None)
        figs += f
        lap("feed")
    if "inference" in a.only:
        from benchmarks import enhance

        log("inference")
        f, details["inference"] = enhance.run(repeats=a.repeats, long_seconds=60 if smoke else 600,
                                              use_trained=not a.untrained)
        figs += f
        lap("inference")
    if "speed" in a.only:
        from benchmarks import speed

        log("speed against the anchors")
        f, details["speed"] = speed.run(experiments=[SMOKE_EXPERIMENT] if smoke else None,
                                        seconds=10.0 if smoke else speed.SECONDS, repeats=a.repeats,
                                        use_trained=not a.untrained,
                                        build_missing=smoke or a.untrained)
        figs += f
        lap("speed")
    if "limits" in a.only:
        from benchmarks import limits

        log("against the physical limits (matmul FLOP/s)")
        f, details["limits"] = limits.run(experiments=[SMOKE_EXPERIMENT] if smoke else None,
                                          repeats=a.repeats, use_trained=not a.untrained,
                                          min_timing_s=0.1 if smoke else limits.MIN_TIMING_S)
        figs += f
        lap("limits")
    if "orchestration" in a.only:
        from benchmarks import orchestration

        log("orchestration and scaling")
        f, details["orchestration"] = orchestration.run(repeats=a.repeats,
                                                        tune_trials=4 if smoke else 6,
                                                        tune_repeats=a.tune_repeats, full=a.full)
        figs += f
        lap("orchestration")
    return figs, details


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    model = report["details"].get("inference", {}).get("model")
    lines = [
        f"# Benchmarks ({m['date'][:10]})",
        "",
        f"{m['cores']} cores, {m['cpu_model']}, Python {m['python']}, TensorFlow {m['tensorflow']}, "
        f"commit {m['git_commit']}; load average at start {m['loadavg_at_start']}; "
        f"`{report['command']}` took {report['duration_s'] / 60:.1f} min. "
        f"Medians of {report['settings']['repeats']} repeats; every ratio is paired (both sides "
        "measured alternately in this run)." + (f" Inference model: {model}." if model else ""),
        "",
        "| section | figure | value | target | met? |",
        "|---|---|---|---|---|",
    ]

    def row(f: Figure) -> str:
        tgt = "–" if f["target"] is None else f"{f['op']} {fmt_value(f['target'], f['unit'])}"
        met = {True: "yes", False: "**no**", None: "–"}[f["met"]]
        name = f["name"] + (f" ({f['note']})" if f.get("note") else "")
        return f"| {f['section']} | {name} | {fmt_value(f['value'], f['unit'])} | {tgt} | {met} |"

    lines += [row(f) for f in report["figures"]]
    speed = report["details"].get("speed")
    if speed:
        from benchmarks.speed import markdown_table

        lines += ["", *markdown_table(speed)]
    if report["not_measured_in_this_run"]:
        lines += ["", "## Not measured in this run (last measured values; `make bench-full` measures them)",
                  "", "| section | figure | value | target | met? |", "|---|---|---|---|---|"]
        lines += [row(f) for f in report["not_measured_in_this_run"]]
    profiles = [(sec, k, v) for sec, d in report["details"].items() for k, v in d.items()
                if k.startswith("profile_")]
    if profiles:
        lines += ["", "## Profiles of missed targets", ""]
        for sec, k, rows in profiles:
            lines += [f"`{sec}/{k}`:", ""]
            lines += [f"- {r['share']:.0%} {r['function']} ({r.get('tottime_s', r.get('cumtime_s')):.3f} s"
                      + (" cumulative)" if "tottime_s" not in r else ")") for r in rows[:6]]
            lines += [""]
    return "\n".join(lines).rstrip() + "\n"


def log_mlflow(report: dict[str, Any], json_path: Path, md_path: Path) -> str | None:
    """One run in the `audiorecon/benchmarks` experiment; a missing backend only warns."""
    from pipeline import tracking
    from pipeline.config import TrackingCfg, load_params

    try:
        cfg = load_params(ROOT / "params.yaml").tracking.model_copy(update={"required": False})
    except Exception:
        cfg = TrackingCfg(required=False)
    tracker = tracking.setup(cfg, ROOT)
    if not tracker.enabled:
        return None
    m = report["machine"]
    tags = {"stage": "benchmarks", "cpu_model": m["cpu_model"], "cores": str(m["cores"]),
            "full": str(report["settings"]["full"])}
    if m.get("git_commit"):
        tags["git_commit"] = m["git_commit"]
    with tracker.start_run("benchmarks", f"benchmarks-{m['date'][:19]}", tags) as run:
        run.log_params({"machine": {k: v for k, v in m.items() if k != "date"},
                        "settings": report["settings"]})
        run.log_metrics({f["key"]: f["value"] for f in report["figures"] if f["value"] is not None})
        run.log_metrics({"targets_met": sum(f["met"] is True for f in report["figures"]),
                         "targets_missed": sum(f["met"] is False for f in report["figures"])})
        run.log_artifact(json_path)
        run.log_artifact(md_path)
        return run.run_id


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="repeats per timing (medians)")
    ap.add_argument("--full", action="store_true", default=os.environ.get("BENCH_FULL") == "1",
                    help="also time the default dvc repro from scratch and make test (~35 min more)")
    ap.add_argument("--tune-repeats", type=int, default=1,
                    help="1-vs-2-worker tuning pairs (about 2.5 min each)")
    ap.add_argument("--only", nargs="+", choices=SECTIONS, default=None,
                    help="sections to run (default: all; with --smoke all but orchestration)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks the suite, not the machine")
    ap.add_argument("--untrained", action="store_true", help="benchmark untrained models (random "
                    "weights, params.yaml's architectures) even where models/<E> is trained")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks.json")
    ap.add_argument("--no-mlflow", action="store_true")
    a = ap.parse_args(argv)
    if a.only is None:
        # orchestration's quick `dvc repro` from scratch alone takes ~7 min on 2 cores (corpus and
        # speech stages included): --smoke checks it only when asked (--only ... orchestration)
        a.only = [s for s in SECTIONS if not (a.smoke and s == "orchestration")]
    os.chdir(ROOT)  # params.yaml, models/ and reports/ are read relative to the repo
    t0 = time.perf_counter()
    info = machine()
    previous = None
    if a.out.is_file():
        try:
            previous = json.loads(a.out.read_text())
        except (OSError, json.JSONDecodeError):
            previous = None
    figs, details = run_sections(a)
    from benchmarks.orchestration import carried

    measured = {f["key"] for f in figs}
    report = {
        "schema_version": 1,
        "command": ("python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:])).strip(),
        "machine": info,
        "settings": {"repeats": a.repeats, "tune_repeats": a.tune_repeats, "full": a.full,
                     "smoke": a.smoke, "sections": a.only},
        "duration_s": time.perf_counter() - t0,
        "figures": figs,
        "not_measured_in_this_run": [f for f in carried(previous) if f["key"] not in measured],
        "details": details,
    }
    report["summary"] = {"met": sum(f["met"] is True for f in figs),
                         "missed": sum(f["met"] is False for f in figs)}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    md_path = a.out.with_suffix(".md")
    a.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    md_path.write_text(markdown(report))
    if not a.no_mlflow:
        run_id = log_mlflow(report, a.out, md_path)
        log(f"MLflow run {run_id} in audiorecon/benchmarks" if run_id else "MLflow logging skipped")
    print_figures(figs)
    print(f"\nwrote {a.out} and {md_path} in {report['duration_s'] / 60:.1f} min: "
          f"{report['summary']['met']} targets met, {report['summary']['missed']} missed")


if __name__ == "__main__":
    main()
