"""Stage ``generate@E``: synthetic (clean, degraded) frame pairs on disk.

compute (seeded chunks on two threads) -> record (DataDigest) -> write (data/E, atomically).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from pipeline.config import CorpusSignal, Experiment, SpeechNoiseDeg
from pipeline.config.resolve import Resolved
from pipeline.corpus.frames import corpus_frames, music_pool
from pipeline.dsp import degradations, signals
from pipeline.io.atomic import atomic_dir
from pipeline.layout import SPLITS, DataDigest, digest_arrays, save_split

CHUNK = 1024  # frames per chunk: bounded memory, and n frames are a prefix of n + k frames
MUSIC_POOL = 64  # music excerpts per chunk for the `music` noise


def stream_key(name: str) -> int:
    """A stable integer for an experiment name (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


def chunk_rngs(seed: int, name: str, split: str, chunk: int):
    """Independent generators for the clean signal and the degradation of one chunk.

    Each (experiment, split, chunk) has its own SeedSequence stream, so adding or editing one
    experiment never moves another's data and the test split never shares a stream with training.
    """
    ss = np.random.SeedSequence(seed, spawn_key=(stream_key(name), SPLITS.index(split), chunk))
    sig, deg = ss.spawn(2)
    return np.random.default_rng(sig), np.random.default_rng(deg)


def make_chunk(exp: Experiment, seed: int, name: str, split: str, chunk: int, n: int, root="."):
    """Frames of one chunk. A chunk is always drawn whole and then cut to `n`, so a split of n
    frames is exactly the prefix of a split of n + k frames."""
    rng_sig, rng_deg = chunk_rngs(seed, name, split, chunk)
    T, sr = exp.frame_length, exp.sample_rate
    corpus = isinstance(exp.signal, CorpusSignal)
    if corpus:
        clean, draws = corpus_frames(exp.signal, split, CHUNK, T, sr, rng_sig, root)
    else:
        clean, draws = signals.generate(exp.signal, CHUNK, T, sr, rng_sig, root)
    context = {}
    if isinstance(exp.degradation, SpeechNoiseDeg):  # babble and music from the same split
        context = {"sample_rate": sr}
        if corpus:
            context |= {"speakers": draws["speaker"],
                        "music": music_pool(split, MUSIC_POOL, T, rng_sig, root)}
    degraded, deg_draws = degradations.apply(exp.degradation, clean, rng_deg, **context)
    clean, degraded = clean[:n], degraded[:n]
    if "noise_knobs" in deg_draws:  # one JSON object per frame in the manifest
        deg_draws["noise_knobs"] = [json.dumps(k, sort_keys=True) for k in deg_draws["noise_knobs"]]
    draws = {k: np.asarray(v)[:n] for k, v in {**draws, **deg_draws}.items()}
    err = np.sum(np.square(degraded - clean, dtype=np.float64), axis=1)
    sig = np.sum(np.square(clean, dtype=np.float64), axis=1)
    draws["input_snr_db"] = np.clip(10 * np.log10((sig + 1e-20) / (err + 1e-20)), -100, 100)
    return clean.astype(np.float32), degraded.astype(np.float32), draws


def make_split(exp: Experiment, seed: int, name: str, split: str, n: int, root=".", progress=None):
    """All frames of one split, chunk by chunk on two threads (numpy releases the GIL)."""
    counts = [min(CHUNK, n - s) for s in range(0, n, CHUNK)]
    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        futures = [
            pool.submit(make_chunk, exp, seed, name, split, i, c, root) for i, c in enumerate(counts)
        ]
        parts = []
        for fut, c in zip(futures, counts, strict=True):
            parts.append(fut.result())
            if progress:
                progress(c)
    clean = np.concatenate([p[0] for p in parts])
    degraded = np.concatenate([p[1] for p in parts])
    table = pd.concat([pd.DataFrame(p[2]) for p in parts], ignore_index=True)
    table.insert(0, "index", np.arange(n))
    table.insert(0, "split", split)
    return clean, degraded, table


def compute(r: Resolved) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Every split's (clean, degraded) arrays, keyed ``{split}_{kind}``, and the manifest."""
    sizes = r.exp.sizes.model_dump()
    show = sys.stdout.isatty() and not os.environ.get("CI")
    arrays: dict[str, np.ndarray] = {}
    tables = []
    from rich.progress import Progress

    with Progress(disable=not show, transient=True) as bar:
        task = bar.add_task(f"generate {r.name}", total=sum(sizes.values()))
        for split in SPLITS:
            clean, degraded, table = make_split(
                r.exp, r.base_seed, r.name, split, sizes[split], r.paths.root,
                progress=lambda k: bar.advance(task, k),
            )
            arrays[f"{split}_clean"], arrays[f"{split}_degraded"] = clean, degraded
            tables.append(table)
    return arrays, pd.concat(tables, ignore_index=True)


def record(r: Resolved, arrays: dict[str, np.ndarray]) -> DataDigest:
    config = r.exp.model_dump(mode="json", exclude={"model", "train", "metrics"})
    return DataDigest(experiment=r.name,
                      digest=digest_arrays(arrays, json.dumps(config, sort_keys=True))[:16],
                      seed=r.base_seed, frame_length=r.exp.frame_length,
                      sample_rate=r.exp.sample_rate, sizes=r.exp.sizes.model_dump(),
                      config=config)


def write(r: Resolved, arrays: dict[str, np.ndarray], manifest: pd.DataFrame,
          digest: DataDigest) -> None:
    with atomic_dir(r.paths.data) as tmp:
        for split in SPLITS:
            save_split(tmp, split, arrays[f"{split}_clean"], arrays[f"{split}_degraded"])
        manifest.to_csv(tmp / r.paths.manifest.name, index=False, float_format="%.6g")
        (tmp / r.paths.digest.name).write_text(digest.text(sort_keys=True))


def generate_experiment(r: Resolved) -> DataDigest:
    """Write data/E/ atomically; return its digest record."""
    arrays, manifest = compute(r)
    digest = record(r, arrays)
    write(r, arrays, manifest, digest)
    return digest
