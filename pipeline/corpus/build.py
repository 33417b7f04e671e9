"""Build the speech corpus: fetch -> inventory -> decode/condition -> split -> write.

:func:`build_corpus` is the pure entry a DVC stage wraps: the same packages (exact versions,
checked by SHA256), seed and conditioning give the same bytes and so the same digest.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.corpus.condition import Conditioning, load_clip
from pipeline.corpus.fetch import Fetched, fetch, licences_text
from pipeline.corpus.inventory import inventory, rule
from pipeline.corpus.records import KINDS, CorpusDigest, CorpusPaths
from pipeline.corpus.render import PACKAGE as RENDER_PACKAGE
from pipeline.corpus.render import MusicRender, Rendered, render_music
from pipeline.corpus.split import FRACTIONS, MIN_SPEAKERS, assign_splits, split_report
from pipeline.io.atomic import atomic_dir
from pipeline.layout import SPLITS, digest_arrays

COLUMNS = ["clip_id", "kind", "package", "speaker", "split", "source", "seconds", "start", "length"]


def decode(table: pd.DataFrame, roots: dict[str, Path], cfg: Conditioning) -> tuple[pd.DataFrame, dict]:
    """Conditioned clips of the inventory rows; rows of near-silent files are dropped."""
    clips = {}
    for row in table.itertuples():
        clip = load_clip(roots[row.package] / row.source, cfg)
        if clip is not None:
            clips[row.clip_id] = clip
    kept = table[table["clip_id"].isin(clips)].copy()
    kept["seconds"] = [clips[c].size / cfg.sample_rate for c in kept["clip_id"]]
    return kept.reset_index(drop=True), clips


def lay_out(manifest: pd.DataFrame, clips: dict[str, np.ndarray],
            kinds: tuple[str, ...]) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Each (kind, split)'s clips end to end, in manifest order, and their offsets."""
    manifest = manifest.sort_values(["kind", "split", "package", "source"]).reset_index(drop=True)
    manifest["length"] = [clips[c].size for c in manifest["clip_id"]]
    manifest["start"] = 0
    arrays = {}
    for kind in kinds:
        for split in SPLITS:
            rows = manifest.index[(manifest["kind"] == kind) & (manifest["split"] == split)]
            lengths = manifest.loc[rows, "length"].to_numpy()
            manifest.loc[rows, "start"] = np.cumsum(lengths) - lengths
            parts = [clips[c] for c in manifest.loc[rows, "clip_id"]]
            arrays[f"{kind}_{split}"] = (np.concatenate(parts) if parts
                                         else np.zeros(0, np.float32)).astype(np.float32, copy=False)
    return manifest[COLUMNS], arrays


def make_digest(arrays: dict[str, np.ndarray], params: dict, packages: dict[str, str],
                cfg: Conditioning, seed: int) -> CorpusDigest:
    """The record whose digest changes exactly when the audio or the params that made it do."""
    extra = json.dumps({"params": params, "packages": packages}, sort_keys=True)
    return CorpusDigest(
        digest=digest_arrays(arrays, extra), seed=seed, sample_rate=cfg.sample_rate,
        packages=packages, sizes={k: int(a.size) for k, a in arrays.items()},
        minutes={k: round(a.size / cfg.sample_rate / 60, 3) for k, a in arrays.items()},
        params=params)


def write(out_dir: Path, arrays: dict[str, np.ndarray], manifest: pd.DataFrame,
          digest: CorpusDigest, fetched: list[Fetched], notice: str = "") -> None:
    """All files into a staging folder swapped in at the end: all new or all old."""
    with atomic_dir(out_dir) as tmp:
        paths = CorpusPaths(tmp)
        for name, arr in arrays.items():
            kind, split = name.split("_")
            np.save(paths.array(kind, split), arr, allow_pickle=False)
        manifest.to_csv(paths.manifest, index=False, float_format="%.6f")
        split_report(manifest).to_csv(paths.report, index=False)
        paths.digest.write_text(digest.text(sort_keys=True), encoding="utf-8")
        text = licences_text(fetched) + (f"\n{notice}" if notice else "")
        paths.licenses.write_text(text, encoding="utf-8")


def build_corpus(packages: list[str] | tuple[str, ...], cache_dir: Path, out_dir: Path, seed: int,
                 fractions: tuple[float, float, float] = FRACTIONS,
                 conditioning: Conditioning = Conditioning(), include_music: bool = True,
                 min_speakers: int = MIN_SPEAKERS, max_files: int | None = None,
                 music_render: MusicRender | None = None) -> pd.DataFrame:
    """Fetch `packages` into `cache_dir`, build the corpus in `out_dir`; return the manifest.

    `max_files` (per package) makes a quick, deterministic subset for tests and trials;
    `music_render` (when enabled, and music is included) adds FluidSynth-rendered pieces.
    """
    for name in packages:
        rule(name)  # unknown package: fail before any download
    fetched = [fetch(name, Path(cache_dir)) for name in packages]
    rendered = None
    if include_music and music_render is not None and music_render.enabled:
        rendered = render_music(music_render, Path(cache_dir), conditioning)
    return build_from(fetched, out_dir, seed, fractions, conditioning, include_music,
                      min_speakers, max_files, rendered)


def build_from(fetched: list[Fetched], out_dir: Path, seed: int,
               fractions: tuple[float, float, float] = FRACTIONS,
               conditioning: Conditioning = Conditioning(), include_music: bool = True,
               min_speakers: int = MIN_SPEAKERS, max_files: int | None = None,
               rendered: Rendered | None = None) -> pd.DataFrame:
    """The corpus from already extracted packages (what the unit tests drive), plus any
    `rendered` music (one unit per piece in the split)."""
    t0 = time.perf_counter()
    table = pd.concat([inventory(f.name, f.root, max_files) for f in fetched], ignore_index=True)
    if not include_music:
        table = table[table["kind"] == "speech"]
    kept, clips = decode(table, {f.name: f.root for f in fetched}, conditioning)
    rendered = rendered if include_music else None
    if rendered is not None and not rendered.table.empty:
        extra = rendered.table.copy()
        extra["seconds"] = [rendered.clips[c].size / conditioning.sample_rate
                            for c in extra["clip_id"]]
        kept = pd.concat([kept, extra], ignore_index=True)
        clips = {**clips, **rendered.clips}
    kept["split"] = assign_splits(kept, seed, fractions, min_speakers)
    kinds = KINDS if include_music else ("speech",)
    manifest, arrays = lay_out(kept, clips, kinds)
    params = {"seed": seed, "fractions": list(fractions), "min_speakers": min_speakers,
              "include_music": include_music, "max_files": max_files,
              "conditioning": asdict(conditioning),
              "dropped_silent": len(table) - int((kept["package"] != RENDER_PACKAGE).sum())}
    sources = [*fetched, *(rendered.fetched if rendered else [])]
    if rendered is not None:
        params["music_render"] = {**rendered.config, "rendered": len(rendered.table)}
    packages = {f.name: f.version for f in sources}
    digest = make_digest(arrays, {**params, "deb_sha256": {f.name: f.sha256 for f in sources}},
                         packages, conditioning, seed)
    write(Path(out_dir), arrays, manifest, digest, sources, rendered.notice if rendered else "")
    params["build_seconds"] = round(time.perf_counter() - t0, 1)
    if rendered is not None:
        params["render_seconds"] = rendered.seconds
    manifest.attrs.update(params)
    return manifest
