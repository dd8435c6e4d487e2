"""CSV files from a spreadsheet: rule catalogues and bulk awards, checked row by row.

CSV files are UTF-8, with or without the byte order mark Excel writes ("CSV UTF-8"), or
GB18030, what Excel writes for "CSV (comma delimited)" on a Chinese Windows, read as
:mod:`redlist.ledger.csvtext` reads every CSV file (``read_as`` names the one used,
for a command's summary); the first row names the columns (any order, any case). Rows
are numbered as a spreadsheet shows them: the header is row 1, the first data row is
row 2. Rows whose cells are all empty are skipped. A file with any unusable row is
refused whole, listing every bad cell of every bad row (a clerk corrects them all in
one round), so nothing of it is sent.

Entry ids of a rule catalogue's rows are derived from the file's SHA-256 and the row
number (``row_entry_id``): the same file gives the same ids on every run, and a catalogue
goes in as one atomic batch. An award sheet's rows are known by what they say instead
(``redlist.staff.rowids``), so a sheet saved again, in either encoding, or corrected is
still recognised.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from redlist.ledger import i18n
from redlist.ledger.csvtext import decode_text
from redlist.ledger.entry import ID_SIZE, Award, RuleChange
from redlist.ledger.errors import FormatError
from redlist.ledger.i18n import N_, _
from redlist.staff.entries import Draft, SaltSource, Stamp, award, random_salt, rule_set
from redlist.staff.problems import (
    CHINESE_COLUMNS,
    COLUMN_ALIASES,
    Problem,
    SheetError,
    shown_column,
)
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
    #: The meeting that voted the rule (a text kept off the log; None: not given).
    decided: str | None = None

    def body(self, stamp: Stamp, salt: SaltSource = random_salt) -> Draft[RuleChange]:
        return rule_set(
            stamp,
            self.code,
            self.title,
            self.module,
            self.points,
            self.council,
            self.max_qty,
            self.max_per_month,
            self.decided,
            salt=salt,
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
RULE_OPTIONAL_COLUMNS = ("max_qty", "max_per_month", "decided")
AWARD_COLUMNS = ("account", "rule")
AWARD_OPTIONAL_COLUMNS = ("qty", "date", "note")
REVERSAL_COLUMNS = ("seq",)
REVERSAL_OPTIONAL_COLUMNS = ("reason",)

_Row = TypeVar("_Row")


def parse_rules_csv(data: bytes, name: str) -> tuple[RuleRow, ...]:
    """Every row of a catalogue file (columns ``code,title,module,points,council``;
    optional ``max_qty,max_per_month``, empty for no cap, and ``decided``, the meeting
    that voted the rule, empty for none; or in Chinese ``代码,名称,模块,分值,需评议``,
    ``单次上限,每月上限,决定``).

    Refuses the whole file, listing the bad rows, if any row is unusable or a
    code appears twice.
    """

    def parse(row: int, cells: dict[str, str]) -> RuleRow:
        cell = _RowCells()
        code = cell.check("code", check_rule_code, cells["code"], shown_column("code"))
        title = cell.check("title", check_text, cells["title"], shown_column("title"))
        module = cell.check("module", check_text, cells["module"], shown_column("module"))
        points = cell.check("points", _rule_points, cells["points"])
        council = cell.check("council", parse_council, cells["council"])
        max_qty = cell.check("max_qty", _optional_cap, cells.get("max_qty", ""), "max_qty")
        max_per_month = cell.check(
            "max_per_month", _optional_cap, cells.get("max_per_month", ""), "max_per_month"
        )
        decided = cell.check(
            "decided", check_text, cells.get("decided", ""), shown_column("decided"), required=False
        )
        cell.done()
        return RuleRow(
            row, code, title, module, points, council, max_qty, max_per_month, decided or None
        )

    rows = _parse_csv(data, name, RULE_COLUMNS, RULE_OPTIONAL_COLUMNS, parse)
    _refuse_duplicates(name, [(rule.row, rule.code) for rule in rows], _("rule code"))
    return rows


def parse_awards_csv(data: bytes, name: str) -> tuple[AwardRow, ...]:
    """Every row of a bulk award file (columns ``account,rule``; optional
    ``qty,date,note``; or in Chinese ``账户,规则,数量,日期,备注``).

    An empty ``qty`` means 1, an empty ``date`` the day the row is sent (in the log's
    time zone), an empty ``note`` none. Account ids are case-folded
    (``values.fold_account``). Refuses the whole file, listing the bad rows, if any
    row is unusable.
    """

    def parse(row: int, cells: dict[str, str]) -> AwardRow:
        cell = _RowCells()
        account = cell.check("account", check_account, cells["account"])
        rule = cell.check("rule", check_text, cells["rule"], shown_column("rule"))
        qty_text = cells.get("qty", "")
        qty = cell.check("qty", parse_integer, qty_text, shown_column("qty")) if qty_text else 1
        if qty is not None:
            qty = cell.check("qty", check_positive, qty, shown_column("qty"))
        date_text = cells.get("date", "")
        date = (
            cell.check("date", check_date, date_text, shown_column("date")) if date_text else None
        )
        note = cells.get("note", "")
        note = cell.check("note", check_text, note, shown_column("note"), required=False)
        cell.done()
        return AwardRow(row, account, rule, qty, note or None, date)

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
        cell = _RowCells()
        target = cell.check("seq", parse_integer, cells["seq"], shown_column("seq"))
        if target is not None:
            target = cell.check("seq", check_target, target)
        reason = cells.get("reason", "")
        reason = cell.check("reason", check_text, reason, shown_column("reason"), required=False)
        cell.done()
        return ReversalRow(row, target, reason or None)

    rows = _parse_csv(data, name, REVERSAL_COLUMNS, REVERSAL_OPTIONAL_COLUMNS, parse)
    _refuse_duplicates(name, [(row.row, str(row.target)) for row in rows], "entry")
    return rows


def _rule_points(text: str) -> int:
    """A rule's points from a cell: a whole number, not zero."""
    try:
        return check_rule_points(parse_integer(text, "points"))
    except FormatError:
        raise FormatError(
            _("points must be a non-zero integer, not {points_text!r}").format(points_text=text)
        ) from None


def _optional_cap(text: str, what: str) -> int | None:
    """A rule's cap from a cell: empty for none, else a whole number of at least 1."""
    if not text:
        return None
    try:
        return check_cap(parse_integer(text, what), what)
    except FormatError:
        raise FormatError(
            _(
                "{what} must be a whole number of at least 1 (or empty: no limit), not {text!r}"
            ).format(what=what, text=text)
        ) from None


def read_as(data: bytes, name: str) -> str:
    """The line a command prints after its summary of the CSV file ``name``: which
    encoding it was read as, in the reader's language (``data`` was parsed, so decodes)."""
    return _("Read {name} as {encoding}.").format(name=name, encoding=_(decode_text(data, name)[1]))


def read_input_file(path: Path, what: str) -> bytes:
    """The bytes of a file the clerk named (``what``: "catalogue file"), or a clear error."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise FormatError(_("{what} {path} does not exist").format(what=what, path=path)) from None
    except IsADirectoryError:
        raise FormatError(
            _("{what} {path} is a directory, not a file").format(what=what, path=path)
        ) from None
    except OSError as error:
        raise FormatError(
            _("cannot read {what} {path}: {strerror}").format(
                what=what, path=path, strerror=error.strerror
            )
        ) from None


def _parse_csv(
    data: bytes,
    name: str,
    required: Sequence[str],
    optional: Sequence[str],
    parse: Callable[[int, dict[str, str]], _Row],
) -> tuple[_Row, ...]:
    text, _encoding = decode_text(data, name)  # the encoding: read_as
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        records = list(reader)
    except csv.Error as error:
        raise FormatError(
            _("{name}: row {line_num}: {csv_problem}").format(
                name=name, line_num=reader.line_num, csv_problem=_csv_problem(error)
            )
        ) from None
    if not records:
        raise FormatError(
            _("{name} is empty; its first row must name the columns").format(name=name)
        )
    columns = _header(name, records[0], required, optional)
    rows: list[_Row] = []
    problems: list[Problem] = []
    for number, record in enumerate(records[1:], start=2):
        if not any(cell.strip() for cell in record):
            continue
        if len(record) < len(columns) or any(cell.strip() for cell in record[len(columns) :]):
            message = _("has {record_count} cells, the header has {columns_count}").format(
                record_count=len(record), columns_count=len(columns)
            )
            problems.append(Problem(number, "", message))
            continue
        cells = {column: cell.strip() for column, cell in zip(columns, record, strict=False)}
        try:
            rows.append(parse(number, cells))
        except _RowError as error:
            problems.extend(Problem(number, column, message) for column, message in error.cells)
        except FormatError as error:
            problems.append(Problem(number, "", error.diagnostics()))
    if problems:
        raise SheetError(name, problems)
    if not rows:
        raise FormatError(
            _("{name} has no rows below its header; nothing was submitted").format(name=name)
        )
    return tuple(rows)


class _RowError(FormatError):
    """A row's unusable cells: (column, what is wrong) for each."""

    def __init__(self, cells: Sequence[tuple[str, str]]) -> None:
        super().__init__("; ".join(message for _column, message in cells))
        self.cells = tuple(cells)


_Value = TypeVar("_Value")


class _RowCells:
    """The checks of one row's cells: each bad cell is noted, not only the first, so
    the clerk sees every problem of the row at once; ``done`` then refuses the row."""

    def __init__(self) -> None:
        self._problems: list[tuple[str, str]] = []

    def check(self, column: str, check: Callable[..., _Value], *args: Any, **kwargs: Any) -> _Value:
        """``check(*args, **kwargs)``; a ``FormatError`` it raises is noted for ``column``."""
        try:
            return check(*args, **kwargs)
        except FormatError as error:
            self._problems.append((column, error.diagnostics()))
            return cast(_Value, None)  # never used: ``done`` refuses the row first

    def done(self) -> None:
        """Refuse the row (``_RowError``) if any of its cells was bad."""
        if self._problems:
            raise _RowError(self._problems)


def _csv_problem(error: csv.Error) -> str:
    """A CSV reader's complaint in a clerk's words."""
    if "end of data" in str(error) or "EOF" in str(error):
        return _('a quoted cell is never closed (a " without its closing ")')
    return _("not valid CSV ({error})").format(error=error)


# Column names that show the file was meant for the other CSV command.
_OTHER_COMMAND = {
    "code": N_("a rule catalogue: load it with 'redlist rules load'"),
    "account": N_("awards: submit them with 'redlist submit'"),
}


def _header(
    name: str, header: list[str], required: Sequence[str], optional: Sequence[str]
) -> list[str]:
    columns = [cell.strip().lower() for cell in header]
    columns = [COLUMN_ALIASES.get(column, column) for column in columns]
    while columns and not columns[-1]:
        columns.pop()  # empty cells Excel keeps right of the table: no column at all
    expected = ",".join((*required, *optional))
    if i18n.is_chinese():
        chinese = ",".join(CHINESE_COLUMNS.get(c, c) for c in (*required, *optional))
        expected = _("{columns} or {chinese_columns}").format(
            columns=expected, chinese_columns=chinese
        )
    if "" in columns:
        raise FormatError(
            _(
                "{name}: row 1 must name the columns ({expected}); column {value} has no name"
            ).format(name=name, expected=expected, value=columns.index("") + 1)
        )
    unknown = [column for column in columns if column not in (*required, *optional)]
    if unknown:
        listed = ", ".join(repr(column) for column in unknown)
        verb = "is" if len(unknown) == 1 else "are"
        hint = ""
        if len(columns) == 1 and any(sep in columns[0] for sep in ";\t"):
            hint = _("; the cells seem separated by ';' or tabs: save the file as CSV with commas")
        else:
            for column, other in _OTHER_COMMAND.items():  # translated where shown
                if column in columns and column not in required:
                    hint = _("; this file looks like {other}").format(other=_(other))
        raise FormatError(
            _(
                "{name}: row 1 must name the columns ({expected}); {listed} {verb} not among "
                "them{hint}"
            ).format(name=name, expected=expected, listed=listed, verb=verb, hint=hint)
        )
    twice = sorted({column for column in columns if columns.count(column) > 1})
    if twice:
        raise FormatError(
            _("{name}: row 1 names column {twice!r} twice").format(name=name, twice=twice[0])
        )
    missing = [column for column in required if column not in columns]
    if missing:
        raise FormatError(
            _("{name}: row 1 must name the columns ({expected}); missing: {join}").format(
                name=name, expected=expected, join=", ".join(missing)
            )
        )
    return columns


def _refuse_duplicates(name: str, keyed: Sequence[tuple[int, str]], what: str) -> None:
    first: dict[str, int] = {}
    problems: list[Problem] = []
    for row, key in keyed:
        if key in first:
            problems.append(
                Problem(
                    row,
                    "",
                    _("{what} {key!r} already appears in row {first}").format(
                        what=what, key=key, first=first[key]
                    ),
                )
            )
        else:
            first[key] = row
    if problems:
        raise SheetError(name, problems)
