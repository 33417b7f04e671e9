"""`audiorecon`: the command line over the pipeline's stages and the tools for users' own WAV files.

Every command validates params.yaml first (where it reads it) and turns a bad input into one
message on stderr and exit code 2; heavy libraries are imported inside the commands that use them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pipeline.config import load_params
from pipeline.console import err, friendly, out
from pipeline.stages import STAGE_COMMANDS

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="audiorecon: train neural networks that reconstruct degraded audio (DVC + Keras + MLflow).",
)

ParamsOpt = Annotated[Path, typer.Option("--params", "-p", help="params file to validate and use")]
ExpOpt = Annotated[str, typer.Option("--experiment", "-e", help="experiment name from params.yaml")]


def _fmt(cfg) -> str:
    """`family k=v ...` with ranges as lo..hi: one readable line per config block."""
    d = cfg.model_dump(exclude_none=True)
    head = d.pop("family", None) or d.pop("kind", None) or d.pop("arch", None) or ""
    parts = [f"{k}={v[0]}..{v[1]}" if isinstance(v, tuple) else f"{k}={v}" for k, v in d.items()]
    return " ".join([head, *parts]).strip()


def _params(path: Path):
    return load_params(path)


@app.command()
@friendly
def check(params: ParamsOpt = Path("params.yaml")) -> None:
    """Validate params.yaml and print the resolved experiments."""
    p = _params(params)
    out.print(f"[green]{params}: valid[/] (seed {p.base.seed}{', quick' if p.base.quick else ''})")
    for name in p.experiments:
        e = p.experiment(name)
        out.print(
            f"[bold]{name}[/]: {_fmt(e.signal)} -> {_fmt(e.degradation)}; "
            f"T={e.frame_length} @ {e.sample_rate} Hz; "
            f"frames {e.sizes.train}/{e.sizes.val}/{e.sizes.test}; {_fmt(e.model)}; {_fmt(e.train)}",
            highlight=False,
        )
    t = p.tune_settings()
    out.print(f"tune: enabled={t.enabled} n_trials={t.n_trials} workers={t.workers} "
              f"sampler={t.sampler} pruner={t.pruner} space={sorted(t.space)}")


for _command in STAGE_COMMANDS:  # the DVC stages, also as `audiorecon <stage>`
    app.command()(_command)


@app.command()
@friendly
def compare(
    experiment: ExpOpt,
    params: ParamsOpt = Path("params.yaml"),
    stage: Annotated[str, typer.Option(
        help="runs to compare: train (with its evaluation's gains), evaluate, tune, tune-trial, all")
    ] = "train",
    limit: Annotated[int, typer.Option(min=1, help="newest runs to show")] = 10,
    csv: Annotated[Path | None, typer.Option(help="also write the table as CSV")] = None,
    markdown: Annotated[Path | None, typer.Option(help="also write the table as Markdown")] = None,
) -> None:
    """Compare MLflow runs of an experiment: params that differ and key metrics, newest first."""
    from pipeline.tracking import resolve_uri
    from pipeline.tracking.compare import compare_runs, write_table

    p = _params(params)
    p.experiment(experiment)
    uri = resolve_uri(p.tracking, Path("."))
    table = compare_runs(uri, experiment, stage=stage, limit=limit)
    # On screen like MLflow's compare view: one column per run, one row per field.
    which = "" if stage == "all" else f" {stage}"
    rich = Table(title=f"audiorecon/{experiment}: {len(table)}{which} run(s), newest first")
    rich.add_column("run", style="bold", overflow="fold")
    for run_id in table["run_id"]:
        rich.add_column(str(run_id)[:8])
    for col in table.columns.drop("run_id"):
        rich.add_row(col, *("–" if v is None or v != v else f"{v:.4g}" if isinstance(v, float)
                            else str(v) for v in table[col]))
    out.print(rich)
    for path, kind in ((csv, "csv"), (markdown, "markdown")):
        if path is not None:
            write_table(table, path, kind)
            out.print(f"{path}: written")


@app.command()
@friendly
def degrade(
    experiment: ExpOpt,
    input: Annotated[Path, typer.Option("--input", "-i", help="clean WAV/FLAC file")],
    output: Annotated[Path, typer.Option("--output", "-o", help="degraded file to write")],
    seed: Annotated[int, typer.Option(help="seed of the degradation's random draws")] = 0,
    params: ParamsOpt = Path("params.yaml"),
    subtype: Annotated[str, typer.Option(help="soundfile subtype of the output")] = "FLOAT",
) -> None:
    """Apply an experiment's degradation to a WAV file (kept at its own rate and length)."""
    import numpy as np

    from pipeline.dsp.degradations import apply_long
    from pipeline.io.audio import read_audio, write_audio_atomic

    p = _params(params)
    exp = p.experiment(experiment)
    x, rate, _ = read_audio(input)
    # Frame statistics are defined at the model's rate: scale the frame length to this file's rate.
    frame = max(1, round(exp.frame_length * rate / exp.sample_rate))
    deg = exp.degradation
    if hasattr(deg, "factor") and deg.kind == "bandwidth":
        # The cut-off is relative to the model's rate; at another rate keep the same cut-off in Hz.
        factor = max(2, round(deg.factor * rate / exp.sample_rate))
        deg = deg.model_copy(update={"factor": factor})
    rng = np.random.default_rng(seed)
    y = np.stack([apply_long(deg, x[:, c], rng, frame, rate) for c in range(x.shape[1])], axis=1)
    write_audio_atomic(output, y, rate, subtype=subtype)
    out.print(f"{output}: {experiment} degradation applied ({len(y) / rate:.2f} s, {rate} Hz)")


@app.command()
@friendly
def enhance(
    model: Annotated[Path, typer.Option("--model", "-m", help="models/E folder or its model.keras")],
    input: Annotated[str, typer.Option(
        "--input", "-i", help="degraded WAV/FLAC file, a folder of them (recursive), or - (stdin)")],
    output: Annotated[str, typer.Option(
        "--output", "-o", help="file to write, a folder (for a folder input), or - (stdout)")],
    subtype: Annotated[str | None, typer.Option(
        help="output subtype, e.g. PCM_16, PCM_24, FLOAT (default: the input's)")] = None,
    hop: Annotated[int | None, typer.Option(help="overlap-add hop (default frame/2)")] = None,
    raw_format: Annotated[str | None, typer.Option(
        help="stdout (and raw stdin) as headerless little-endian PCM: f32le or s16le")] = None,
    raw_rate: Annotated[int | None, typer.Option(
        help="stdin is headerless PCM at this rate (stdout then too)")] = None,
    raw_channels: Annotated[int, typer.Option(help="interleaved channels of raw stdin")] = 1,
) -> None:
    """Reconstruct degraded recordings with a trained model, streaming in bounded memory.

    A folder input enhances every .wav/.flac below it into the same tree under the output
    folder; a file that fails is reported and the rest go on (exit code 1 then). `-` reads
    stdin or writes stdout (WAV, or raw PCM with --raw-format/--raw-rate/--raw-channels).
    """
    from pipeline.enhance import enhance_file, enhance_tree
    from pipeline.enhance.pipes import STDIO, RawFormat

    if input != STDIO and Path(input).is_dir():
        if output == STDIO:
            raise typer.BadParameter("a folder input needs an output folder, not -",
                                     param_hint="'--output'")
        if raw_format is not None or raw_rate is not None:
            raise typer.BadParameter("raw PCM applies to - (stdin/stdout), not to folders",
                                     param_hint="'--raw-format'")
        res = enhance_tree(model, input, output, subtype=subtype, hop=hop,
                           on_error=lambda msg: err.print(f"[bold red]error:[/] {msg}",
                                                          highlight=False, soft_wrap=True))
        n_bad, n = len(res["failed"]), res["files"]
        summary = (f"{output}: {n - n_bad} of {n} files enhanced, {res['seconds']:.1f} s of "
                   f"audio at {res['realtime_factor']:.0f}x real time")
        if n_bad:
            err.print(f"{summary}; [bold red]{n_bad} of {n} files failed[/]", highlight=False)
            raise typer.Exit(1)
        out.print(summary, highlight=False)
        return
    raw = None
    if raw_channels != 1 and raw_format is None and raw_rate is None:
        raise typer.BadParameter("describes raw stdin; add --raw-rate (and --raw-format)",
                                 param_hint="'--raw-channels'")
    if raw_format is not None or raw_rate is not None:
        raw = RawFormat(raw_format or "f32le", raw_rate, raw_channels)
    stats = enhance_file(model, input, output, subtype=subtype, hop=hop, raw=raw)
    where = err if output == STDIO else out  # stdout carries the audio then
    where.print(f"{'stdout' if output == STDIO else output}: {stats.get('seconds', 0):.2f} s of "
                f"audio at {stats.get('realtime_factor', 0):.0f}x real time", highlight=False)


SPEECH_MIN_SECONDS = 0.25  # PESQ scores no shorter clip


def _speech_scores(e, r, rate: int, path: Path) -> tuple[str, str]:
    """PESQ-WB and STOI cells of one estimate (both resample to their own rates themselves)."""
    import warnings

    from pesq import PesqError

    from pipeline.dsp.speech_metrics import pesq_wb, stoi
    from pipeline.io.audio import AudioError

    if len(r) < SPEECH_MIN_SECONDS * rate:
        raise AudioError(f"{path}: {len(r) / rate:.3f} s is too short for PESQ-WB/STOI (needs "
                         f">= {SPEECH_MIN_SECONDS} s); pass --no-speech for SNR/SI-SDR/LSD only")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        try:
            p = pesq_wb(e, r, rate)
        except PesqError as exc:
            raise AudioError(f"{path}: PESQ-WB cannot score it ({type(exc).__name__}: {exc}); "
                             "pass --no-speech") from None
        q = stoi(e, r, rate)
    for w in caught:
        err.print(f"warning: {w.message}", highlight=False)
    return tuple("–" if v != v else f"{v:{fmt}}" for v, fmt in ((p, ".3f"), (q, ".3f")))


@app.command()
@friendly
def score(
    clean: Annotated[Path, typer.Option("--clean", help="reference file")],
    estimate: Annotated[Path, typer.Option("--estimate", help="file to score")],
    degraded: Annotated[Path | None, typer.Option(help="optional degraded input, for gains")] = None,
    speech: Annotated[bool, typer.Option(
        help="also PESQ-WB (at 16 kHz) and STOI: speech metrics, clips of >= 0.25 s")] = True,
) -> None:
    """Print SNR, SI-SDR, LSD (lower is better) and, for speech, PESQ-WB and STOI of an estimate
    against its clean reference (mono mixes; the estimate is resampled to the reference's rate)."""
    import numpy as np

    from pipeline.dsp.metrics import lsd, si_sdr_db, snr_db
    from pipeline.io.audio import AudioError, read_audio, resample, to_mono

    ref, rate, _ = read_audio(clean)
    ref = to_mono(ref)
    if not np.any(ref):
        raise AudioError(f"{clean}: the reference is silent; nothing to score against")
    table = Table(title=f"score vs {clean} ({rate} Hz, {len(ref) / rate:.2f} s)")
    cols = ["file", "SNR dB", "SI-SDR dB", "LSD"] + (["PESQ-WB", "STOI"] if speech else [])
    for col in cols:
        table.add_column(col)
    for label, path in (("estimate", estimate), ("degraded", degraded)):
        if path is None:
            continue
        est, r2, _ = read_audio(path)
        est = to_mono(est)
        if r2 != rate:
            est = resample(est, r2, rate)
        if abs(len(est) - len(ref)) > max(1, len(ref) // 1000):
            raise AudioError(f"{path}: {len(est)} samples vs {len(ref)} in {clean}; lengths differ")
        n = min(len(est), len(ref))
        e, r = est[None, :n].astype(np.float32), ref[None, :n].astype(np.float32)
        n_fft = min(2048, n)
        cells = [f"{snr_db(e, r)[0]:.2f}", f"{si_sdr_db(e, r)[0]:.2f}", f"{lsd(e, r, n_fft)[0]:.3f}"]
        if speech:
            cells += _speech_scores(e[0], r[0], rate, path)
        table.add_row(f"{label} ({path.name})", *cells)
    out.print(table)


@app.command()
@friendly
def verify(
    against: Annotated[str, typer.Option(help="git revision holding the results to match")] = "HEAD",
    tolerance: Annotated[float, typer.Option(min=0.0, help="allowed difference of dB figures")] = 0.05,
) -> None:
    """Compare this run's reports/*/metrics.json and summary.csv with the committed ones.

    Exit 0 when every dB figure is within --tolerance and every other number within 0.1%;
    exit 1 naming each difference.
    """
    from pipeline.verify import compare

    files, diffs = compare(Path("."), against, tolerance)
    if diffs:
        for d in diffs:
            err.print(str(d), highlight=False, soft_wrap=True)
        err.print(f"[bold red]{len(diffs)} difference(s)[/] from {against} in {len(files)} files "
                  f"(tolerance {tolerance} dB)", highlight=False)
        raise typer.Exit(1)
    out.print(f"[green]reproduced[/]: {len(files)} result files match {against} "
              f"(tolerance {tolerance} dB)", highlight=False)


def main() -> None:  # pragma: no cover
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    main()
