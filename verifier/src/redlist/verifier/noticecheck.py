"""The printed notice (``publicity.html``) held to ``publicity.csv``, row for row.

The notice is what goes on the village board, so ``--publicity`` checks it too, once
the CSV itself held against the entries (``publicitycheck``). Every table of the notice
whose columns the node writes is read back with the standard library's HTML parser:

* each row of a **detail table** (本月明细, and 对以往公示的更正与异议) must be its
  entry's row of the CSV, cell for cell (date, masked name, account, kind of account,
  kind of entry, rule title, points, running score, grade, signers, seq, target, note),
  and every row of the CSV must be shown in one;
* each row of a **black list** (黑榜) must be its entry's deduction (name, account, rule
  title, points), marked as objected to exactly when the CSV lists an objection to it;
* each row of a **red list** (红榜) or of the **organisations** must give the account's
  score and grade at the month's end, as the audit recomputed them;
* the **totals** (本月合计) must be the CSV's counts and sums.

What needs the register alone (which residents may be shown, their villages, the
grade counts of those without an entry this month) cannot be recomputed from the
bundle and is not checked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from redlist.ledger import bundle
from redlist.ledger.errors import VerificationError
from redlist.ledger.publicity import (
    BLACK_HEADERS,
    NAME,
    NOTE,
    CsvRow,
    objection_cell,
)
from redlist.verifier.files import read_publicity_file

#: The notice's detail columns and the CSV column each shows.
DETAIL = {
    "日期": "日期",
    "姓名": NAME,
    "账户": "账户",
    "账户类型": "账户类型",
    "类型": "类型",
    "规则名称": "规则名称",
    "分数": "分数",
    "累计分": "累计分",
    "等级": "等级",
    "登记人": "登记人",
    "序号": "序号",
    "涉及": "涉及序号",
    "备注": NOTE,
}
BLACK = BLACK_HEADERS
STANDINGS = (("姓名", "账户", "累计分", "等级"), ("名称", "账户", "累计分", "等级"))
TOTALS = ("项目", "数量", "分数")
#: The largest notice read (a month of a large town prints some hundred pages).
NOTICE_LIMIT = 64 << 20


@dataclass
class _Table:
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


class _Tables(HTMLParser):
    """Every ``<table>`` of a page: its header cells and its rows of data cells."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[_Table] = []
        #: The page carries a draft's mark (草稿 不得张贴): a preview, not a publication.
        self.draft = False
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._in_head = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append(_Table())
        elif tag == "div" and "draft-mark" in (dict(attrs).get("class") or "").split():
            self.draft = True
        elif tag == "thead":
            self._in_head = True
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "thead":
            self._in_head = False
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "tr" and self._row is not None and self.tables:
            table = self.tables[-1]
            if self._in_head:
                table.headers = self._row
            else:
                table.rows.append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


@dataclass(frozen=True)
class NoticeChecked:
    """What the check of publicity.html found: the rows of its tables checked, and
    whether it is marked as a draft (a preview, which the node starts no window for)."""

    rows: int
    draft: bool


def check_notice(
    directory: Path,
    rows: Sequence[CsvRow],
    standings: Mapping[str, tuple[int, str]],
    objections: Mapping[int, int],
) -> NoticeChecked:
    """Hold the bundle's publicity.html to ``rows`` (publicity.csv, already checked),
    ``standings`` (each account's score and grade at the month's end) and
    ``objections`` (``publicity.objections_by_target`` of the listed entries).
    ``VerificationError`` (check ``publicity``) names the first row that does not
    match."""
    data = read_publicity_file(directory, bundle.PUBLICITY_HTML_FILE, NOTICE_LIMIT)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise VerificationError("publicity", "publicity.html is not UTF-8 text") from None
    parser = _Tables()
    parser.feed(text)
    parser.close()
    by_seq = {row.seq: row for row in rows}
    shown: set[int] = set()
    checked = 0
    for table in parser.tables:
        headers = tuple(table.headers)
        for cells in table.rows:
            values = dict(zip(headers, cells, strict=False))
            if headers == tuple(DETAIL):
                row = _row_of(values, by_seq)
                for column, csv_column in DETAIL.items():
                    _same(values[column], row.cells[csv_column], column, row.seq)
                shown.add(row.seq)
            elif headers == BLACK:
                row = _row_of(values, by_seq)
                for column, csv_column in (("姓名", NAME), ("账户", "账户"), ("分数", "分数")):
                    _same(values[column], row.cells[csv_column], column, row.seq)
                _same(values["事由"], row.cells["规则名称"], "事由", row.seq)
                _same(values["异议"], objection_cell(objections.get(row.seq)), "异议", row.seq)
            elif headers in STANDINGS:
                _standing(values, standings)
            elif headers != TOTALS or not _total(values, rows):
                continue
            checked += 1
    missing = sorted(set(by_seq) - shown)
    if missing:
        raise VerificationError(
            "publicity",
            f"publicity.html does not show entry {missing[0]}, which publicity.csv lists",
            seq=missing[0],
        )
    return NoticeChecked(checked, parser.draft)


def _row_of(values: Mapping[str, str], by_seq: Mapping[int, CsvRow]) -> CsvRow:
    seq_text = values.get("序号", "")
    row = by_seq.get(int(seq_text)) if seq_text.isascii() and seq_text.isdigit() else None
    if row is None:
        raise VerificationError(
            "publicity",
            f"publicity.html shows entry {seq_text!r}, which publicity.csv does not list",
        )
    return row


def _same(shown: str, expected: str, column: str, seq: int) -> None:
    if shown != expected.removeprefix("'"):
        raise VerificationError(
            "publicity",
            f"publicity.html (entry {seq}): {column} is {shown!r}, publicity.csv says {expected!r}",
            seq=seq,
        )


def _standing(values: Mapping[str, str], standings: Mapping[str, tuple[int, str]]) -> None:
    account = values.get("账户", "")
    standing = standings.get(account)
    if standing is None:
        raise VerificationError(
            "publicity", f"publicity.html lists account {account!r}, which the log does not hold"
        )
    score, grade = standing
    if (values.get("累计分"), values.get("等级")) != (str(score), grade):
        raise VerificationError(
            "publicity",
            f"publicity.html gives account {account} a score of {values.get('累计分')!r} "
            f"and grade {values.get('等级')!r} at the month's end; the log gives {score} "
            f"and {grade}",
        )


def _total(values: Mapping[str, str], rows: Sequence[CsvRow]) -> bool:
    """Check one row of the totals; False for one the bundle cannot decide."""
    item = values.get("项目", "")
    expected: tuple[str, ...]
    shown: tuple[str, ...]
    if item in ("加分", "扣分", "异议", "撤销"):
        chosen = [row for row in rows if row.cells["类型"].startswith(item)]
        points = sum(int(row.cells["分数"] or 0) for row in chosen)
        expected = (f"{len(chosen)} 条", "" if item == "异议" else f"{points:+d} 分")
        shown = (values.get("数量", ""), values.get("分数", ""))
    elif item == "公示居民":
        expected = (f"{len({row.cells['账户'] for row in rows})} 人",)
        shown = (values.get("数量", ""),)
    else:
        return False  # 未公示居民: from the register
    if shown != expected:
        raise VerificationError(
            "publicity",
            f"publicity.html's totals give {item} as {' '.join(shown)!r}; publicity.csv makes "
            f"it {' '.join(expected)!r}",
        )
    return True


__all__ = ["NOTICE_LIMIT", "check_notice"]
