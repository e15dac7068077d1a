"""The CLI's consoles (stdout for results, stderr for progress and errors) and its progress bars."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=False, width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def progress(items: Iterable[Any], label: str, total: int) -> Iterable[Any]:
    """Yield ``items`` while a progress bar labelled ``label`` counts them (``total`` expected) on stderr."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=False) as bars:
        task = bars.add_task(label, total=total)
        for item in items:
            yield item
            bars.advance(task)
