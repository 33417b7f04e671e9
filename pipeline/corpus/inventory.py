"""Which files of each Debian package are speech, whose voice they are, and which are music.

What the bookworm packages hold (surveyed with soundfile; every audio file is Ogg Vorbis;
minutes as stored, before silence trimming):

- ``fillets-ng-data-cs`` 1.0.1-1.1 (39.0 MB .deb): the Czech dubbing of Fish Fillets NG, 1882
  files at 22.05 kHz (1672) or 44.1 kHz (210), mostly mono. Layout
  ``usr/share/games/fillets-ng/sound/<level>/cs/<prefix>-<char>-<phrase>.ogg``, some
  ``<char>-<phrase>.ogg`` (``<phrase>-<char>`` in the last level, ``fdto``), shared lines in
  ``sound/share/<group>/cs/``. ``<char>`` is the character: ``m`` (small fish, 747 files, 39.7
  min) and ``v`` (big fish, 705 files, 41.3 min) are the same two actors in every level; any
  other code (``hs``, ``kd``, ``pap``, ``b1``, digits ...) is a side character of its level,
  keyed by (level, code) since the paths do not say which actor voiced it. ``x`` marks effects
  (33 files), dropped. Kept: 1849 files, 103.5 min, 44 speaker keys.
- ``fillets-ng-data`` 1.0.1-1.1 (70.6 MB): the game data. It has no English dialogue (English is
  subtitles only): its ``sound/<level>/en/`` folders hold language-neutral sounds, mostly effects
  and noises named like speech. Only the ``elk`` (German and Russian lines) and ``warcraft``
  (unit barks) character files are voices: 29 files, 1.4 min, 4 keys, 22.05 kHz.
  ``music/`` (15 files, 24.5 min) is music.
- ``klettres-data`` 4:22.12.3-1 (39.5 MB): letters and syllables spoken in 20 languages,
  ``usr/share/klettres/<lang>/{alpha,syllab}/*.ogg``, 1836 files, 51.3 min, 44.1 kHz (``da/alpha``
  is 128 kHz); one speaker per language folder (``en`` and ``en_GB`` apart). Malayalam ``ml``
  alone is 21 min.
- ``hedgewars-data`` 1.0.2-6 (145.3 MB): 15 voice packs
  ``usr/share/games/hedgewars/Data/Sounds/voices/<pack>/*.ogg`` (839 files, 14.9 min, 44.1/48
  kHz, one voice per pack, e.g. British, Pirate, Default_ru), game effects in ``Data/Sounds/``
  (dropped) and 26 stereo music tracks in ``Data/Music/`` (93.6 min, 44.1 kHz).

Speaker keys are prefixed by a *pool*: both fillets packages share the pool ``fillets`` because
the same actors speak in both, so the split never puts one voice on two sides.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pandas as pd

from pipeline.corpus.errors import CorpusError

AUDIO_SUFFIXES = (".ogg", ".wav", ".flac")
# One voice per character across the whole game; any other code is a level's side character.
FILLETS_MAIN = ("m", "v")
FILLETS_EFFECTS = ("x",)
# fillets-ng-data's sound/<level>/en/ folders hold the language-neutral sounds: only these
# levels' character files there are voices (the rest are effects, piano, octopus noises ...).
FILLETS_NEUTRAL = "en"
FILLETS_NEUTRAL_VOICES = ("elk", "warcraft")

Entry = tuple[str, str] | None  # (kind, speaker) or None when the file is neither


def _fillets_char(stem: str) -> str:
    """The character code of a fillets speech file name ('' if it names none)."""
    if stem.startswith("sp-shout_"):  # share/border: the big and the small fish shouting
        return "v" if "_big" in stem else "m"
    tokens = stem.split("-")
    if len(tokens) >= 3:  # <prefix>-<char>-<phrase>
        return tokens[1]
    if len(tokens) == 2:  # <char>-<phrase>, or <phrase>-<char> in the last level (fdto)
        return tokens[1] if len(tokens[1]) <= 2 < len(tokens[0]) else tokens[0]
    return "voice"  # briefcase help1..23: the level's recorded help


def _fillets(rel: PurePosixPath) -> Entry:
    parts = rel.parts
    if "fillets-ng" not in parts:
        return None
    parts = parts[parts.index("fillets-ng") + 1:]
    if len(parts) == 2 and parts[0] == "music":
        return "music", "fillets/music"
    if not 4 <= len(parts) <= 5 or parts[0] != "sound":  # sound/<level>/<lang>/<file>, or
        return None  # sound/share/<group>/<lang>/<file>: lines every level may play
    level, lang = "/".join(parts[1:-2]), parts[-2]
    if lang == FILLETS_NEUTRAL and level not in FILLETS_NEUTRAL_VOICES:
        return None
    char = _fillets_char(PurePosixPath(parts[-1]).stem)
    if char in FILLETS_EFFECTS:
        return None
    return "speech", f"fillets/{char}" if char in FILLETS_MAIN else f"fillets/{level}/{char}"


def _klettres(rel: PurePosixPath) -> Entry:
    parts = rel.parts
    if "klettres" not in parts:
        return None
    parts = parts[parts.index("klettres") + 1:]
    if len(parts) == 3 and parts[1] in ("alpha", "syllab"):
        return "speech", f"klettres/{parts[0]}"
    return None


def _hedgewars(rel: PurePosixPath) -> Entry:
    parts = rel.parts
    if "Data" not in parts:
        return None
    parts = parts[parts.index("Data") + 1:]
    if len(parts) == 4 and parts[:2] == ("Sounds", "voices"):
        return "speech", f"hedgewars/{parts[2]}"
    if len(parts) == 2 and parts[0] == "Music":
        return "music", "hedgewars/music"
    return None


@dataclass(frozen=True)
class PackageRule:
    """How one package's paths map to (kind, speaker)."""

    pool: str
    classify: Callable[[PurePosixPath], Entry]


RULES: dict[str, PackageRule] = {
    "fillets-ng-data-cs": PackageRule("fillets", _fillets),
    "fillets-ng-data": PackageRule("fillets", _fillets),
    "klettres-data": PackageRule("klettres", _klettres),
    "hedgewars-data": PackageRule("hedgewars", _hedgewars),
}
PACKAGES = tuple(RULES)


def rule(package: str) -> PackageRule:
    if package not in RULES:
        raise CorpusError(f"no inventory rule for package {package!r}; the corpus knows "
                          f"{', '.join(PACKAGES)}")
    return RULES[package]


def classify(package: str, rel: str | PurePosixPath) -> Entry:
    """(kind, speaker) of one path inside the package, or None if it is not speech or music."""
    rel = PurePosixPath(rel)
    if rel.suffix.lower() not in AUDIO_SUFFIXES:
        return None
    return rule(package).classify(rel)


def clip_id(package: str, source: str) -> str:
    """A stable id: the same file of the same package has the same id in every build."""
    return hashlib.sha256(f"{package}\0{source}".encode()).hexdigest()[:16]


def inventory(package: str, root: Path, max_files: int | None = None) -> pd.DataFrame:
    """Every speech and music file under an extracted package `root`, sorted by source path.

    `max_files` keeps a deterministic subset (smallest clip ids) for quick builds.
    """
    pool = rule(package).pool
    rows = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        source = path.relative_to(root).as_posix()
        entry = classify(package, source)
        if entry is not None:
            rows.append({"clip_id": clip_id(package, source), "package": package, "pool": pool,
                         "kind": entry[0], "speaker": entry[1], "source": source})
    table = pd.DataFrame(rows, columns=["clip_id", "package", "pool", "kind", "speaker", "source"])
    if table.empty:
        raise CorpusError(f"{root}: no speech or music files of {package} found; delete the folder "
                          "so the package is extracted again")
    if max_files is not None:
        table = table.sort_values("clip_id").head(max_files).sort_values("source")
    return table.reset_index(drop=True)
