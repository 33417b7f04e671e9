"""Mixing speech with the noises of :mod:`pipeline.dsp.noises` at an active-speech SNR.

The SNR is measured on the speech-active frames only (a frame-energy VAD relative to the clip's
peak), so pauses do not dilute it; :func:`speech_noise_mix` draws one noise kind, its knobs and
an SNR per clip and records them for the manifest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from pipeline.dsp.noises import (
    SNR_CAP_DB,
    babble,
    bursts,
    clicks,
    colored,
    hum,
    modulate,
    music,
    white,
)

# ----------------------------------------------------------------------------- mixing


def active_mask(speech: np.ndarray, sample_rate: float, *, frame_ms: float = 20.0,
                vad_db: float = 40.0) -> np.ndarray:
    """Energy VAD: samples of frames within `vad_db` of the clip's loudest frame, (n, T) bool.

    Relative to the clip's own peak so it works at any level; an all-zero clip has no active part.
    """
    x = np.atleast_2d(speech)
    F = _frame_len(frame_ms, sample_rate)
    act = _frame_active(*_frame_sums(x, F), vad_db)
    return np.repeat(act, F, axis=1)[:, : x.shape[1]]


def _frame_len(frame_ms: float, sample_rate: float) -> int:
    return max(1, int(round(frame_ms * 1e-3 * sample_rate)))


def _frame_sums(x: np.ndarray, F: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame sum of squares (float64) and sample counts (the last frame may be short)."""
    n, T = x.shape
    n_frames = max(1, -(-T // F))
    padded = np.zeros((n, n_frames * F), np.float32)
    padded[:, :T] = x
    sums = np.sum(np.square(padded.reshape(n, n_frames, F), dtype=np.float64), axis=-1)
    counts = np.clip(T - np.arange(n_frames) * F, 0, F)
    return sums, counts


def _frame_active(sums: np.ndarray, counts: np.ndarray, vad_db: float) -> np.ndarray:
    energy = sums / np.maximum(counts, 1)
    peak = energy.max(axis=1, keepdims=True)
    return (energy > 0) & (energy >= peak * 10 ** (-vad_db / 10))


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db, *, sample_rate: float = 16_000,
               frame_ms: float = 20.0, vad_db: float = 40.0, floor_db: float = -10.0):
    """speech + g * noise with g set so the SNR over the speech-active frames is `snr_db`.

    Silences and pauses do not count, so a clip with long pauses is as noisy where it speaks as
    a dense one. The noise power used is at least `floor_db` below its whole-clip power: a burst
    that misses the speech is not blown up to meet the target (the achieved SNR is reported).
    Silent speech or silent noise gives g = 0 (no NaN) and an SNR of +SNR_CAP_DB.
    Returns ``(noisy, {"noise_gain", "snr_db_active"})``, per clip, float32.
    """
    one = np.ndim(speech) == 1
    s = np.atleast_2d(np.asarray(speech, dtype=np.float32))
    v = np.atleast_2d(np.asarray(noise, dtype=np.float32))
    if s.shape != v.shape:
        raise ValueError(f"shape mismatch: speech {s.shape} vs noise {v.shape}")
    F = _frame_len(frame_ms, sample_rate)
    s_sums, counts = _frame_sums(s, F)
    v_sums, _ = _frame_sums(v, F)
    act = _frame_active(s_sums, counts, vad_db)
    n_act = np.maximum(np.sum(act * counts, axis=1), 1)
    ps = np.sum(s_sums * act, axis=1) / n_act
    pn_act = np.sum(v_sums * act, axis=1) / n_act
    pn = np.maximum(pn_act, np.sum(v_sums, axis=1) / max(s.shape[1], 1) * 10 ** (floor_db / 10))
    target = ps / 10 ** (np.asarray(snr_db, dtype=np.float64) / 10)
    ok = (ps > 0) & (pn > 0)
    gain = np.sqrt(np.divide(target, pn, out=np.zeros_like(target), where=ok))
    got = gain**2 * pn_act
    with np.errstate(divide="ignore"):
        snr = np.where(got > 0, 10 * np.log10(np.where(ok, ps, 1.0) / np.where(got > 0, got, 1.0)),
                       SNR_CAP_DB)
    noisy = s + gain.astype(np.float32)[:, None] * v
    info = {"noise_gain": gain.astype(np.float32),
            "snr_db_active": np.clip(snr, -SNR_CAP_DB, SNR_CAP_DB).astype(np.float32)}
    return (noisy[0] if one else noisy), info


# ----------------------------------------------------------------------------- the mixture

# How each knob of a kind's spec is drawn per clip: a (low, high) pair uniformly ("uniform"),
# integers inclusive ("integers"), one of a list ("choice"), or passed through ("fixed").
KNOBS: dict[str, dict[str, str]] = {
    "white": {},
    "colored": {"exponent": "uniform"},
    "hum": {"mains_hz": "choice", "harmonics": "integers", "decay_db": "uniform",
            "level_jitter_db": "uniform", "jitter": "uniform", "hiss_db": "uniform"},
    "babble": {"talkers": "integers", "talker_level_db": "fixed"},
    "music": {},
    "bursts": {"base": "choice", "rate_hz": "uniform", "duration_s": "uniform", "floor_db": "uniform"},
    "am": {"base": "choice", "rate_hz": "uniform", "depth_db": "uniform"},
    "clicks": {"click_prob": "uniform", "click_amp": "uniform", "crackle_prob": "uniform",
               "crackle_amp": "uniform", "crackle_decay_ms": "uniform"},
}
_STATIONARY = {"white": white, "colored": colored, "hum": hum, "clicks": clicks}


def draw_knobs(rng: np.random.Generator, kind: str, spec: Mapping[str, Any], n: int) -> dict:
    """One value per clip for each knob in `spec` (a kind's config block); absent knobs keep
    the generator's defaults. Unknown knobs are an error, so a typo cannot pass silently."""
    how = KNOBS[kind]
    out: dict[str, Any] = {}
    for key, value in dict(spec).items():  # a mapping or a config block
        if key == "weight":
            continue
        if key not in how:
            raise ValueError(f"{kind}: unknown knob `{key}` (knobs: {sorted(how)})")
        if how[key] == "uniform":
            out[key] = rng.uniform(*value, size=n)
        elif how[key] == "integers":
            out[key] = rng.integers(value[0], value[1] + 1, size=n)
        elif how[key] == "choice":
            out[key] = np.asarray(value)[rng.integers(0, len(value), size=n)]
        else:
            out[key] = value
    return out


def _render(rng, kind: str, n: int, T: int, sr: float, kinds: Mapping, knobs: dict, sources: dict):
    """A batch of one kind from knobs already drawn; adds its picks (talker/music rows, the
    base noise and its knobs) to `knobs` for the manifest. `sources`: pools and ids."""
    if kind in _STATIONARY:
        return _STATIONARY[kind](rng, T, sr, n_clips=n, **knobs)
    if kind == "babble":
        y, src = babble(rng, T, sr, n_clips=n, pool=sources["pool"], pool_ids=sources["pool_ids"],
                        target_ids=sources["target_ids"][sources["rows"]], return_sources=True, **knobs)
        knobs["talker_rows"] = src
        return y
    if kind == "music":
        if sources["music"] is None:
            raise ValueError("the `music` noise has weight > 0 but no music clips were given")
        y, knobs["music_row"] = music(rng, T, sr, n_clips=n, pool=sources["music"], return_sources=True)
        return y
    base_kind = knobs.pop("base", np.full(n, "white"))
    base = np.empty((n, T), np.float32)
    base_knobs = np.empty(n, dtype=object)
    for b in np.unique(base_kind):  # a loop over base kinds, each a batch
        rows = np.flatnonzero(base_kind == b)
        b_knobs = draw_knobs(rng, str(b), kinds.get(str(b), {}), rows.size)
        base[rows] = _render(rng, str(b), rows.size, T, sr, kinds, b_knobs, sources)
        base_knobs[rows] = _per_clip_dicts(str(b), b_knobs, rows.size)
    y = (bursts if kind == "bursts" else modulate)(rng, base, sr, **knobs)
    knobs["base"], knobs["base_knobs"] = base_kind, base_knobs
    return y


def _plain(v):
    if isinstance(v, dict):
        return v
    v = np.asarray(v)
    return v.tolist() if v.ndim else v.item()


def _per_clip_dicts(kind: str, knobs: dict, n: int) -> list[dict]:
    """Column-wise knobs -> one dict of plain (JSON-able) values per clip, for the manifest."""
    return [{k: _plain(v if KNOBS[kind].get(k) == "fixed" else v[j]) for k, v in knobs.items()}
            for j in range(n)]  # a loop over clips, not samples


def speech_noise_mix(rng: np.random.Generator, speech: np.ndarray, kinds: Mapping[str, Mapping],
                     snr_range=(-5.0, 20.0), *, sample_rate: float, pool=None, pool_ids=None,
                     target_ids=None, music=None, frame_ms: float = 20.0, vad_db: float = 40.0):
    """Add one noise per clip of `speech` (n, T): the kind drawn by weight from `kinds`
    (kind -> knob spec, e.g. `NoiseMix.kinds()`), the active-speech SNR from U(snr_range).

    Babble talks over with other clips of this batch unless a `pool` is given, in which case
    `pool_ids`/`target_ids` (clip or speaker ids) say which pool entries each clip must not use.
    Returns ``(noisy (n, T) float32, draws)``: per clip `noise_kind`, `snr_db` (drawn),
    `snr_db_active` (achieved), `noise_gain` and `noise_knobs` (a dict of plain values).
    """
    x = np.atleast_2d(np.asarray(speech, dtype=np.float32))
    n, T = x.shape
    names = [k for k, spec in kinds.items() if dict(spec).get("weight", 1.0) > 0]
    if not names:
        raise ValueError("no noise kind has a weight > 0")
    unknown = sorted(set(kinds) - set(KNOBS))
    if unknown:
        raise ValueError(f"unknown noise kind(s) {unknown}; known: {sorted(KNOBS)}")
    if pool is None:
        pool, pool_ids, target_ids = x, np.arange(n), np.arange(n)
    elif pool_ids is None or target_ids is None:
        raise ValueError("with a babble `pool`, give pool_ids and target_ids so no clip hears itself")
    w = np.array([dict(kinds[k]).get("weight", 1.0) for k in names], dtype=np.float64)
    choice = rng.choice(len(names), size=n, p=w / w.sum())
    snr = rng.uniform(*snr_range, size=n)
    noise = np.zeros((n, T), np.float32)
    knobs: list[dict] = [{} for _ in range(n)]
    for i, kind in enumerate(names):  # a loop over kinds, each a batch
        rows = np.flatnonzero(choice == i)
        if rows.size == 0:
            continue
        drawn = draw_knobs(rng, kind, dict(kinds[kind]), rows.size)
        sources = {"pool": pool, "pool_ids": np.asarray(pool_ids), "target_ids": np.asarray(target_ids),
                   "music": music, "rows": rows}
        noise[rows] = _render(rng, kind, rows.size, T, sample_rate, kinds, drawn, sources)
        for r, d in zip(rows, _per_clip_dicts(kind, drawn, rows.size), strict=True):
            knobs[r] = d
    noisy, info = mix_at_snr(x, noise, snr, sample_rate=sample_rate, frame_ms=frame_ms, vad_db=vad_db)
    per_clip = np.empty(n, dtype=object)
    per_clip[:] = knobs
    draws = {"noise_kind": np.asarray(names)[choice], "snr_db": snr.astype(np.float32), **info,
             "noise_knobs": per_clip}
    return noisy, draws
