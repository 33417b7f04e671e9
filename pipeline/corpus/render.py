"""Clean music rendered from MIDI with FluidSynth and a General MIDI soundfont, without root.

The pieces are generated here, seeded (:func:`midi_piece`: a key, a tempo, a four-chord loop,
bass, chords, a melody and sometimes drums, General MIDI instruments drawn per piece), written as
plain Standard MIDI File bytes, and rendered by Debian's ``fluidsynth`` binary fetched like the
corpus packages (``apt-get download`` + ``dpkg-deb -x`` into the cache) and run with
``LD_LIBRARY_PATH`` on the extracted libraries. :data:`RUNTIME` lists the packages a bookworm
machine without FluidSynth lacks (checked with ``ldd``); they are always fetched, so every
machine renders with the same binaries and the digest names their exact versions.
FluidSynth renders single-threaded to float samples (no dither), so the same seed gives the
same bytes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.corpus.condition import Conditioning, condition
from pipeline.corpus.errors import RECORDINGS_HINT, CorpusError
from pipeline.corpus.fetch import Fetched, fetch
from pipeline.corpus.inventory import clip_id

PACKAGE = "fluidsynth-render"  # the manifest's package name of rendered pieces
POOL = "render"
# fluidsynth and the shared libraries `ldd` finds missing on bookworm without it
RUNTIME = ("fluidsynth", "libfluidsynth3", "libinstpatch-1.0-2", "libjack-jackd2-0",
           "libsdl2-2.0-0", "libsamplerate0", "libdecor-0-0")
SOUNDFONT = "fluid-soundfont-gm"
SF2 = "usr/share/sounds/sf2/FluidR3_GM.sf2"
RATE = 44_100  # rendered at the soundfont's rate, then conditioned (resampled) like the corpus
TIMEOUT = 600


@dataclass(frozen=True)
class MusicRender:
    """What decides the rendered pieces (part of the corpus digest)."""

    enabled: bool = True
    pieces: int = 40
    piece_seconds: float = 30.0
    seed: int = 0


@dataclass
class Rendered:
    """Rendered pieces, ready to join the corpus's music."""

    table: pd.DataFrame  # inventory columns: clip_id, package, pool, kind, speaker, source
    clips: dict[str, np.ndarray]
    fetched: list[Fetched]
    notice: str  # appended to LICENSES
    config: dict  # the MusicRender fields (part of the digest)
    seconds: float = 0.0  # wall time of the rendering (not in the digest)


# ----------------------------------------------------------------------------- MIDI
MELODY = (0, 4, 11, 19, 24, 40, 56, 65, 71, 73)  # piano, e-piano, vibes, organ, guitar, violin ...
CHORDS = (0, 4, 16, 24, 46, 48, 49, 88, 89)  # piano, e-piano, organ, guitar, harp, strings, pads
BASS = (32, 33, 34, 35, 38, 42)
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10),
          "dorian": (0, 2, 3, 5, 7, 9, 10)}
PPQ = 480


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    while n > 127:
        n >>= 7
        out.append(0x80 | (n & 0x7F))
    return bytes(reversed(out))


def smf(events: list[tuple[int, bytes]], ppq: int = PPQ) -> bytes:
    """A format-0 Standard MIDI File of (tick, message) events (stable-sorted by tick)."""
    body = bytearray()
    now = 0
    for tick, msg in sorted(events, key=lambda e: e[0]):
        body += _vlq(tick - now) + msg
        now = tick
    body += b"\x00\xff\x2f\x00"
    return (b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big")
            + ppq.to_bytes(2, "big") + b"MTrk" + len(body).to_bytes(4, "big") + bytes(body))


def _note(events: list, ch: int, start: int, length: int, pitch: int, vel: int) -> None:
    events.append((start, bytes((0x90 | ch, pitch, vel))))
    events.append((start + max(1, length), bytes((0x80 | ch, pitch, 0))))


def midi_piece(seed: int, index: int, piece_seconds: float) -> bytes:
    """Piece `index` of the seed: the same arguments give the same bytes."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
    bpm = int(rng.integers(70, 141))
    root = int(rng.integers(45, 57))
    scale = SCALES[sorted(SCALES)[int(rng.integers(len(SCALES)))]]
    degrees = [0] + [int(d) for d in rng.choice([1, 2, 3, 4, 5], size=3)]
    programs = [int(rng.choice(MELODY)), int(rng.choice(CHORDS)), int(rng.choice(BASS))]
    drums = bool(rng.random() < 0.6)
    bar = 4 * PPQ
    bars = max(1, int(piece_seconds * bpm / 240))
    events: list[tuple[int, bytes]] = [(0, b"\xff\x51\x03" + (60_000_000 // bpm).to_bytes(3, "big"))]
    for ch, prog in enumerate(programs):
        events.append((0, bytes((0xC0 | ch, prog))))
    pitch = root + 24
    for b in range(bars):
        t0 = b * bar
        deg = degrees[b % 4]
        triad = [root + 12 + scale[(deg + k) % 7] + 12 * ((deg + k) // 7) for k in (0, 2, 4)]
        for p in triad:
            _note(events, 1, t0, bar - 20, p, 60)
        for beat in range(4):
            _note(events, 2, t0 + beat * PPQ, PPQ - 40, root - 12 + scale[deg % 7] + 12 * (beat == 2),
                  80)
        t = t0
        while t < t0 + bar:  # a random walk on the scale, eighths and quarters
            length = int(rng.choice([PPQ // 2, PPQ, PPQ // 2, 3 * PPQ // 2]))
            pitch = int(np.clip(pitch + rng.choice([-2, -1, 0, 1, 2]) * 2, root + 12, root + 36))
            step = min(scale, key=lambda s, p=pitch: abs((p - root) % 12 - s))
            note = pitch - (pitch - root) % 12 + step
            if rng.random() > 0.15:
                _note(events, 0, t, min(length, t0 + bar - t) - 10, note, int(rng.integers(70, 101)))
            t += length
        if drums:
            for eighth in range(8):
                tick = t0 + eighth * PPQ // 2
                _note(events, 9, tick, 60, 42, 50)
                if eighth in (0, 4):
                    _note(events, 9, tick, 60, 36, 90)
                if eighth in (2, 6):
                    _note(events, 9, tick, 60, 38, 80)
    return smf(events)


# ----------------------------------------------------------------------------- FluidSynth
@dataclass(frozen=True)
class Renderer:
    """A fluidsynth binary, the library folders it needs and a soundfont."""

    binary: Path
    lib_dirs: tuple[Path, ...]
    soundfont: Path

    def render(self, midi: bytes, rate: int = RATE) -> np.ndarray:
        """(n, 2) float32 samples of one MIDI file."""
        env = {**os.environ, "LC_ALL": "C",
               "LD_LIBRARY_PATH": os.pathsep.join(map(str, self.lib_dirs))}
        with tempfile.TemporaryDirectory(prefix="render-") as tmp:
            mid, raw = Path(tmp) / "piece.mid", Path(tmp) / "piece.raw"
            mid.write_bytes(midi)
            args = [str(self.binary), "-n", "-i", "-q", "-T", "raw", "-O", "float", "-E", "little",
                    "-r", str(rate), "-g", "0.5", "-o", "synth.cpu-cores=1", "-F", str(raw),
                    str(self.soundfont), str(mid)]
            try:
                res = subprocess.run(args, capture_output=True, text=True, env=env,
                                     timeout=TIMEOUT, check=False)
            except (OSError, subprocess.TimeoutExpired) as err:
                raise CorpusError(f"fluidsynth failed ({err}); set corpus.music_render.enabled "
                                  f"to false, {RECORDINGS_HINT}") from err
            if res.returncode != 0 or not raw.is_file():
                last = (res.stderr.strip().splitlines() or ["no output"])[-1]
                raise CorpusError(f"fluidsynth failed: {last}; set corpus.music_render.enabled "
                                  f"to false, {RECORDINGS_HINT}")
            return np.fromfile(raw, dtype="<f4").reshape(-1, 2)


def fetch_renderer(cache: Path) -> tuple[Renderer, list[Fetched]]:
    """FluidSynth and the soundfont from Debian packages, extracted into `cache`.

    The returned packages (:data:`RUNTIME` and the soundfont) are what makes the sound and what
    the digest and LICENSES name. A machine that also lacks some of their ordinary dependencies
    (PulseAudio's client, libsndfile, Wayland: loaded, never used for a raw file) gets those
    too, via :func:`loader_dirs`; they change no sample and are not part of the digest.
    """
    runtime = [fetch(name, cache) for name in RUNTIME]
    font = fetch(SOUNDFONT, cache)
    binary = runtime[0].root / "usr" / "bin" / "fluidsynth"
    libs = _lib_dirs(runtime)
    libs += loader_dirs(binary, libs, cache)
    return Renderer(binary, libs, font.root / SF2), [*runtime, font]


def _lib_dirs(fetched: list[Fetched]) -> tuple[Path, ...]:
    return tuple(d for f in fetched for d in sorted((f.root / "usr" / "lib").glob("*-linux-gnu")))


def missing_sonames(binary: Path, lib_dirs: tuple[Path, ...]) -> list[str]:
    """Shared libraries the dynamic loader cannot find for `binary` (``ldd``'s "not found")."""
    env = {**os.environ, "LC_ALL": "C", "LD_LIBRARY_PATH": os.pathsep.join(map(str, lib_dirs))}
    try:
        out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, env=env,
                             timeout=60, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []  # no ldd: let the render itself report what is missing
    return sorted({ln.split("=>")[0].strip() for ln in out.splitlines() if "not found" in ln})


def _uninstalled_lib_closure(package: str) -> list[str]:
    """Library packages in `package`'s dependency closure that dpkg does not have installed."""
    flags = ["--recurse", "--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks",
             "--no-replaces", "--no-enhances"]
    try:
        out = subprocess.run(["apt-cache", "depends", *flags, package], capture_output=True,
                             text=True, timeout=120, check=False).stdout
        names = sorted({ln.strip() for ln in out.splitlines()
                        if ln and not ln[0].isspace() and not ln.startswith("<")})
        status = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Status}\\n", *names],
                                capture_output=True, text=True, timeout=120, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    installed = {ln.split()[0] for ln in status.splitlines() if ln.endswith("install ok installed")}
    return [n for n in names if n.startswith("lib") and not n.endswith("-perl")
            and n not in installed and n not in RUNTIME]


def loader_dirs(binary: Path, lib_dirs: tuple[Path, ...], cache: Path) -> tuple[Path, ...]:
    """Extra library folders so `binary` loads on this machine (none where nothing is missing).

    The candidates are the uninstalled library packages of fluidsynth's dependency closure; a
    candidate's folder joins the path only if it holds a missing soname (so no installed
    system library is shadowed), repeated until the loader is satisfied.
    """
    missing = missing_sonames(binary, lib_dirs)
    if not missing:
        return ()
    found: dict[str, Path] = {}
    for name in _uninstalled_lib_closure(RUNTIME[0]):
        for so in sorted((fetch(name, cache).root / "usr" / "lib").rglob("*.so*")):
            found.setdefault(so.name, so.parent)  # subfolders too: libpulse's private lib
    extra: list[Path] = []
    while missing:
        add = sorted({found[m] for m in missing if m in found} - set(extra))
        if not add:
            raise CorpusError(f"fluidsynth lacks {', '.join(missing)} and no Debian package of its "
                              f"dependencies provides them; set corpus.music_render.enabled to "
                              f"false, {RECORDINGS_HINT}")
        extra += add
        missing = missing_sonames(binary, (*lib_dirs, *extra))
    return tuple(extra)


def notice(fetched: list[Fetched], cfg: MusicRender) -> str:
    """LICENSES' section on the rendered pieces, with the soundfont's copyright file whole."""
    lines = [f"Package {PACKAGE}: {cfg.pieces} pieces generated by pipeline/corpus/render.py "
             f"(seed {cfg.seed}, at most {cfg.piece_seconds:g} s each; original, no third-party "
             "score), rendered with the fluidsynth binary and the soundfont of the packages above.",
             ""]
    for f in fetched:
        if f.name == SOUNDFONT:
            path = f.root / "usr" / "share" / "doc" / f.name / "copyright"
            lines += [f"---- {f.name} {f.version}: usr/share/doc/{f.name}/copyright", "",
                      path.read_text(encoding="utf-8", errors="replace").rstrip(), ""]
    return "\n".join(lines)


def render_pieces(renderer: Renderer, cfg: MusicRender, conditioning: Conditioning,
                  fetched: list[Fetched] | None = None) -> Rendered:
    """Generate, render and condition `cfg.pieces` pieces (each one clip, one split unit)."""
    t0 = time.perf_counter()
    rows, clips = [], {}
    for i in range(cfg.pieces):
        midi = midi_piece(cfg.seed, i, cfg.piece_seconds)
        audio = renderer.render(midi)[: int(cfg.piece_seconds * RATE)]
        clip = condition(audio, RATE, conditioning)
        if clip is None:
            continue
        source = f"piece-{i:03d}-{hashlib.sha256(midi).hexdigest()[:8]}.mid"
        cid = clip_id(PACKAGE, source)
        clips[cid] = clip
        rows.append({"clip_id": cid, "package": PACKAGE, "pool": POOL, "kind": "music",
                     "speaker": f"{POOL}/{i:03d}", "source": source})
    table = pd.DataFrame(rows, columns=["clip_id", "package", "pool", "kind", "speaker", "source"])
    fetched = list(fetched or [])
    return Rendered(table, clips, fetched, notice(fetched, cfg), asdict(cfg),
                    round(time.perf_counter() - t0, 1))


def render_music(cfg: MusicRender, cache: Path, conditioning: Conditioning) -> Rendered:
    """Fetch FluidSynth + soundfont into `cache` and render the pieces."""
    renderer, fetched = fetch_renderer(Path(cache))
    return render_pieces(renderer, cfg, conditioning, fetched)
