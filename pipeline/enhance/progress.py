"""One rich progress bar on stderr (only on a terminal) for enhance's files and folders."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


class Bar:
    """``update(done, total)`` moves the bar; ``note(text)`` prints a line above it."""

    def __init__(self, progress=None, task=None) -> None:
        self._progress, self._task = progress, task

    @property
    def active(self) -> bool:
        return self._progress is not None

    def update(self, done: float, total: float, description: str | None = None) -> None:
        if self._progress is not None:
            kw = {} if description is None else {"description": description}
            self._progress.update(self._task, completed=done, total=total, **kw)

    def note(self, markup: str) -> None:
        """Print a line above the bar (only when it is shown)."""
        if self._progress is not None:
            self._progress.console.print(markup, highlight=False, soft_wrap=True)


@contextlib.contextmanager
def progress_bar(description: str, show: bool | None = None) -> Iterator[Bar]:
    """A transient bar when ``show`` is not False and stderr is a terminal, else a no-op."""
    if show is False or not sys.stderr.isatty():
        yield Bar()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with bar:
        yield Bar(bar, bar.add_task(description, total=None))
