"""The corpus stage: its params block, the rendered music's wiring, and the stage on a fake package
(no download: `fetch` and the fluidsynth binary are stand-ins)."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from helpers import ROOT, real_params

from pipeline.config import ParamsError, load_params, parse_params, record_reads
from pipeline.config.corpus import (
    CORPUS_PACKAGES,
    ConditioningCfg,
    CorpusCfg,
    MusicRenderCfg,
    resolve_corpus,
)
from pipeline.corpus import PACKAGES, Conditioning, Fetched, MusicRender, build_from
from pipeline.corpus import build as build_module
from pipeline.corpus.render import PACKAGE, Renderer, midi_piece, render_pieces
from pipeline.stages.corpus import build


# ----------------------------------------------------------------------------- params
def _bad(mutate) -> str:
    raw = copy.deepcopy(real_params())
    mutate(raw)
    with pytest.raises(ParamsError) as exc:
        parse_params(raw)
    assert "\n" not in str(exc.value)
    return str(exc.value)


def test_the_real_corpus_block_validates_with_the_four_packages():
    cfg = load_params(ROOT / "params.yaml").corpus
    assert cfg.packages == list(CORPUS_PACKAGES) and cfg.music_render.enabled


def test_a_misspelt_corpus_key_is_named_with_a_suggestion():
    msg = _bad(lambda r: r["corpus"]["music_render"].update(piecs=3))
    assert "corpus.music_render.piecs" in msg and "pieces" in msg


@pytest.mark.parametrize(("key", "value", "says"), [
    ("packages", ["klettres-data", "espeak-data"], "espeak-data"),
    ("fractions", [0.5, 0.3, 0.3], "sum to 1"),
    ("max_files", 0, "corpus.max_files"),
    ("min_speakers", 0, "corpus.min_speakers"),
])
def test_bad_corpus_values_name_the_key(key, value, says):
    msg = _bad(lambda r: r["corpus"].update({key: value}))
    assert f"corpus.{key}" in msg and says in msg


def test_config_spells_the_corpus_names_and_fields_as_the_corpus_does():
    """config ranks below corpus, so it repeats them: they must agree."""
    assert CORPUS_PACKAGES == PACKAGES
    for cfg, dc in ((ConditioningCfg(), Conditioning()), (MusicRenderCfg(), MusicRender())):
        assert cfg.model_dump() == dataclasses.asdict(dc)


def test_quick_caps_files_and_pieces():
    cfg = CorpusCfg()
    quick = cfg.settings(True)
    assert quick.max_files == cfg.quick_max_files and quick.music_render.pieces == cfg.quick_pieces
    assert cfg.settings(False) is cfg
    assert CorpusCfg(max_files=7).settings(True).max_files == 7


# ----------------------------------------------------------------------------- MIDI
def test_midi_pieces_are_seeded_standard_midi_files():
    a = midi_piece(0, 3, 20.0)
    assert a == midi_piece(0, 3, 20.0) != midi_piece(0, 4, 20.0) != midi_piece(1, 3, 20.0)
    assert a[:4] == b"MThd" and a[14:18] == b"MTrk"
    assert int.from_bytes(a[18:22], "big") == len(a) - 22 and a.endswith(b"\xff\x2f\x00")
    assert len(midi_piece(0, 3, 60.0)) > 2 * len(a)


# ----------------------------------------------------------------------------- fakes
FAKE_FLUIDSYNTH = """#!{python} -S
import array, hashlib, math, sys
args = sys.argv[1:]
out, rate, midi = args[args.index("-F") + 1], int(args[args.index("-r") + 1]), args[-1]
f0 = 100 + hashlib.sha256(open(midi, "rb").read()).digest()[0]
y = [0.3 * math.sin(2 * math.pi * f0 * i / rate) for i in range(int(rate * 1.5))]
array.array("f", [v for v in y for _ in (0, 1)]).tofile(open(out, "wb"))
"""


@pytest.fixture
def renderer(tmp_path) -> Renderer:
    binary = tmp_path / "bin" / "fluidsynth"
    binary.parent.mkdir()
    binary.write_text(FAKE_FLUIDSYNTH.format(python=sys.executable))
    binary.chmod(0o755)
    font = tmp_path / "font"
    (font / "usr/share/doc/fluid-soundfont-gm").mkdir(parents=True)
    (font / "usr/share/doc/fluid-soundfont-gm/copyright").write_text("I hereby release Fluid "
                                                                      "under the MIT license\n")
    return Renderer(binary, (), font / "FluidR3_GM.sf2")


@pytest.fixture
def font_fetched(renderer) -> Fetched:
    return Fetched("fluid-soundfont-gm", "3.1-5.3", "http://deb.example/f.deb", "cd" * 32, 1,
                   Path("f.deb"), renderer.soundfont.parent, "MIT", "")


@pytest.fixture
def fake_klettres(tmp_path) -> Fetched:
    root = tmp_path / "klettres-data"
    for i, lang in enumerate(["cs", "da", "de", "en", "fr"]):
        folder = root / "usr/share/klettres" / lang / "alpha"
        folder.mkdir(parents=True)
        for j in range(2):
            t = np.arange(int(22050 * (0.3 + 0.1 * i))) / 22050
            sf.write(folder / f"{j}.wav", 0.4 * np.sin(2 * np.pi * (200 + 50 * j) * t), 22050)
    return Fetched("klettres-data", "4:22.12.3-1", "http://deb.example/k.deb", "ab" * 32, 1,
                   Path("k.deb"), root, "GPL-2+", "")


def test_rendered_pieces_join_the_music_one_split_each(renderer, font_fetched, fake_klettres,
                                                       tmp_path):
    cfg = MusicRender(pieces=6, piece_seconds=5.0, seed=2)
    rendered = render_pieces(renderer, cfg, Conditioning(), [font_fetched])
    assert len(rendered.table) == 6 and rendered.table["clip_id"].is_unique
    m = build_from([fake_klettres], tmp_path / "a", seed=0, rendered=rendered)
    again = render_pieces(renderer, cfg, Conditioning(), [font_fetched])
    build_from([fake_klettres], tmp_path / "b", seed=0, rendered=again)
    music = m[m["package"] == PACKAGE]
    assert len(music) == 6 and set(music["kind"]) == {"music"}
    assert set(music["split"]) == {"train", "val", "test"}
    assert music["speaker"].is_unique  # a piece is one clip, so it is in one split
    digests = [json.loads((tmp_path / k / "digest.json").read_text()) for k in "ab"]
    assert digests[0]["digest"] == digests[1]["digest"]
    assert digests[0]["packages"]["fluid-soundfont-gm"] == "3.1-5.3"
    assert digests[0]["params"]["music_render"]["pieces"] == 6
    licences = (tmp_path / "a" / "LICENSES").read_text()
    assert "fluidsynth-render" in licences and "MIT license" in licences
    report = pd.read_csv(tmp_path / "a" / "report.csv")
    assert PACKAGE in set(report["package"])
    other = render_pieces(renderer, dataclasses.replace(cfg, seed=3), Conditioning(), [font_fetched])
    build_from([fake_klettres], tmp_path / "c", seed=0, rendered=other)
    assert json.loads((tmp_path / "c" / "digest.json").read_text())["digest"] != digests[0]["digest"]


def test_the_stage_builds_data_corpus_and_reads_only_declared_params(
        renderer, font_fetched, fake_klettres, tmp_path, monkeypatch):
    monkeypatch.setattr(build_module, "fetch", lambda name, cache: fake_klettres)
    monkeypatch.setattr(build_module, "render_music", lambda cfg, cache, cond: render_pieces(
        renderer, cfg, cond, [font_fetched]))
    raw = real_params()
    raw["base"]["quick"] = True
    raw["corpus"]["packages"] = ["klettres-data"]
    raw["corpus"]["quick_pieces"] = 3
    params = parse_params(raw)
    with record_reads(params) as reads:
        m = build(resolve_corpus(params.corpus, params.base.quick, tmp_path))
    out = tmp_path / "data" / "corpus"
    assert {p.name for p in out.iterdir()} >= {"manifest.csv", "report.csv", "digest.json",
                                               "LICENSES", "speech_train.npy", "music_test.npy"}
    assert (m["package"] == PACKAGE).sum() == 3 and m.attrs["max_files"] == 40
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["corpus"]
    undeclared = sorted(r for r in reads if not any(r == d or r.startswith(d + ".")
                                                    for d in stage["params"]))
    assert reads and not undeclared


def test_without_apt_the_stage_says_so_in_one_line_and_exits_2(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(real_params()))
    env = {**os.environ, "PATH": str(tmp_path), "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-m", "pipeline.stages", "corpus"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "apt-get" in lines[0] and "recordings/" in lines[0]
    assert not (tmp_path / "data").exists()



def test_missing_sonames_names_what_the_loader_lacks(tmp_path):
    """ldd's "not found" sonames, which the folder on the library path then satisfies."""
    import shutil
    import subprocess

    from pipeline.corpus.render import missing_sonames

    if shutil.which("gcc") is None or shutil.which("ldd") is None:
        pytest.skip("needs gcc and ldd")
    (tmp_path / "foo.c").write_text("int foo(void) { return 1; }\n")
    (tmp_path / "main.c").write_text("int foo(void);\nint main(void) { return foo(); }\n")
    lib = tmp_path / "lib"
    lib.mkdir()
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(lib / "libfoo.so"), str(tmp_path / "foo.c")],
                   check=True)
    exe = tmp_path / "main"
    subprocess.run(["gcc", "-o", str(exe), str(tmp_path / "main.c"), f"-L{lib}", "-lfoo"], check=True)
    assert missing_sonames(exe, ()) == ["libfoo.so"]
    assert missing_sonames(exe, (lib,)) == []
    assert missing_sonames(Path(shutil.which("ls")), ()) == []
