"""The schema's building blocks: strict frozen models, the read recorder, range checks."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from pipeline.errors import UserError

if TYPE_CHECKING:
    from pipeline.config.params import Params

PARAMS_FILE = "params.yaml"


class ParamsError(UserError, ValueError):
    """A params.yaml problem, phrased for the person who has to fix it."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def __getattribute__(self, name: str) -> Any:
        # Only while a test records reads (record_reads): costs one list check otherwise.
        if _RECORDERS and not name.startswith("_"):
            wrapped = _note_read(self, name)
            if wrapped is not None:
                return wrapped
        return super().__getattribute__(name)


# ----------------------------------------------------------------------------- read recording
# The dvc.yaml test runs each stage inside record_reads() and checks that every params key the
# stage read is one its `params:` list declares. Reads are keyed by the dotted path of the
# object read from, indexed once from the validated Params (derived copies are not params).
_RECORDERS: list[set[str]] = []
_PATHS: dict[int, tuple[weakref.ref, str]] = {}


def _note_read(obj: BaseModel, name: str) -> Any:
    """Record a field read; for model_dump, return a wrapper recording the dumped fields."""
    entry = _PATHS.get(id(obj))
    if entry is None or entry[0]() is not obj:
        return None
    path = entry[1]
    if name in ("model_dump", "model_dump_json"):
        dump = BaseModel.__getattribute__(obj, name)

        def recorded(*args: Any, include: Any = None, exclude: Any = None, **kwargs: Any) -> Any:
            for field in type(obj).model_fields:
                if (include is None or field in include) and (exclude is None
                                                               or field not in exclude):
                    _record(f"{path}.{field}" if path else field)
            return dump(*args, include=include, exclude=exclude, **kwargs)

        return recorded
    if name in type(obj).model_fields:
        value = object.__getattribute__(obj, name)
        if not isinstance(value, (BaseModel, dict)):  # a block: only what is read from it counts
            _record(f"{path}.{name}" if path else name)
    return None


def _record(key: str) -> None:
    for reads in _RECORDERS:
        reads.add(key)


def _index(obj: BaseModel, path: str) -> None:
    _PATHS[id(obj)] = (weakref.ref(obj), path)
    for name in type(obj).model_fields:
        value = object.__getattribute__(obj, name)
        sub = f"{path}.{name}" if path else name
        if isinstance(value, BaseModel):
            _index(value, sub)
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, BaseModel):
                    _index(item, f"{sub}.{key}")


@contextmanager
def record_reads(params: Params) -> Iterator[set[str]]:
    """Collect the dotted params keys read from `params` inside the block (tests only)."""
    _index(params, "")
    reads: set[str] = set()
    _RECORDERS.append(reads)
    try:
        yield reads
    finally:
        _RECORDERS.remove(reads)


def _range(lo: float, hi: float):
    """Validator factory for `[low, high]` pairs constrained to [lo, hi]."""

    def check(v: tuple[float, float]) -> tuple[float, float]:
        a, b = v
        if not (lo <= a <= b <= hi):
            raise ValueError(f"must be [low, high] with {lo} <= low <= high <= {hi}, got [{a}, {b}]")
        return v

    return check


FloatPair = tuple[float, float]


