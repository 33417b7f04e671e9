"""params.yaml's `corpus:` block (the real-speech corpus stage) and its resolution.

The config layer ranks below `pipeline.corpus`, so the package names and the conditioning
fields are spelt here again; tests/unit/test_corpus_stage.py checks they agree with
`pipeline.corpus.inventory.PACKAGES` and `pipeline.corpus.condition.Conditioning`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, field_validator

from pipeline.config.base import Strict
from pipeline.layout import CorpusPaths, RepoPaths

# pipeline.corpus.inventory.PACKAGES (a test checks the two agree)
CORPUS_PACKAGES = ("fillets-ng-data-cs", "fillets-ng-data", "klettres-data", "hedgewars-data")


class ConditioningCfg(Strict):
    """The fields of pipeline.corpus.condition.Conditioning."""

    sample_rate: int = Field(16_000, ge=1000, le=192_000)
    frame_seconds: float = Field(0.02, gt=0, le=1)
    relative_db: float = Field(40.0, gt=0, le=200)
    floor_db: float = Field(-60.0, ge=-200, le=0)
    min_active_seconds: float = Field(0.1, ge=0)


class MusicRenderCfg(Strict):
    """Pieces generated from a seed and rendered with FluidSynth (pipeline/corpus/render.py)."""

    enabled: bool = True
    pieces: int = Field(40, ge=0, le=10_000)
    piece_seconds: float = Field(30.0, gt=0, le=600)  # audio seconds per rendered piece
    seed: int = Field(0, ge=0, lt=2**63)


class CorpusCfg(Strict):
    packages: list[str] = list(CORPUS_PACKAGES)
    seed: int = Field(0, ge=0, lt=2**63)
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    min_speakers: int = Field(3, ge=1)
    include_music: bool = True
    max_files: int | None = Field(None, ge=1)  # per package; null: every file
    conditioning: ConditioningCfg = ConditioningCfg()
    music_render: MusicRenderCfg = MusicRenderCfg()
    # base.quick caps: files per package and rendered pieces
    quick_max_files: int = Field(40, ge=1)
    quick_pieces: int = Field(4, ge=0)

    @field_validator("packages")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        unknown = [p for p in v if p not in CORPUS_PACKAGES]
        if unknown:
            raise ValueError(f"unknown package(s) {unknown}; the corpus knows "
                             f"{', '.join(CORPUS_PACKAGES)}")
        if not v or len(set(v)) != len(v):
            raise ValueError("list at least one package, each once")
        return v

    @field_validator("fractions")
    @classmethod
    def _sum(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if min(v) < 0 or abs(sum(v) - 1) > 1e-6:
            raise ValueError(f"train/val/test fractions must be >= 0 and sum to 1, got {list(v)}")
        return v

    def settings(self, quick: bool) -> CorpusCfg:
        """This block with the quick caps applied when `quick`."""
        if not quick:
            return self
        files = self.quick_max_files if self.max_files is None else min(self.max_files,
                                                                          self.quick_max_files)
        render = self.music_render.model_copy(
            update={"pieces": min(self.music_render.pieces, self.quick_pieces)})
        return self.model_copy(update={"max_files": files, "music_render": render})


@dataclass(frozen=True)
class ResolvedCorpus:
    """What the corpus stage runs on: the settings (quick caps applied) and its folders."""

    cfg: CorpusCfg
    out: CorpusPaths
    cache: Path


def resolve_corpus(cfg: CorpusCfg, quick: bool, root: str | Path = ".") -> ResolvedCorpus:
    repo = RepoPaths(Path(root).resolve())
    return ResolvedCorpus(cfg.settings(quick), CorpusPaths(repo.corpus), repo.debian_cache)
