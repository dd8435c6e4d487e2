"""CSV files from a spreadsheet: rule catalogues and bulk awards, checked row by row.

CSV files are UTF-8, with or without the byte order mark Excel writes; the first
row names the columns (any order, any case). Rows are numbered as a spreadsheet
shows them: the header is row 1, the first data row is row 2. Rows whose cells
are all empty are skipped. A file with any unusable row is refused whole, listing
the rows and what is wrong with each, so nothing of it is sent.

Entry ids of a rule catalogue's rows are derived from the file's SHA-256 and the row
number (``row_entry_id``): the same file gives the same ids on every run, and a catalogue
goes in as one atomic batch. An award sheet's rows are known by what they say instead
(``redlist.staff.rowids``), so a sheet saved again or corrected is still recognised.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from redlist.ledger.entry import ID_SIZE, Award, RuleChange
from redlist.ledger.errors import FormatError
from redlist.staff.entries import Draft, SaltSource, Stamp, award, random_salt, rule_set
from redlist.staff.problems import Problem, SheetError
from redlist.staff.values import (
    check_account,
    check_cap,
    check_date,
    check_positive,
    check_rule_code,
    check_rule_points,
    check_target,
    check_text,
    parse_council,
    parse_integer,
)

#: Domain separation for ids derived from a file: never equal to an id derived
#: any other way, nor for another purpose.
ROW_ID_DOMAIN = b"redlist/staff/row-id/v1\x00"


def file_digest(data: bytes) -> bytes:
    """SHA-256 of a file's bytes: what ids of its rows are derived from."""
    return hashlib.sha256(data).digest()


def row_entry_id(digest: bytes, purpose: str, row: int) -> bytes:
    """The entry id of row ``row`` of the file whose SHA-256 is ``digest``.

    ``purpose`` ("awards", "rules") keeps files read for different commands
    apart. The same file and row always give the same id.
    """
    material = ROW_ID_DOMAIN + purpose.encode("utf-8") + b"\x00" + digest + row.to_bytes(8, "big")
    return hashlib.sha256(material).digest()[:ID_SIZE]


@dataclass(frozen=True)
class RuleRow:
    """One rule of a catalogue file (``redlist rules load``)."""

    row: int
    code: str
    title: str
    module: str
    points: int
    council: bool
    max_qty: int | None = None
    max_per_month: int | None = None

    def body(self, stamp: Stamp) -> Draft[RuleChange]:
        return rule_set(
            stamp,
            self.code,
            self.title,
            self.module,
            self.points,
            self.council,
            self.max_qty,
            self.max_per_month,
        )


@dataclass(frozen=True)
class AwardRow:
    """One award of a bulk file (``redlist submit``); ``date`` None: the day it is sent
    (``entries.dated`` fills it in)."""

    row: int
    account: str
    rule: str
    qty: int
    note: str | None
    date: str | None = None

    def body(self, stamp: Stamp, salt: SaltSource = random_salt) -> Draft[Award]:
        """The award of this row; a re-run gives the same bytes when ``salt`` derives the
        note's salt (``entries.derived_salt``)."""
        return award(stamp, self.account, self.rule, self.qty, self.note, self.date, salt=salt)


RULE_COLUMNS = ("code", "title", "module", "points", "council")
RULE_OPTIONAL_COLUMNS = ("max_qty", "max_per_month")
AWARD_COLUMNS = ("account", "rule")
AWARD_OPTIONAL_COLUMNS = ("qty", "date", "note")
#: Column names accepted in Chinese, and the English name each stands for.
COLUMN_ALIASES = {"日期": "date", "序号": "seq", "原因": "reason"}
REVERSAL_COLUMNS = ("seq",)
REVERSAL_OPTIONAL_COLUMNS = ("reason",)

_Row = TypeVar("_Row")


def parse_rules_csv(data: bytes, name: str) -> tuple[RuleRow, ...]:
    """Every row of a catalogue file (columns ``code,title,module,points,council``;
    optional ``max_qty,max_per_month``, empty for no cap).

    Refuses the whole file, listing the bad rows, if any row is unusable or a
    code appears twice.
    """

    def parse(row: int, cells: dict[str, str]) -> RuleRow:
        points_text = cells["points"]
        try:
            points = check_rule_points(parse_integer(points_text, "points"))
        except FormatError:
            raise FormatError(f"points must be a non-zero integer, not {points_text!r}") from None
        return RuleRow(
            row,
            check_rule_code(cells["code"], "code"),
            check_text(cells["title"], "title"),
            check_text(cells["module"], "module"),
            points,
            parse_council(cells["council"]),
            _optional_cap(cells.get("max_qty", ""), "max_qty"),
            _optional_cap(cells.get("max_per_month", ""), "max_per_month"),
        )

    rows = _parse_csv(data, name, RULE_COLUMNS, RULE_OPTIONAL_COLUMNS, parse)
    _refuse_duplicates(name, [(rule.row, rule.code) for rule in rows], "rule code")
    return rows


def parse_awards_csv(data: bytes, name: str) -> tuple[AwardRow, ...]:
    """Every row of a bulk award file (columns ``account,rule``; optional
    ``qty,date,note``; ``日期`` names the date column too).

    An empty ``qty`` means 1, an empty ``date`` the day the row is sent (in the log's
    time zone), an empty ``note`` none. Account ids are case-folded
    (``values.fold_account``). Refuses the whole file, listing the bad rows, if any
    row is unusable.
    """

    def parse(row: int, cells: dict[str, str]) -> AwardRow:
        qty_text = cells.get("qty", "")
        qty = _cell("qty", parse_integer, qty_text, "qty") if qty_text else 1
        date_text = cells.get("date", "")
        return AwardRow(
            row,
            _cell("account", check_account, cells["account"]),
            _cell("rule", check_text, cells["rule"], "rule"),
            _cell("qty", check_positive, qty, "qty"),
            _cell("note", check_text, cells.get("note", ""), "note", required=False) or None,
            _cell("date", check_date, date_text, "date") if date_text else None,
        )

    return _parse_csv(data, name, AWARD_COLUMNS, AWARD_OPTIONAL_COLUMNS, parse)


@dataclass(frozen=True)
class ReversalRow:
    """One entry to reverse, from a file for ``redlist reverse --csv``; ``reason`` None:
    the one given with ``--reason``."""

    row: int
    target: int
    reason: str | None


def parse_reversals_csv(data: bytes, name: str) -> tuple[ReversalRow, ...]:
    """Every row of a reversals file (column ``seq``, the entry number; optional
    ``reason``; ``序号`` and ``原因`` name them too). Refuses the whole file, listing the
    bad rows, if any row is unusable or names an entry twice."""

    def parse(row: int, cells: dict[str, str]) -> ReversalRow:
        target = _cell("seq", parse_integer, cells["seq"], "seq")
        reason = _cell("reason", check_text, cells.get("reason", ""), "reason", required=False)
        return ReversalRow(row, _cell("seq", check_target, target), reason or None)

    rows = _parse_csv(data, name, REVERSAL_COLUMNS, REVERSAL_OPTIONAL_COLUMNS, parse)
    _refuse_duplicates(name, [(row.row, str(row.target)) for row in rows], "entry")
    return rows


def _optional_cap(text: str, what: str) -> int | None:
    """A rule's cap from a cell: empty for none, else a whole number of at least 1."""
    if not text:
        return None
    try:
        return check_cap(parse_integer(text, what), what)
    except FormatError:
        raise FormatError(
            f"{what} must be a whole number of at least 1 (or empty: no limit), not {text!r}"
        ) from None


def read_input_file(path: Path, what: str) -> bytes:
    """The bytes of a file the clerk named (``what``: "catalogue file"), or a clear error."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise FormatError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise FormatError(f"{what} {path} is a directory, not a file") from None
    except OSError as error:
        raise FormatError(f"cannot read {what} {path}: {error.strerror}") from None


def _parse_csv(
    data: bytes,
    name: str,
    required: Sequence[str],
    optional: Sequence[str],
    parse: Callable[[int, dict[str, str]], _Row],
) -> tuple[_Row, ...]:
    text = _decode(data, name)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        records = list(reader)
    except csv.Error as error:
        raise FormatError(f"{name}: row {reader.line_num}: {_csv_problem(error)}") from None
    if not records:
        raise FormatError(f"{name} is empty; its first row must name the columns")
    columns = _header(name, records[0], required, optional)
    rows: list[_Row] = []
    problems: list[Problem] = []
    for number, record in enumerate(records[1:], start=2):
        if not any(cell.strip() for cell in record):
            continue
        if len(record) < len(columns) or any(cell.strip() for cell in record[len(columns) :]):
            message = f"has {len(record)} cells, the header has {len(columns)}"
            problems.append(Problem(number, "", message))
            continue
        cells = {column: cell.strip() for column, cell in zip(columns, record, strict=False)}
        try:
            rows.append(parse(number, cells))
        except _CellError as error:
            problems.append(Problem(number, error.column, error.diagnostics()))
        except FormatError as error:
            problems.append(Problem(number, "", error.diagnostics()))
    if problems:
        raise SheetError(name, problems)
    if not rows:
        raise FormatError(f"{name} has no rows below its header; nothing was submitted")
    return tuple(rows)


class _CellError(FormatError):
    """A cell's value is unusable: ``column`` names it."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column


_Value = TypeVar("_Value")


def _cell(column: str, check: Callable[..., _Value], *args: Any, **kwargs: Any) -> _Value:
    """``check(*args, **kwargs)``; a ``FormatError`` it raises names ``column``."""
    try:
        return check(*args, **kwargs)
    except FormatError as error:
        raise _CellError(column, error.diagnostics()) from None


def _decode(data: bytes, name: str) -> str:
    """The text of a CSV file, which must be UTF-8 (a byte order mark is dropped)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        row = data.count(b"\n", 0, error.start) + 1
        try:
            data.decode("gb18030")
        except UnicodeDecodeError:
            encoding = "is not UTF-8 text"
        else:  # Excel's "CSV (comma delimited)" on a Chinese Windows
            encoding = "is saved in the Chinese Windows encoding (GBK), not UTF-8"
        raise FormatError(
            f"{name} {encoding} (first seen in row {row}); in Excel use Save As, "
            "'CSV UTF-8 (comma delimited) (*.csv)'"
        ) from None


def _csv_problem(error: csv.Error) -> str:
    """A CSV reader's complaint in a clerk's words."""
    if "end of data" in str(error) or "EOF" in str(error):
        return 'a quoted cell is never closed (a " without its closing ")'
    return f"not valid CSV ({error})"


# Column names that show the file was meant for the other CSV command.
_OTHER_COMMAND = {
    "code": "a rule catalogue: load it with 'redlist rules load'",
    "account": "awards: submit them with 'redlist submit'",
}


def _header(
    name: str, header: list[str], required: Sequence[str], optional: Sequence[str]
) -> list[str]:
    columns = [cell.strip().lower() for cell in header]
    columns = [COLUMN_ALIASES.get(column, column) for column in columns]
    while columns and not columns[-1]:
        columns.pop()  # empty cells Excel keeps right of the table: no column at all
    expected = ",".join((*required, *optional))
    if "" in columns:
        raise FormatError(
            f"{name}: row 1 must name the columns ({expected}); column {columns.index('') + 1} "
            "has no name"
        )
    unknown = [column for column in columns if column not in (*required, *optional)]
    if unknown:
        listed = ", ".join(repr(column) for column in unknown)
        verb = "is" if len(unknown) == 1 else "are"
        hint = ""
        if len(columns) == 1 and any(sep in columns[0] for sep in ";\t"):
            hint = "; the cells seem separated by ';' or tabs: save the file as CSV with commas"
        else:
            for column, other in _OTHER_COMMAND.items():
                if column in columns and column not in required:
                    hint = f"; this file looks like {other}"
        raise FormatError(
            f"{name}: row 1 must name the columns ({expected}); "
            f"{listed} {verb} not among them{hint}"
        )
    twice = sorted({column for column in columns if columns.count(column) > 1})
    if twice:
        raise FormatError(f"{name}: row 1 names column {twice[0]!r} twice")
    missing = [column for column in required if column not in columns]
    if missing:
        raise FormatError(
            f"{name}: row 1 must name the columns ({expected}); missing: {', '.join(missing)}"
        )
    return columns


def _refuse_duplicates(name: str, keyed: Sequence[tuple[int, str]], what: str) -> None:
    first: dict[str, int] = {}
    problems: list[Problem] = []
    for row, key in keyed:
        if key in first:
            problems.append(Problem(row, "", f"{what} {key!r} already appears in row {first[key]}"))
        else:
            first[key] = row
    if problems:
        raise SheetError(name, problems)
