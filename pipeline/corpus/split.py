"""Assign whole speakers (or whole files) to train/val/test, deterministically from a seed.

Units are ordered by a hash of (seed, kind, pool, unit), not by a shuffle of the list, so adding
or dropping one speaker never moves another. Val and test are filled first, a unit at a time,
each taking a unit only if that brings its minutes closer to its target; everything else is
train. So val and test only ever hold whole units and never overshoot by more than they gain.
"""

from __future__ import annotations

import hashlib

import pandas as pd

from pipeline.layout import SPLITS

FRACTIONS = (0.8, 0.1, 0.1)
MIN_SPEAKERS = 3  # a pool with fewer speakers is split by file (one recording, one split)


def unit_order(units: list[str], seed: int, salt: str) -> list[str]:
    """`units` in the order the seed gives them."""
    key = {u: hashlib.sha256(f"{seed}\0{salt}\0{u}".encode()).hexdigest() for u in units}
    return sorted(units, key=key.__getitem__)


def fill(sizes: pd.Series, seed: int, salt: str,
         fractions: tuple[float, float, float] = FRACTIONS) -> dict[str, str]:
    """unit -> split for units of the given sizes (seconds)."""
    total = float(sizes.sum())
    need = {s: f * total for s, f in zip(SPLITS, fractions, strict=True) if s != "train"}
    out = {}
    for unit in unit_order(list(sizes.index), seed, salt):
        size = float(sizes[unit])
        out[unit] = next((s for s in need if size < 2 * need[s]), "train")
        if out[unit] != "train":
            need[out[unit]] -= size
    return out


def assign_splits(clips: pd.DataFrame, seed: int,
                  fractions: tuple[float, float, float] = FRACTIONS,
                  min_speakers: int = MIN_SPEAKERS) -> pd.Series:
    """The split of each row of `clips` (columns kind, pool, speaker, clip_id, seconds).

    Speech is split by speaker within each pool; music, and pools with fewer than
    `min_speakers` voices, by file.
    """
    if abs(sum(fractions) - 1) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    split = pd.Series("train", index=clips.index, dtype=object)
    for (kind, pool), rows in clips.groupby(["kind", "pool"], sort=True):
        by_speaker = kind == "speech" and rows["speaker"].nunique() >= min_speakers
        unit = rows["speaker"] if by_speaker else rows["clip_id"]
        mapping = fill(rows["seconds"].groupby(unit).sum(), seed, f"{kind}/{pool}", fractions)
        split[rows.index] = unit.map(mapping)
    return split


def split_report(manifest: pd.DataFrame) -> pd.DataFrame:
    """Minutes, files and speakers per kind x package x split (and each package's total)."""
    g = manifest.groupby(["kind", "package", "split"], sort=True)
    table = g.agg(files=("clip_id", "size"), minutes=("seconds", "sum"),
                  speakers=("speaker", "nunique")).reset_index()
    table["minutes"] = (table["minutes"] / 60).round(2)
    share = table.groupby(["kind", "package"])["minutes"].transform("sum")
    table["share"] = (table["minutes"] / share).round(3)
    return table
