"""Where runs go, and URIs safe to print: the tracking location rules in one place.

No mlflow import: the report, compare and the tune stage's storage messages use these too.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse, urlsplit, urlunsplit

from pipeline.layout import RepoPaths

if TYPE_CHECKING:
    from pipeline.config import TrackingCfg

_DVC_TEMP = (".dvc", "tmp", "exps")


# ----------------------------------------------------------------------------- locations
def repo_root(path: str | os.PathLike[str] = ".") -> Path:
    """The user's repository root, also from inside a ``dvc exp run --temp/--queue`` copy.

    Those copies live under ``<repo>/.dvc/tmp/exps/<tmpdir>/``; runs tracked from there must land
    in the real repo's database, not in a copy that DVC deletes afterwards.
    """
    p = Path(path).resolve()
    parts = p.parts
    for i in range(len(parts) - len(_DVC_TEMP) + 1):
        if parts[i : i + len(_DVC_TEMP)] == _DVC_TEMP:
            return Path(*parts[:i])
    return p


def resolve_uri(cfg: TrackingCfg | None, root: str | os.PathLike[str] = ".") -> str:
    """MLFLOW_TRACKING_URI, else params' tracking.uri, else ``sqlite:///<repo>/mlflow.db``."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    if cfg is not None and cfg.uri:
        return cfg.uri
    return f"sqlite:///{RepoPaths(repo_root(root)).mlflow_db}"


def portable_uri(uri: str, root: str | os.PathLike[str] = ".") -> str:
    """`uri` as every clone would write it: paths under the repository relative to it
    (``sqlite:///mlflow.db``, ``journal:optuna/E.journal``), passwords masked.

    For committed files, which must not carry the absolute paths of the machine that wrote them.
    """
    repo = repo_root(root).as_posix().rstrip("/") + "/"
    for prefix in ("sqlite:///", "journal:", "file://", ""):
        if uri.startswith(prefix + repo):
            return prefix + uri.removeprefix(prefix + repo)
    return mask_passwords(uri)


def is_local_backend(uri: str) -> bool:
    """True for sqlite and plain-file stores: there we choose where artifacts go."""
    scheme = urlparse(uri).scheme
    return scheme in ("", "file", "sqlite") or (len(scheme) == 1 and os.name == "nt")


_CREDENTIALS = re.compile(r"(\b[a-zA-Z][\w+.-]*://[^/\s:@]*):[^@\s/]*@")


def mask_passwords(text: str) -> str:
    """Every `scheme://user:password@` in free text (URIs, messages, params) with `***` for it."""
    return _CREDENTIALS.sub(r"\1:***@", text)




def public_uri(uri: str | None) -> str | None:
    """`uri` without a password (user names stay): safe to print into a committed page."""
    return mask_passwords(uri) if uri else uri


def run_url(uri: str | None, run_id: str | None) -> str | None:
    """MLflow UI link of a run, only for an http(s) tracking server; never with credentials."""
    if not uri or not run_id:
        return None
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return None
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    base = urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))
    # MLflow 3's UI starts in its GenAI mode (a per-browser setting): ask for model training.
    return f"{base}/#/runs/{run_id}?workflowType=machine_learning"


