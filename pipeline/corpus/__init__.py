"""A corpus of real speech (and music) from Debian packages, split by speaker.

``build_corpus(packages, cache_dir, out_dir, seed)`` fetches the packages without root
(``apt-get download``, ``dpkg-deb -x``), keeps their speech files (see ``inventory``), decodes
them to 16 kHz mono float32 with silence trimmed, splits whole speakers into train/val/test and
writes ``out_dir`` atomically (see ``records`` for the files); ``render`` adds music
rendered with FluidSynth from seeded, generated MIDI. numpy/scipy/soundfile/pandas only.
"""

from pipeline.corpus.build import build_corpus, build_from
from pipeline.corpus.condition import Conditioning
from pipeline.corpus.errors import CorpusError
from pipeline.corpus.fetch import Fetched, fetch
from pipeline.corpus.inventory import PACKAGES, classify
from pipeline.corpus.records import CorpusDigest, CorpusPaths, open_split
from pipeline.corpus.render import MusicRender
from pipeline.corpus.split import assign_splits, split_report

__all__ = ["PACKAGES", "Conditioning", "CorpusDigest", "CorpusError", "CorpusPaths", "Fetched", "MusicRender",
           "assign_splits", "build_corpus", "build_from", "classify", "fetch", "open_split",
           "split_report"]
