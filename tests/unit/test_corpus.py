"""The Debian speech corpus on synthetic packages: speaker keys, trimming, splits, digest, errors."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.corpus import (
    Conditioning,
    CorpusError,
    Fetched,
    assign_splits,
    build_from,
    classify,
    fetch,
    open_split,
    split_report,
)
from pipeline.corpus.condition import active_span, condition
from pipeline.corpus.fetch import licences_text, parse_copyright
from pipeline.corpus.inventory import inventory
from pipeline.errors import UserError

FILLETS = "usr/share/games/fillets-ng"
HEDGE = "usr/share/games/hedgewars/Data"


# ----------------------------------------------------------------------------- speaker keys
@pytest.mark.parametrize(("package", "path", "expected"), [
    ("fillets-ng-data-cs", f"{FILLETS}/sound/city/cs/vit-m-hlava.ogg", ("speech", "fillets/m")),
    ("fillets-ng-data-cs", f"{FILLETS}/sound/city/cs/vit-v-proc.ogg", ("speech", "fillets/v")),
    ("fillets-ng-data-cs", f"{FILLETS}/sound/city/cs/vit-hs-klid1.ogg",
     ("speech", "fillets/city/hs")),
    ("fillets-ng-data-cs", f"{FILLETS}/sound/bathroom/cs/m-myslis.ogg", ("speech", "fillets/m")),
    ("fillets-ng-data-cs", f"{FILLETS}/sound/city/cs/vit-x-end.ogg", None),  # an effect
    ("fillets-ng-data-cs", f"{FILLETS}/sound/fdto/cs/agenti-m.ogg", ("speech", "fillets/m")),
    ("fillets-ng-data-cs", f"{FILLETS}/sound/fdto/cs/nevi-b.ogg", ("speech", "fillets/fdto/b")),
    ("fillets-ng-data-cs", f"{FILLETS}/sound/gods/cs/b1-7.ogg", ("speech", "fillets/gods/b1")),
    ("fillets-ng-data-cs", f"{FILLETS}/sound/briefcase/cs/help1.ogg",
     ("speech", "fillets/briefcase/voice")),
    ("fillets-ng-data-cs", f"{FILLETS}/sound/share/borejokes/cs/ob-m-ach.ogg",
     ("speech", "fillets/m")),
    ("fillets-ng-data-cs", f"{FILLETS}/sound/share/border/cs/sp-shout_big_00.ogg",
     ("speech", "fillets/v")),
    ("fillets-ng-data", f"{FILLETS}/sound/elk/en/deu-p-jawohl.ogg", ("speech", "fillets/elk/p")),
    ("fillets-ng-data", f"{FILLETS}/sound/linux/en/key8.ogg", None),
    ("fillets-ng-data", f"{FILLETS}/sound/cancan/en/kan-klavir-music.ogg", None),  # not a voice
    ("fillets-ng-data", f"{FILLETS}/sound/share/sp-dead_big.ogg", None),
    ("fillets-ng-data", f"{FILLETS}/music/menu.ogg", ("music", "fillets/music")),
    ("fillets-ng-data", f"{FILLETS}/images/menu/flags/cs.png", None),
    ("klettres-data", "usr/share/klettres/en_GB/alpha/a.ogg", ("speech", "klettres/en_GB")),
    ("klettres-data", "usr/share/klettres/cs/syllab/ba.ogg", ("speech", "klettres/cs")),
    ("klettres-data", "usr/share/klettres/cs/cs.txt", None),
    ("hedgewars-data", f"{HEDGE}/Sounds/voices/Pirate/Hello.ogg", ("speech", "hedgewars/Pirate")),
    ("hedgewars-data", f"{HEDGE}/Sounds/explosion.ogg", None),
    ("hedgewars-data", f"{HEDGE}/Music/main_theme.ogg", ("music", "hedgewars/music")),
])
def test_speaker_keys_come_from_the_path(package, path, expected):
    assert classify(package, path) == expected


def test_unknown_package_is_a_user_error():
    with pytest.raises(CorpusError, match="no inventory rule"):
        classify("espeak-data", "usr/share/x.wav")
    assert issubclass(CorpusError, UserError)


# ----------------------------------------------------------------------------- trimming
CFG = Conditioning()
FRAME = round(CFG.frame_seconds * CFG.sample_rate)


@settings(max_examples=40, deadline=None)
@given(lead=st.integers(0, 20), tail=st.integers(0, 20), burst=st.integers(100, 400),
       level=st.floats(0.1, 1.0), seed=st.integers(0, 2**16))
def test_trimming_keeps_the_sound_and_drops_whole_frames_of_silence(lead, tail, burst, level, seed):
    rng = np.random.default_rng(seed)
    sound = (level * rng.uniform(-1, 1, burst * 16)).astype(np.float32)
    x = np.concatenate([np.zeros(lead * FRAME, np.float32), sound,
                        np.zeros(tail * FRAME, np.float32)])
    start, stop = active_span(x, CFG.sample_rate, CFG)
    assert start == lead * FRAME  # silence ahead of the sound goes, to the frame
    assert stop - start <= sound.size + FRAME  # silence after it goes too (up to a frame)
    loud = np.flatnonzero(np.abs(x) > level * 0.5)
    assert start <= loud[0] and loud[-1] < stop  # no loud sample is cut
    same = active_span(x[start:stop], CFG.sample_rate, CFG)
    assert same == (0, stop - start)  # trimming twice changes nothing


@pytest.mark.parametrize("x", [np.zeros(16000, np.float32),
                               np.full(16000, 1e-5, np.float32),  # -100 dBFS hum
                               np.r_[np.zeros(16000), 0.5 * np.ones(800)].astype(np.float32)])
def test_nearly_silent_files_are_dropped(x):
    assert condition(x, 16000, CFG) is None


def test_condition_is_mono_16k_float32():
    rate = 44100
    t = np.arange(rate) / rate
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([tone, tone], axis=1)
    x = np.concatenate([np.zeros((rate // 2, 2)), stereo, np.zeros((rate // 2, 2))])
    y = condition(x.astype(np.float32), rate, CFG)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(y.size - 16000) <= 2 * FRAME  # 1 s of tone, the silence trimmed


# ----------------------------------------------------------------------------- splits
def _clips(n_speakers=40, per=5, pool="p", kind="speech", seed=1):
    rng = np.random.default_rng(seed)
    rows = [{"clip_id": f"{pool}-{s}-{i}", "kind": kind, "pool": pool, "package": pool,
             "speaker": f"{pool}/s{s}", "seconds": float(rng.uniform(0.5, 4))}
            for s in range(n_speakers) for i in range(per)]
    return pd.DataFrame(rows)


def test_no_speaker_in_two_splits_and_fractions_roughly_met():
    clips = _clips()
    clips["split"] = assign_splits(clips, seed=3)
    assert (clips.groupby("speaker")["split"].nunique() == 1).all()
    share = clips.groupby("split")["seconds"].sum() / clips["seconds"].sum()
    assert share["train"] == pytest.approx(0.8, abs=0.05)
    assert share["val"] == pytest.approx(0.1, abs=0.04)
    assert share["test"] == pytest.approx(0.1, abs=0.04)


def test_splits_are_deterministic_for_a_seed_and_move_with_it():
    clips = _clips()
    a, b = assign_splits(clips, seed=3), assign_splits(clips.sample(frac=1, random_state=0), seed=3)
    pd.testing.assert_series_equal(a, b.sort_index())  # row order does not matter
    assert not assign_splits(clips, seed=4).equals(a)


def test_adding_a_speaker_moves_no_other_val_or_test_speaker():
    clips = _clips()
    before = assign_splits(clips, seed=3)
    more = pd.concat([clips, _clips(1, 5, seed=9).assign(speaker="p/new", clip_id=lambda d: d.clip_id + "n")],
                     ignore_index=True)
    after = assign_splits(more, seed=3)[: len(clips)]
    held = before != "train"
    assert (after[held] == before[held]).mean() > 0.8


def test_a_pool_with_few_speakers_is_split_by_file():
    clips = _clips(n_speakers=1, per=60)
    clips["split"] = assign_splits(clips, seed=0)
    assert set(clips["split"]) == {"train", "val", "test"}
    assert clips["clip_id"].is_unique


def test_pools_are_split_apart_and_val_test_get_whole_speakers():
    clips = pd.concat([_clips(pool="a"), _clips(n_speakers=10, pool="b")], ignore_index=True)
    clips["split"] = assign_splits(clips, seed=0)
    for _, rows in clips.groupby("pool"):
        assert {"val", "test"} <= set(rows["split"])
    report = split_report(clips)
    assert set(report.columns) >= {"package", "split", "files", "minutes", "speakers"}
    assert report["files"].sum() == len(clips)


# ----------------------------------------------------------------------------- build
def _tone(rate, seconds, freq, channels=1):
    t = np.arange(int(rate * seconds)) / rate
    y = 0.4 * np.sin(2 * np.pi * freq * t)
    pad = np.zeros(rate // 4)
    y = np.concatenate([pad, y, pad])
    return np.repeat(y[:, None], channels, axis=1).astype(np.float32)


@pytest.fixture
def fake_klettres(tmp_path):
    """A klettres-like tree: 8 languages x 3 files at mixed rates, plus one silent file."""
    root = tmp_path / "klettres-data"
    for i, lang in enumerate(["cs", "da", "de", "en", "fr", "it", "nl", "ru"]):
        folder = root / "usr/share/klettres" / lang / "alpha"
        folder.mkdir(parents=True)
        for j in range(3):
            rate = (44100, 22050, 48000)[j]
            sf.write(folder / f"{j}.wav", _tone(rate, 0.3 + 0.1 * i, 200 + 50 * j, 1 + j % 2), rate)
    sf.write(root / "usr/share/klettres/cs/alpha/silent.wav", np.zeros(8000, np.float32), 16000)
    return Fetched("klettres-data", "4:22.12.3-1", "http://deb.example/k.deb", "ab" * 32, 1,
                   Path("k.deb"), root, "GPL-2+", "https://invent.kde.org/education/klettres")


def test_inventory_finds_speech_and_keys_it(fake_klettres):
    table = inventory("klettres-data", fake_klettres.root)
    assert len(table) == 25 and table["speaker"].nunique() == 8
    assert table["clip_id"].is_unique
    assert len(inventory("klettres-data", fake_klettres.root, max_files=5)) == 5


def test_build_writes_a_consistent_corpus_with_a_stable_digest(fake_klettres, tmp_path):
    m = build_from([fake_klettres], tmp_path / "a", seed=0)
    build_from([fake_klettres], tmp_path / "b", seed=0)
    build_from([fake_klettres], tmp_path / "c", seed=1)
    digest = {k: json.loads((tmp_path / k / "digest.json").read_text())["digest"] for k in "abc"}
    assert digest["a"] == digest["b"] != digest["c"]
    assert len(m) == 24 and m.attrs["dropped_silent"] == 1
    assert (m.groupby("speaker")["split"].nunique() == 1).all()
    saved = pd.read_csv(tmp_path / "a" / "manifest.csv", keep_default_na=False)
    assert list(saved.columns) == ["clip_id", "kind", "package", "speaker", "split", "source",
                                   "seconds", "start", "length"]
    for split in ("train", "val", "test"):
        audio, rows = open_split(tmp_path / "a", split)
        assert audio.dtype == np.float32 and audio.size == rows["length"].sum()
        assert (rows["start"] + rows["length"]).to_numpy().max(initial=0) == audio.size
    assert not list(tmp_path.glob(".a.*"))  # the staging folder is gone


def test_licenses_name_package_version_licence_and_source(fake_klettres, tmp_path):
    build_from([fake_klettres], tmp_path / "out", seed=0)
    text = (tmp_path / "out" / "LICENSES").read_text()
    for part in ("klettres-data", "4:22.12.3-1", "GPL-2+", "http://deb.example/k.deb"):
        assert part in text
    assert licences_text([fake_klettres]) == text


DEP5 = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Source: https://hedgewars.org/

Files: *
Copyright: 2004 Someone
License: GPL-2

Files: share/hedgewars/Data/Sounds/*
Copyright: 2004 Someone
License: GFDL-1.3

Files: share/hedgewars/Data/Graphics/*
License: CC0
"""
FREE = """It was downloaded from http://fillets.sourceforge.net

   This package is free software; you can redistribute it and/or modify
   it under the terms of the GNU General Public License as published by
   the Free Software Foundation; version 2 dated June, 1991.
"""


def test_licence_is_read_from_either_kind_of_copyright_file():
    assert parse_copyright(DEP5) == ("GPL-2; GFDL-1.3 (share/hedgewars/Data/Sounds/*)",
                                     "https://hedgewars.org/")
    assert parse_copyright(FREE) == ("GPL-2", "http://fillets.sourceforge.net")


# ----------------------------------------------------------------------------- fetching
def _script(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_missing_apt_says_so_and_points_at_recordings(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # neither apt-get nor dpkg-deb
    with pytest.raises(CorpusError, match=r"apt-get and dpkg-deb not found.*recordings/"):
        fetch("klettres-data", tmp_path / "cache")


def test_a_failed_download_says_why_and_points_at_recordings(tmp_path, monkeypatch):
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    _script(bin_, "apt-get", "echo 'E: Unable to locate package klettres-data' >&2; exit 100\n")
    _script(bin_, "dpkg-deb", "exit 0\n")
    monkeypatch.setenv("PATH", f"{bin_}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(CorpusError, match=r"Unable to locate package.*recordings/"):
        fetch("klettres-data", tmp_path / "cache")


@pytest.mark.skipif(not Path("/usr/bin/dpkg-deb").exists(), reason="needs dpkg-deb")
def test_fetch_verifies_extracts_and_records_a_real_deb(tmp_path, monkeypatch):
    """A tiny .deb built here and served by a stand-in apt-get: the whole path, offline."""
    pkg = tmp_path / "pkg"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN/control").write_text(
        "Package: klettres-data\nVersion: 4:1.0-1\nArchitecture: all\n"
        "Maintainer: t <t@example.invalid>\nDescription: test\n")
    doc = pkg / "usr/share/doc/klettres-data"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(DEP5.replace("GPL-2\n", "GPL-2+\n", 1))
    deb = tmp_path / "klettres-data_4%3a1.0-1_all.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(pkg), str(deb)],
                   check=True, capture_output=True)
    sha = subprocess.run(["sha256sum", str(deb)], capture_output=True, text=True).stdout.split()[0]
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    _script(bin_, "apt-get", f"""if [ "$2" = --print-uris ]; then
  echo "'http://deb.example/k.deb' {deb.name} {deb.stat().st_size} SHA256:{sha}"
else cp '{deb}' .; fi\n""")
    monkeypatch.setenv("PATH", f"{bin_}{os.pathsep}{os.environ['PATH']}")
    got = fetch("klettres-data", tmp_path / "cache")
    assert (got.version, got.sha256, got.url) == ("4:1.0-1", sha, "http://deb.example/k.deb")
    assert got.licence.startswith("GPL-2+") and (got.root / "usr/share/doc").is_dir()
    assert fetch("klettres-data", tmp_path / "cache").root == got.root  # cached, not again
