"""Stage ``corpus``: real speech (and music) from Debian packages, plus FluidSynth-rendered music.

load (params.corpus, quick caps applied by resolve_corpus) -> compute + record + write
(pipeline.corpus.build_corpus: fetch into .cache/debian, condition, split by speaker, digest,
data/corpus/ swapped in atomically).
"""

from __future__ import annotations

import pandas as pd

from pipeline.config.corpus import CorpusCfg, ResolvedCorpus
from pipeline.corpus import Conditioning, MusicRender, build_corpus
from pipeline.corpus.fetch import require_tools


def conditioning(cfg: CorpusCfg) -> Conditioning:
    return Conditioning(**cfg.conditioning.model_dump())


def music_render(cfg: CorpusCfg) -> MusicRender:
    return MusicRender(**cfg.music_render.model_dump())


def build(r: ResolvedCorpus) -> pd.DataFrame:
    """Write data/corpus/ atomically; return its manifest (attrs: params, build seconds)."""
    require_tools()  # before anything else: one message pointing at recordings/
    cfg = r.cfg
    return build_corpus(cfg.packages, r.cache, r.out.root, cfg.seed, tuple(cfg.fractions),
                        conditioning(cfg), cfg.include_music, cfg.min_speakers, cfg.max_files,
                        music_render(cfg))
