"""Music rendered by Debian's fluidsynth, fetched without root (network on first run, ~120 MB)."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest

from pipeline.corpus import Conditioning, MusicRender
from pipeline.corpus.render import fetch_renderer, midi_piece, render_pieces

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900),
              pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")]


def test_fluidsynth_renders_generated_midi_to_the_same_bytes_twice(tmp_path):
    renderer, fetched = fetch_renderer(tmp_path / "cache")
    assert {"fluidsynth", "fluid-soundfont-gm"} <= {f.name for f in fetched}
    audio = renderer.render(midi_piece(0, 0, 5.0))
    assert audio.dtype == np.float32 and audio.shape[1] == 2 and len(audio) > 4.5 * 44_100
    assert 0.01 < np.abs(audio).max() < 1
    cfg = MusicRender(pieces=2, piece_seconds=5.0)
    a, b = (render_pieces(renderer, cfg, Conditioning(), fetched) for _ in range(2))
    assert list(a.clips) == list(b.clips) and len(a.clips) == 2
    for key in a.clips:
        assert hashlib.sha256(a.clips[key].tobytes()).digest() == \
            hashlib.sha256(b.clips[key].tobytes()).digest()
    assert "MIT license" in a.notice
