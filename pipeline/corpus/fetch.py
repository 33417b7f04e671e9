"""Fetch Debian packages without root: ``apt-get download`` into a cache, ``dpkg-deb -x`` out.

The .deb is checked against the SHA256 apt's index gives (``--print-uris``), so a cached file is
reused only if it is the exact archive; extraction goes to a temp folder renamed into place, so a
crash never leaves a half tree that a later build would trust.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.corpus.errors import RECORDINGS_HINT, CorpusError

TOOLS = ("apt-get", "dpkg-deb")
TIMEOUT = 900  # seconds per command: a 145 MB package on a slow mirror
_URI = re.compile(r"^'(?P<url>[^']+)' (?P<file>\S+) (?P<size>\d+) SHA256:(?P<sha256>[0-9a-f]{64})$")


@dataclass(frozen=True)
class Fetched:
    """One downloaded and extracted package."""

    name: str
    version: str
    url: str
    sha256: str
    size: int
    deb: Path
    root: Path
    licence: str
    upstream: str


def require_tools() -> None:
    """Fail early, with the alternative, where this is not a Debian-like system."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise CorpusError(f"{' and '.join(missing)} not found: the speech corpus is fetched from "
                          f"Debian packages with `apt-get download` and `dpkg-deb -x`; run it on "
                          f"Debian/Ubuntu, {RECORDINGS_HINT}")


NET_HINT = f"check the network and apt sources (`apt-get update`), {RECORDINGS_HINT}"


def _run(args: list[str], cwd: Path, what: str, hint: str = NET_HINT) -> str:
    env = {**os.environ, "LC_ALL": "C"}
    try:
        res = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env,
                             timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise CorpusError(f"{what} failed ({err}); {hint}") from err
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["no message"])[-1]
        raise CorpusError(f"{what} failed: {last}; {hint}")
    return res.stdout


def locate(name: str, cache: Path) -> tuple[str, str, int, str]:
    """(url, file name, size, sha256) of the candidate version apt would download.

    Asked in an empty folder: apt prints nothing for an archive already in the current one.
    """
    with tempfile.TemporaryDirectory(dir=cache, prefix=".uri-") as tmp:
        out = _run(["apt-get", "download", "--print-uris", name], Path(tmp),
                   f"apt-get download {name}")
    for line in out.splitlines():
        if m := _URI.match(line.strip()):
            return m["url"], m["file"], int(m["size"]), m["sha256"]
    raise CorpusError(f"apt-get download --print-uris {name} printed no archive; run "
                      f"`apt-get update` first, {RECORDINGS_HINT}")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(name: str, cache: Path) -> tuple[Path, str, int, str]:
    """The verified .deb of `name` in ``cache/debs`` (downloaded only when missing or wrong)."""
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    url, file, size, sha = locate(name, debs)
    deb = debs / file
    if deb.is_file() and deb.stat().st_size == size and sha256_file(deb) == sha:
        return deb, url, size, sha
    with tempfile.TemporaryDirectory(dir=debs, prefix=".dl-") as tmp:
        os.chmod(tmp, 0o755)  # apt's _apt user may then write into it (no "unsandboxed" warning)
        _run(["apt-get", "download", name], Path(tmp), f"apt-get download {name}")
        got = Path(tmp) / file
        if not got.is_file() or sha256_file(got) != sha:
            raise CorpusError(f"apt-get download {name}: {file} is missing or its SHA256 differs "
                              f"from apt's index; run `apt-get update` and retry, {RECORDINGS_HINT}")
        os.replace(got, deb)
    return deb, url, size, sha


def extract(deb: Path, name: str, version: str, cache: Path) -> Path:
    """The package's files under ``cache/staging/<name>_<version>`` (extracted once)."""
    root = cache / "staging" / f"{name}_{version.replace(':', '%3a')}"
    if root.is_dir():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}."))
    try:
        _run(["dpkg-deb", "-x", str(deb), str(tmp)], cache, f"dpkg-deb -x {deb.name}",
             f"delete {deb} so it is downloaded again, {RECORDINGS_HINT}")
        os.replace(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def fetch(name: str, cache: Path) -> Fetched:
    """Download, verify and extract one package; record its exact version and licence."""
    require_tools()
    cache = Path(cache).resolve()
    deb, url, size, sha = download(name, cache)
    version = _run(["dpkg-deb", "-f", str(deb), "Version"], cache, f"dpkg-deb -f {deb.name}",
                   f"delete {deb} so it is downloaded again, {RECORDINGS_HINT}").strip()
    root = extract(deb, name, version, cache)
    licence, upstream = read_copyright(root / "usr" / "share" / "doc" / name / "copyright")
    return Fetched(name, version, url, sha, size, deb, root, licence, upstream)


# ----------------------------------------------------------------------------- licences
_GPL = re.compile(r"GNU (Lesser |Library )?General Public License.{0,120}?version (\d(\.\d)?)",
                  re.DOTALL | re.IGNORECASE)


def _stanzas(text: str) -> list[dict[str, str]]:
    out = []
    for block in re.split(r"\n\s*\n", text):
        fields, key = {}, None
        for line in block.splitlines():
            if m := re.match(r"^([A-Za-z-]+):\s*(.*)$", line):
                key = m[1].lower()
                fields[key] = m[2].strip()
            elif key and line.strip():
                fields[key] += " " + line.strip()
        out.append(fields)
    return out


def parse_copyright(text: str) -> tuple[str, str]:
    """(licence, upstream URL) from a debian/copyright text.

    Machine-readable files give the ``Files: *`` licence plus those of stanzas about sound,
    music or voices (what the corpus takes); free-form ones give the first GPL version named.
    """
    stanzas = _stanzas(text)
    if text.startswith("Format:"):
        head = stanzas[0]
        found = []
        for st in stanzas:
            files, lic = st.get("files", ""), st.get("license", "").split(" ")[0]
            if lic and (files == "*" or re.search(r"sound|music|voice", files, re.IGNORECASE)):
                found.append(lic if files == "*" else f"{lic} ({files})")
        return "; ".join(dict.fromkeys(found)) or "unknown", head.get("source", "")
    url = re.search(r"https?://\S+", text)
    upstream = url[0].rstrip(".,)") if url else ""
    if m := _GPL.search(text):
        prefix = "LGPL" if m[1] else "GPL"
        return f"{prefix}-{m[2]}", upstream
    return "unknown (see the package's copyright file)", upstream


def read_copyright(path: Path) -> tuple[str, str]:
    if not path.is_file():
        return f"unknown (no {path.name} in the package)", ""
    return parse_copyright(path.read_text(encoding="utf-8", errors="replace"))


def licences_text(fetched: list[Fetched]) -> str:
    """The LICENSES file: what the corpus is made of and under which terms."""
    lines = ["Speech corpus built from these Debian packages (bookworm). Each package's full",
             "terms are in usr/share/doc/<package>/copyright inside its .deb.", ""]
    for f in fetched:
        lines += [f"Package:  {f.name}", f"Version:  {f.version}", f"Licence:  {f.licence}",
                  f"Source:   {f.url}", f"SHA256:   {f.sha256}"]
        if f.upstream:
            lines.append(f"Upstream: {f.upstream}")
        lines.append("")
    return "\n".join(lines)
