"""The corpus from a real Debian package: download, verify, extract and build (network, ~1 min)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from pipeline.corpus import build_corpus, open_split

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900),
              pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")]
SMALLEST = "fillets-ng-data-cs"  # 39.0 MB .deb (bookworm)


def test_builds_a_corpus_from_the_smallest_package(tmp_path):
    out = tmp_path / "corpus"
    m = build_corpus([SMALLEST], tmp_path / "cache", out, seed=0, max_files=300)
    assert len(m) > 250 and set(m["split"]) == {"train", "val", "test"}
    assert (m.groupby("speaker")["split"].nunique() == 1).all()
    assert {"fillets/m", "fillets/v"} <= set(m["speaker"])
    digest = json.loads((out / "digest.json").read_text())
    assert digest["packages"] == {SMALLEST: "1.0.1-1.1"} and digest["sample_rate"] == 16000
    licenses = (out / "LICENSES").read_text()
    assert "GPL-2" in licenses and "deb.debian.org" in licenses
    audio, rows = open_split(out, "train")
    assert audio.dtype == np.float32 and audio.size == rows["length"].sum() > 16000 * 60
    # a second build reuses the verified cache and gives the same bytes
    again = build_corpus([SMALLEST], tmp_path / "cache", tmp_path / "again", seed=0, max_files=300)
    assert json.loads((tmp_path / "again" / "digest.json").read_text())["digest"] == digest["digest"]
    assert again.equals(m)
