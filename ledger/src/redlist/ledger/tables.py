"""Tables on a terminal, the same for every program (docs/adr/0007).

Drawn by `rich <https://rich.readthedocs.io>`_, which measures Chinese characters as
two columns, so a column of names lines up. On a terminal the table fits its width;
anywhere else (a file, a pipe) it takes the width its cells need, without colour or
escape sequences, so ``redlist-node residents list > list.txt`` keeps every cell whole.
rich is loaded when a table is printed, not with this module: most runs of a program
that can print one never do (ADR 0041).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

#: Columns assumed off a terminal: wide enough that no table is ever folded.
_OFF_TERMINAL_WIDTH = 10_000


def print_table(
    stream: TextIO, headers: Sequence[str], rows: Sequence[Sequence[str]], *, title: str = ""
) -> None:
    """Print ``rows`` under ``headers`` as one table on ``stream``."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    terminal = _is_terminal(stream)
    console = Console(
        file=stream,
        highlight=False,
        soft_wrap=False,
        force_terminal=terminal,
        no_color=not terminal,
        width=None if terminal else _OFF_TERMINAL_WIDTH,
    )
    table = Table(
        title=title or None,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        title_justify="left",
    )
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        # Cells are plain text: a "[" in a name is not rich's markup.
        table.add_row(*(Text(cell) for cell in row))
    console.print(table)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
