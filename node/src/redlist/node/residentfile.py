"""The resident register's CSV file, as a town's spreadsheet saves it (``residents import``).

**Columns.** The first row names the eight columns, and optionally a ninth (``kind``), in
any order, in English (any case) or in Chinese, or mixed:

==============  ==========
``account``     账户
``name``        姓名
``id_number``   身份证号
``phone``       电话
``village``     村
``household``   户
``basis``       依据
``basis_date``  依据日期
``kind``        类型 (optional: person 个人, household 家庭, organisation 组织)
==============  ==========

All eight must be there (a cell may be empty where the field is optional), so a file
that replaces residents' records (``--update``) never wipes a field by leaving its
column out. Without a ``kind`` column every account of the file is a person (so a file
that updates households or organisations keeps the column). What each cell accepts is
:mod:`redlist.ledger.residents`'s.

**Encoding.** UTF-8, with or without the byte order mark Excel writes ("CSV UTF-8"), or
GB18030, the Chinese Windows encoding Excel uses for "CSV (comma delimited)", read as
:mod:`redlist.ledger.csvtext` reads every CSV file. The report says which was used.

**Rows** are numbered as a spreadsheet shows them: the header is row 1. Rows whose
cells are all empty are skipped. A file with any unusable row is refused whole: every
bad row is listed with its number, its column (as the file names it) and what is
wrong, so that nothing of it is imported. An account or an ID number given twice is
refused at its second row.
"""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from redlist.ledger.csvtext import decode_text
from redlist.ledger.errors import FormatError
from redlist.ledger.i18n import _, in_words, ngettext
from redlist.ledger.residents import (
    FIELDS,
    OPTIONAL_FIELDS,
    Resident,
    RowError,
    check_account,
    check_id_number,
    resident_from_cells,
)

#: Column names accepted, each for its field.
HEADERS: dict[str, str] = {
    **{field: field for field in FIELDS},
    "账户": "account",
    "姓名": "name",
    "身份证号": "id_number",
    "电话": "phone",
    "村": "village",
    "户": "household",
    "依据": "basis",
    "依据日期": "basis_date",
    "类型": "kind",
}


@dataclass(frozen=True)
class ResidentRow:
    """A resident and the row of the file it came from."""

    row: int
    resident: Resident


@dataclass(frozen=True)
class ResidentFile:
    """A register file read whole: its rows, the encoding used (a label of
    :mod:`redlist.ledger.csvtext`), and each field's column name as the file writes it."""

    rows: tuple[ResidentRow, ...]
    encoding: str
    columns: dict[str, str]


def read_residents_csv(
    data: bytes, name: str, today: datetime.date, changed_ms: int
) -> ResidentFile:
    """Every resident of a register file, or ``FormatError`` listing every bad row.

    ``today`` bounds dates (birth dates, basis dates); ``changed_ms`` is the time of
    change every resident gets.
    """
    text, encoding = decode_text(data, name)
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
    fields, written = _header(name, records[0])
    rows: list[ResidentRow] = []
    problems: list[str] = []
    bad_rows: set[int] = set()  # a row may have several bad cells
    accounts: dict[str, int] = {}
    id_numbers: dict[str, int] = {}
    for number, record in enumerate(records[1:], start=2):
        if not any(cell.strip() for cell in record):
            continue
        if len(record) > len(fields) and any(cell.strip() for cell in record[len(fields) :]):
            bad_rows.add(number)
            problems.append(
                _(
                    "row {number}: has {record_count} cells, but row 1 names {fields_count} columns"
                ).format(number=number, record_count=len(record), fields_count=len(fields))
            )
            continue
        cells = dict(zip(fields, record, strict=False))
        row_problems: list[str] = []
        try:
            resident: Resident | None = resident_from_cells(cells, today, changed_ms)
        except RowError as error:
            resident = None
            row_problems.extend(
                _("row {number}, column {written}: {error}").format(
                    number=number, written=written[problem.field], error=in_words(problem.error)
                )
                for problem in error.problems
            )
        # Said with the row's other problems, so that one round of fixes is enough: a row
        # refused for another cell is checked for these two on its own.
        account = _value(resident, "account", check_account, cells, today)
        first = accounts.setdefault(account, number) if account else number
        if first != number:
            row_problems.append(
                _(
                    "row {number}, column {written}: {account} already appears in row {first}"
                ).format(number=number, written=written["account"], account=account, first=first)
            )
        id_number = _value(resident, "id_number", check_id_number, cells, today)
        first = id_numbers.setdefault(id_number, number) if id_number else number
        if first != number:
            row_problems.append(
                _(
                    "row {number}, column {written}: the same ID number is already given in "
                    "row {first}"
                ).format(number=number, written=written["id_number"], first=first)
            )
        if row_problems or resident is None:
            bad_rows.add(number)
            problems.extend(row_problems)
            continue
        rows.append(ResidentRow(number, resident))
    if problems:
        refuse(
            _("{name} (read as {encoding})").format(name=name, encoding=_(encoding)),
            problems,
            len(bad_rows),
        )
    if not rows:
        raise FormatError(
            _("{name} has no rows below its header; nothing was imported").format(name=name)
        )
    return ResidentFile(tuple(rows), encoding, written)


def _value(
    resident: Resident | None,
    field: str,
    check: Callable[[str, datetime.date], str],
    cells: dict[str, str],
    today: datetime.date,
) -> str:
    """``field`` of the row's resident; of a refused row, its cell checked on its own,
    or "" when the cell is refused too (said with the row's problems)."""
    if resident is not None:
        value: str = getattr(resident, field)
        return value
    try:
        return check(cells.get(field, ""), today)
    except FormatError:
        return ""


def refuse(what: str, problems: Sequence[str], rows: int | None = None) -> None:
    """Raise the ``FormatError`` that lists every problem of ``what``, which are in
    ``rows`` rows (by default one row each)."""
    rows = len(problems) if rows is None else rows
    count = ngettext("{problems_count} row", "{problems_count} rows", rows).format(
        problems_count=rows
    )
    raise FormatError(
        _(
            "{what}: {count} cannot be used; nothing was imported. Fix the file and run the "
            "command again:\n"
            "  "
        ).format(what=what, count=count)
        + "\n  ".join(problems)
    )


def _header(name: str, header: list[str]) -> tuple[list[str], dict[str, str]]:
    """The field of each column, and each field's column name as written."""
    cells = [cell.strip() for cell in header]
    while cells and not cells[-1]:
        cells.pop()  # empty cells Excel keeps right of the table: no column at all
    expected = ",".join(FIELDS)
    fields: list[str] = []
    written: dict[str, str] = {}
    unknown: list[str] = []
    for cell in cells:
        field = HEADERS.get(cell.lower(), HEADERS.get(cell))
        if field is None:
            unknown.append(cell)
            continue
        if field in written:
            raise FormatError(
                _("{name}: row 1 names the column {field} twice ({written!r} and {cell!r})").format(
                    name=name, field=field, written=written[field], cell=cell
                )
            )
        fields.append(field)
        written[field] = cell
    if unknown:
        hint = ""
        if len(cells) == 1 and any(separator in cells[0] for separator in ";\t"):
            hint = _("; the cells seem separated by ';' or tabs: save the file as CSV with commas")
        listed = ", ".join(repr(cell) for cell in unknown)
        raise FormatError(
            _(
                "{name}: row 1 must name the columns ({expected}, or in Chinese {join}); "
                "{listed} {value} not among them{hint}"
            ).format(
                name=name,
                expected=expected,
                join=",".join(key for key in HEADERS if not key.isascii()),
                listed=listed,
                value="is" if len(unknown) == 1 else "are",
                hint=hint,
            )
        )
    missing = [field for field in FIELDS if field not in written and field not in OPTIONAL_FIELDS]
    if missing:
        raise FormatError(
            _("{name}: row 1 must name all the columns ({expected}); missing: {join}").format(
                name=name, expected=expected, join=", ".join(missing)
            )
        )
    return fields, written


def _csv_problem(error: csv.Error) -> str:
    if "end of data" in str(error) or "EOF" in str(error):
        return _('a quoted cell is never closed (a " without its closing ")')
    return _("not valid CSV ({error})").format(error=error)
