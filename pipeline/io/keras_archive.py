"""Byte-stable ``.keras`` files: the same weights and config give the same bytes.

Keras stamps each archive with the time it was saved (``metadata.json`` and the weights
entry's zip date) and writes each layer's dtype policy with ``id()`` of a Python object as its
``shared_object_id``. None of that is part of the model, but it makes every retraining a new
file for DVC and hides whether two runs gave the same weights. `canonicalize` rewrites the
archive without them; loading is unchanged (the ids only pair up shared objects, and
renumbering keeps the pairs).
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry holds
_SAVED = "1980-01-01@00:00:00"


def _renumber(node: Any, ids: dict[Any, int]) -> Any:
    """Replace every ``shared_object_id`` by its rank of first appearance (1, 2, ...)."""
    if isinstance(node, dict):
        return {k: (ids.setdefault(v, len(ids) + 1) if k == "shared_object_id"
                    else _renumber(v, ids)) for k, v in node.items()}
    if isinstance(node, list):
        return [_renumber(v, ids) for v in node]
    return node


def canonical_entry(name: str, data: bytes) -> bytes:
    """One archive member's canonical bytes (JSON members rewritten, others as they are)."""
    if name == "config.json":
        return json.dumps(_renumber(json.loads(data), {})).encode()
    if name == "metadata.json":
        meta = json.loads(data)
        if "date_saved" in meta:
            meta["date_saved"] = _SAVED
        return json.dumps(meta).encode()
    return data


def canonicalize(path: str | os.PathLike[str]) -> None:
    """Rewrite the ``.keras`` archive at `path` in canonical form (atomically, in place)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.canonical")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as dst:
        for name in sorted(src.namelist()):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o600 << 16
            dst.writestr(info, canonical_entry(name, src.read(name)))
    os.replace(tmp, path)
