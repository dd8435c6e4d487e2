"""Tables and wrapped sentences on a terminal, the same for every program (docs/adr/0007).

Drawn by `rich <https://rich.readthedocs.io>`_, which measures Chinese characters as
two columns, so a column of names lines up. On a terminal the table fits its width;
anywhere else (a file, a pipe) it takes the width its cells need, without colour or
escape sequences, so ``redlist-node residents list > list.txt`` keeps every cell whole.
rich is loaded when a table is printed, not with this module: most runs of a program
that can print one never do (ADR 0041).

Sentences are wrapped by the same measure (``wrap_text``): a Chinese character takes
two columns, and a Chinese sentence, which has no spaces, may break between any two
characters; ``textwrap`` counts characters and breaks only at spaces, so a Chinese
report ran far past its width.
"""

from __future__ import annotations

import io
import textwrap
import unicodedata
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


def wrap_text(
    text: str, width: int, *, initial_indent: str = "", subsequent_indent: str = ""
) -> list[str]:
    """``textwrap.wrap(text, width, ...)``, by the columns a terminal gives each
    character. Text without wide characters (English) is wrapped by ``textwrap``
    itself, and rich is loaded only for the rest."""
    if not any(unicodedata.east_asian_width(char) in "WF" for char in text):
        return textwrap.wrap(
            text, width, initial_indent=initial_indent, subsequent_indent=subsequent_indent
        )
    from rich.cells import cell_len
    from rich.console import Console
    from rich.text import Text

    indent = max(cell_len(initial_indent), cell_len(subsequent_indent))
    console = Console(
        width=width, file=io.StringIO(), no_color=True, highlight=False, markup=False, emoji=False
    )
    lines = Text(" ".join(text.split())).wrap(console, max(1, width - indent))
    pieces = [str(line).strip() for line in lines]
    return [
        (subsequent_indent if number else initial_indent) + piece
        for number, piece in enumerate(piece for piece in pieces if piece)
    ]


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
