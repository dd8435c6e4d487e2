"""How ``progress.ProgressBar`` draws on a terminal, with rich (docs/adr/0007).

Loaded only when a bar is drawn (ADR 0041): a program whose output goes to a file or a
pipe never loads rich.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _Count(ProgressColumn):
    """``5,000/20,000 rows``."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self._unit = f" {unit}" if unit else ""

    def render(self, task: Task) -> Text:
        total = "?" if task.total is None else f"{int(task.total):,}"
        return Text(f"{int(task.completed):,}/{total}{self._unit}")


class _Rate(ProgressColumn):
    """``1,234/s``: items per second since the work started."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed
        if not elapsed or not task.completed:
            return Text("")
        return Text(f"{task.completed / elapsed:,.0f}/s")


def start(
    stream: TextIO, what: str, unit: str, clock: Callable[[], float]
) -> tuple[Progress, TaskID]:
    """A started bar on the terminal ``stream``, ``what 5,000/20,000 unit 1,234/s 0:00:12``,
    redrawn only when asked (``Progress.refresh``) and erased when stopped."""
    console = Console(file=stream, force_terminal=True, highlight=False, soft_wrap=False)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=30),
        _Count(unit),
        _Rate(),
        TimeRemainingColumn(),
        console=console,
        get_time=clock,
        auto_refresh=False,
        transient=True,
        # Output of the program itself goes where it went: stdout may be JSON.
        redirect_stdout=False,
        redirect_stderr=False,
    )
    progress.start()
    return progress, progress.add_task(what, total=None)
