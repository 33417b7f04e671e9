"""Terminal plumbing shared by the command lines: rich consoles and the user-error wrapper.

A bad input (params, files, storage URIs) becomes one line on stderr and exit code 2; anything
unexpected keeps its traceback (exit 1).
"""

from __future__ import annotations

import functools

import typer
from rich.console import Console

from pipeline.errors import UserError

err = Console(stderr=True)
out = Console()


def friendly(fn):
    """Run a command; print user errors as one line and exit 2 (1 for anything unexpected)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except UserError as e:
            err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper
