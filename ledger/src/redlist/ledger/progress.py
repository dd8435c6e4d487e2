"""Progress of long work on a terminal, the same for every program (docs/adr/0007).

One bar, drawn by `rich <https://rich.readthedocs.io>`_, the project's one library for
terminal output: ``submitting rows ━━━━━━╺━━━━ 5,000/20,000 rows 1,234/s 0:00:12``.
It appears only when the stream is a terminal (a log file or a pipe gets nothing),
redraws at most ten times a second whatever the caller's pace, and is erased when the
work ends, so the report that follows starts on a clean line. The drawing
(``progressdraw``) is loaded only when a bar is drawn: off a terminal a program does
not pay for loading rich (ADR 0041).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Self, TextIO

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

#: Seconds between two redraws at most.
REDRAW_S = 0.1


class ProgressBar:
    """A progress bar for ``done`` of ``total`` items, or nothing off a terminal.

    ``update(done, total)`` may be called as often as the work likes; ``stage`` renames
    the bar (``checking entries``, then ``checking tree``). Use it as a context manager,
    or call :meth:`close`.
    """

    def __init__(
        self,
        stream: TextIO,
        what: str,
        unit: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._shown = float("-inf")
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if not _is_terminal(stream):
            return
        from redlist.ledger.progressdraw import start

        self._progress, self._task = start(stream, what, unit, clock)

    @property
    def shown(self) -> bool:
        """Whether a bar is drawn at all (the stream is a terminal)."""
        return self._progress is not None

    def update(self, done: int, total: int, stage: str | None = None) -> None:
        if self._progress is None or self._task is None:
            return
        self._progress.update(self._task, completed=done, total=total, description=stage)
        now = self._clock()
        if stage is not None or done >= total or now - self._shown >= REDRAW_S:
            self._shown = now
            self._progress.refresh()

    def close(self) -> None:
        """Erase the bar (once)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream: no bar
        return False
