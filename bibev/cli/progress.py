"""Progress bars on stderr, only on a terminal and only when progress is enabled.

The library reports progress through an ``on_progress(done, total)`` callback; this module
turns that into a rich progress bar, or into nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from bibev.cli.common import err

OnProgress = Callable[[int, int], None]


def _ignore(done: int, total: int) -> None:
    return None


@contextmanager
def progress_bar(description: str, *, enabled: bool) -> Iterator[OnProgress]:
    """Yield an ``on_progress(done, total)`` callback drawing one bar on stderr."""
    if not (enabled and err.is_terminal):
        yield _ignore
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task(description, total=None)

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield on_progress
