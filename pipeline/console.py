"""Terminal plumbing shared by the command lines: rich consoles and the user-error wrapper.

A bad input (params, files, storage URIs) becomes one line on stderr and exit code 2; anything
unexpected keeps its traceback (exit 1).
"""

from __future__ import annotations

import functools
import sys

import typer
from rich.console import Console

from .config import ParamsError

err = Console(stderr=True)
out = Console()


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean 'bad input', reported as one line instead of a traceback."""
    from .data import DataError

    types: list[type[BaseException]] = [ParamsError, DataError, FileNotFoundError]
    for mod, name in [
        ("pipeline.audio", "AudioError"),
        ("pipeline.streaming", "ModelDirError"),
        ("pipeline.tracking", "TrackingError"),
        ("pipeline.tune", "TuneError"),
        ("pipeline.compare", "CompareError"),
        ("pipeline.verify", "VerifyError"),
    ]:
        # A module not yet imported cannot have raised its error; importing it here would load
        # TensorFlow (via tune/train) just to print a one-line message.
        module = sys.modules.get(mod)
        if module is not None and hasattr(module, name):
            types.append(getattr(module, name))
    return tuple(types)


def friendly(fn):
    """Run a command; print user errors as one line and exit 2 (1 for anything unexpected)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except _user_errors() as e:
            err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper
