"""What is wrong with a sheet, row by row: one list, shown in part and written in full.

Every check of a sheet (its cells, then the town's catalogue, dates and caps) adds
``Problem``s; if there is any, the whole sheet is refused with one ``SheetError``
before anything is signed or sent. Its message lists the first
``MAX_SHOWN_PROBLEMS`` and counts the rest; ``write_problems`` writes them all as a CSV
file (UTF-8 with the byte order mark Excel needs) the clerk opens beside the sheet.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from redlist.ledger import i18n
from redlist.ledger.errors import FormatError
from redlist.ledger.i18n import N_, _, ngettext

#: Most problems listed in the message when a sheet is refused.
MAX_SHOWN_PROBLEMS = 50
#: The columns of an errors file.
PROBLEM_COLUMNS = (N_("row"), N_("column"), N_("problem"))
#: Column names accepted in Chinese, and the English name each stands for: an award
#: sheet's 账户,规则,数量,日期,备注; a catalogue's 代码,名称,模块,分值,需评议,单次上限,
#: 每月上限,决定; a reversal list's 序号,原因.
COLUMN_ALIASES = {
    "账户": "account",
    "规则": "rule",
    "数量": "qty",
    "日期": "date",
    "备注": "note",
    "代码": "code",
    "名称": "title",
    "模块": "module",
    "分值": "points",
    "需评议": "council",
    "单次上限": "max_qty",
    "每月上限": "max_per_month",
    "决定": "decided",
    "序号": "seq",
    "原因": "reason",
}
#: The Chinese name of each column, as the messages name them in Chinese.
CHINESE_COLUMNS = {english: chinese for chinese, english in COLUMN_ALIASES.items()}


def shown_column(column: str) -> str:
    """A sheet's column as a message names it: its Chinese header (账户, 日期...) when the
    tools speak Chinese, else its English one, as the README and the headers list them."""
    if i18n.is_chinese():
        return CHINESE_COLUMNS.get(column, column)
    return column


@dataclass(frozen=True)
class Problem:
    """What is wrong with one cell: its ``row`` as a spreadsheet numbers it (the header is
    row 1), its ``column`` ("" for the row as a whole), and a plain sentence."""

    row: int
    column: str
    message: str

    def line(self) -> str:
        where = (
            _("row {row}, column {column}").format(row=self.row, column=shown_column(self.column))
            if self.column
            else _("row {row}").format(row=self.row)
        )
        return _("{where}: {message}").format(where=where, message=self.message)


class SheetError(FormatError):
    """A sheet refused whole, with every ``Problem`` found in it."""

    def __init__(self, name: str, problems: Sequence[Problem], *, advice: str = "") -> None:
        self.name = name
        self.problems = tuple(problems)
        shown = [problem.line() for problem in self.problems[:MAX_SHOWN_PROBLEMS]]
        rest = len(self.problems) - len(shown)
        if rest:
            shown.append(_("... and {rest} more (--errors FILE writes them all)").format(rest=rest))
        rows = len({problem.row for problem in self.problems})
        count = ngettext("{rows} row", "{rows} rows", rows).format(rows=rows)
        if len(self.problems) != rows:
            count += _(" ({problems_count} problems)").format(problems_count=len(self.problems))
        super().__init__(
            _(
                "{name}: {count} cannot be used; nothing was submitted. Fix the file and run the "
                "command again{advice}:\n"
                "  "
            ).format(name=name, count=count, advice=advice)
            + "\n  ".join(shown)
        )


def problems_csv(problems: Sequence[Problem]) -> bytes:
    """``problems`` as a CSV file's bytes: UTF-8 with a byte order mark, CRLF lines. The
    header and the columns are in the clerk's language, as the messages name them
    (行,列,问题 and 账户, 日期... in Chinese)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow([_(header) for header in PROBLEM_COLUMNS])
    for problem in problems:
        column = shown_column(problem.column) if problem.column else ""
        writer.writerow((problem.row, column, problem.message))
    return b"\xef\xbb\xbf" + text.getvalue().encode("utf-8")


def write_problems(path: Path, problems: Sequence[Problem]) -> None:
    """Write ``problems_csv(problems)`` to ``path`` (``FormatError`` if it cannot be)."""
    try:
        path.write_bytes(problems_csv(problems))
    except OSError as error:
        raise FormatError(
            _("cannot write the errors file {path}: {strerror}").format(
                path=path, strerror=error.strerror
            )
        ) from None
