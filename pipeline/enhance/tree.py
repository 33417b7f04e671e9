"""Enhance a folder tree: every WAV/FLAC below it, into the same tree elsewhere.

The model loads once; each file streams through :func:`stream.enhance_stream` (bounded
memory, atomic write) keeping its relative path, extension and, unless a subtype is
requested, its subtype. A file that fails is reported and the rest go on.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import soundfile as sf
from rich.markup import escape

from pipeline.enhance import stream
from pipeline.enhance.model_dir import load_model_dir
from pipeline.enhance.progress import progress_bar
from pipeline.errors import UserError
from pipeline.io import audio

AUDIO_SUFFIXES = (".wav", ".flac")


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def find_audio(root: str | os.PathLike, exclude: str | os.PathLike | None = None) -> list[Path]:
    """Every ``.wav``/``.flac`` file below ``root`` (any case), sorted, skipping hidden
    names (our own ``.name.tmp`` files among them), symlinked folders and ``exclude``."""
    root = Path(root)
    skip = Path(exclude).resolve() if exclude is not None else None
    found = []
    for d, dirs, names in os.walk(root):  # does not follow symlinked folders: no cycles
        here = Path(d)
        dirs[:] = sorted(x for x in dirs if not x.startswith(".")
                         and not (skip is not None and _inside((here / x).resolve(), skip)))
        found += [here / f for f in names
                  if f.lower().endswith(AUDIO_SUFFIXES) and not f.startswith(".")]
    return sorted(found)


def enhance_tree(
    model_path: str | os.PathLike,
    input_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    subtype: str | None = None,
    hop: int | None = None,
    show_progress: bool | None = None,
    on_error: Callable[[str], None] | None = None,
    block: int = stream.BLOCK,
) -> dict:
    """Enhance every WAV/FLAC below ``input_dir`` into the same relative path under
    ``output_dir``, with one progress bar over all their samples.

    A file that fails gets one message (through ``on_error`` when no bar is shown) and the
    others go on; its output is not created (or an old one is left untouched). Returns
    ``files``, ``failed`` (the messages), ``seconds`` of audio enhanced, ``elapsed_s``,
    ``load_s`` and ``realtime_factor``.
    """
    in_dir, out_dir = Path(input_dir), Path(output_dir)
    if not in_dir.is_dir():
        raise audio.AudioError(f"{in_dir}: not a folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise audio.AudioError(f"{out_dir}: is a file; with a folder as input, -o must be a folder")
    if out_dir.resolve() == in_dir.resolve():
        raise audio.AudioError(f"{out_dir}: is the input folder; choose another output folder "
                               "(the inputs would be overwritten)")
    if subtype is not None and not any(sf.check_format(f, subtype.upper())
                                       for f in ("WAV", "FLAC")):
        raise audio.AudioError(f"subtype {subtype!r} is valid for neither WAV nor FLAC")
    files = find_audio(in_dir, exclude=out_dir)
    if not files:
        raise audio.AudioError(f"{in_dir}: no .wav or .flac files in this folder or below")

    t0 = time.perf_counter()
    predict, meta = load_model_dir(model_path)
    load_s = time.perf_counter() - t0

    sizes = {}
    for p in files:  # header reads only; a bad file reports itself when its turn comes
        try:
            info = sf.info(str(p))
            sizes[p] = int(info.frames) * int(info.channels)
        except Exception:  # noqa: BLE001
            sizes[p] = 0
    total = sum(sizes.values())
    failed: list[str] = []
    report = on_error or (lambda msg: print(f"error: {msg}", file=sys.stderr))
    seconds = 0.0
    base = 0
    t1 = time.perf_counter()
    with progress_bar("enhancing", show_progress) as bar:
        for i, p in enumerate(files):
            rel = p.relative_to(in_dir)
            desc = f"[{i + 1}/{len(files)}] {rel}"
            bar.update(base, total, description=desc)

            def progress(done: int, _tot: int, _base: int = base) -> None:
                bar.update(_base + done, total)

            try:
                opened = stream.open_input(p)
                n, _ch, rate = stream.enhance_stream(p, out_dir / rel, predict, meta,
                                                     subtype=subtype, hop=hop, block=block,
                                                     progress=progress, opened=opened)
                seconds += n / rate
            except Exception as e:  # noqa: BLE001  one bad file must not stop the others
                msg = str(e) if isinstance(e, UserError) else f"{p}: {type(e).__name__}: {e}"
                failed.append(msg)
                if bar.active:
                    bar.note(f"[bold red]error:[/] {escape(msg)}")
                else:
                    report(msg)
            base += sizes[p]
            bar.update(base, total)
    elapsed = time.perf_counter() - t1
    return {"files": len(files), "failed": failed, "seconds": seconds, "elapsed_s": elapsed,
            "load_s": load_s, "realtime_factor": seconds / max(elapsed, 1e-9)}
