"""Reading params.yaml: one message naming the key path for anything wrong."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pipeline.config.base import PARAMS_FILE, ParamsError, Strict
from pipeline.config.params import Params

# ----------------------------------------------------------------------------- loading

# Keys that left the schema, by (block, key): what to write instead. A params.yaml from before
# gets this message rather than a bare "unknown key".
REMOVED_KEYS = {
    ("train", "max_seconds"): "removed: training length is counted in epochs, never in seconds "
                              "(set train.epochs and train.patience)",
    ("music_render", "max_seconds"): "renamed to `piece_seconds` (the length of each rendered "
                                     "piece, in audio seconds)",
}


def _suggest(loc: tuple[Any, ...]) -> str:
    """A 'did you mean' for a misspelt key, from the sibling names the schema allows."""
    key = str(loc[-1])
    candidates: set[str] = set()
    todo = [Strict]
    while todo:  # every block of the schema: new config classes need no registration here
        model = todo.pop()
        candidates.update(model.model_fields)
        todo.extend(model.__subclasses__())
    close = difflib.get_close_matches(key, sorted(candidates), n=1, cutoff=0.75)
    return f" (did you mean `{close[0]}`?)" if close else ""


def _format_error(err: ValidationError, source: str) -> str:
    e = err.errors()[0]
    # Drop the union-tag segments pydantic inserts (e.g. 'noise') so the path reads like the YAML.
    loc = [str(p) for p in e["loc"] if not str(p).startswith("function-")]
    path = ".".join(loc) or "(top level)"
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] == "extra_forbidden":
        msg = REMOVED_KEYS.get(tuple(loc[-2:])) or f"unknown key{_suggest(tuple(loc))}"
    elif e["type"] == "union_tag_invalid":
        msg = msg.replace("Input tag", "value")
    more = f" (and {len(err.errors()) - 1} more problem(s))" if len(err.errors()) > 1 else ""
    return f"{source}: {path}: {msg}{more}"


def parse_params(raw: Any, source: str = PARAMS_FILE) -> Params:
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ParamsError(_format_error(err, source)) from None


def load_params(path: str | os.PathLike[str] = PARAMS_FILE) -> Params:
    """Read and validate params.yaml; raise ParamsError with one actionable message."""
    p = Path(path)
    if not p.is_file():
        raise ParamsError(f"{p}: params file not found (run from the repository root)")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise ParamsError(f"{p}: malformed YAML{where}: {problem}") from None
    return parse_params(raw, str(p))
