"""What a month's publicity lists, derived from the log, and its CSV file. Pure.

The node writes ``publicity.csv`` from these values and the verifier re-derives them
from the leaves with the very same code (DESIGN 9.3, docs/adr/0027), so a figure a
village board shows is one an auditor can recompute.

**Entries.** A :class:`PublicityRecorder` is shown each accepted entry of the month
with the points state right after it, and keeps a :class:`PublicEntry` for:

* an award (加分 when its points are positive, 扣分 when negative): its deed date,
  account, rule code and title (as the catalogue stood at that entry), points, the
  account's running score and grade after it, the signers' names, and the note;
* an objection (异议) to an award: dated the day it was recorded (leaf time, log
  zone), with the award's account and rule, the account's unchanged score, and the
  award it targets;
* a reversal (撤销) of an award: likewise, with the points it took away (the negated
  award). A reversal recorded in a later month than its award is that later month's
  *late correction*: it is listed where it is recorded, never by rewriting a
  published month.

Redemptions (and reversals of them) change what a resident may spend, not the score,
and are not published: what someone bought at the points supermarket is their
business. Objection texts and reversal reasons are not published either (they may
name third parties); award notes are, for residents who consented (the node decides),
with numbers that may be ID or phone numbers hidden and the register's names masked
(``masking.mask_note``).

**The CSV file.** UTF-8 with a byte-order mark (so Excel opens it as UTF-8), CRLF line
ends, one header row :data:`HEADER` and one row per listed entry, in seq order:

====  ========  ==================================================================
 #    column    value
====  ========  ==================================================================
 1    日期      deed date (award) or the day recorded (objection, reversal), YYYY-MM-DD
 2    村        the resident's village, from the register
 3    姓名      the resident's name, masked (DESIGN 3.7)
 4    账户      the account id
 5    类型      加分, 扣分, 异议 or 撤销; a declared award (``declared``) adds （本人申报）
 6    规则      rule code
 7    规则名称  rule title
 8    分数      signed points (``+5``, ``-20``); empty for an objection
 9    累计分    the account's score after the entry
10    等级      the grade of that score
11    登记人    the signers' names, joined by 、
12    序号      the entry's seq
13    涉及序号  the award an objection or reversal targets; empty for an award
14    备注      the award's note where the resident consented to its publication, else empty
15    账户类型  what the account is, from the register: 个人, 家庭 or 组织
====  ========  ==================================================================

A text cell that begins with ``= + - @`` (which a spreadsheet would run as a formula)
is written with a leading ``'``, which readers drop again; points, scores and seqs are
numbers and never need it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from redlist.ledger.deeddate import day_of, log_zone
from redlist.ledger.entry import AnyBody, Award, Objection, Reverse
from redlist.ledger.errors import FormatError
from redlist.ledger.masking import MASK, NAME_SEPARATORS
from redlist.ledger.points import Effect
from redlist.ledger.state import LedgerState

AWARD, DEDUCTION, OBJECTION, REVERSAL = "加分", "扣分", "异议", "撤销"
#: The columns of a notice's black list (黑榜): the last says whether the resident
#: objected to the deduction in the month (``objection_cell``).
BLACK_HEADERS = ("姓名", "账户", "事由", "分数", "序号", "异议")
#: Appended to the kind of an award the resident declared: "declared by the resident".
DECLARED = "（本人申报）"
KINDS = (AWARD, DEDUCTION, OBJECTION, REVERSAL)

HEADER = (
    "日期",
    "村",
    "姓名",
    "账户",
    "类型",
    "规则",
    "规则名称",
    "分数",
    "累计分",
    "等级",
    "登记人",
    "序号",
    "涉及序号",
    "备注",
    "账户类型",
)
VILLAGE, NAME, NOTE, ACCOUNT_KIND = "村", "姓名", "备注", "账户类型"
#: The columns a verifier recomputes from the leaves (all but those from the register
#: and the text store: village, name, note and the account's kind).
DERIVED = tuple(column for column in HEADER if column not in (VILLAGE, NAME, NOTE, ACCOUNT_KIND))
SIGNER_SEPARATOR = "、"
BOM = "\ufeff"
#: The most characters of a name a masked name may show (DESIGN 3.7).
MAX_SHOWN = 2
_FORMULA_START = ("=", "+", "-", "@")
_GUARD = "'"


@dataclass(frozen=True)
class PublicEntry:
    """One listed entry of a month, as derived from the log (see the module docstring)."""

    seq: int
    kind: str
    date: str
    account: str
    rule: str
    title: str
    points: int | None
    score: int
    grade: str
    signers: tuple[str, ...]
    target: int | None = None
    note: str | None = None
    #: The entry commits to a note (its text is the node's: DESIGN 9.2).
    has_note: bool = False
    #: An award the resident declared, reviewed by the council (``Award.declared``).
    declared: bool = False

    def cells(self) -> dict[str, str]:
        """The derived columns' text (every column but village, name and note)."""
        return {
            "日期": self.date,
            "账户": self.account,
            "类型": self.kind + (DECLARED if self.declared else ""),
            "规则": self.rule,
            "规则名称": self.title,
            "分数": "" if self.points is None else f"{self.points:+d}",
            "累计分": str(self.score),
            "等级": self.grade,
            "登记人": SIGNER_SEPARATOR.join(self.signers),
            "序号": str(self.seq),
            "涉及序号": "" if self.target is None else str(self.target),
        }


class PublicityRecorder:
    """Collects the :class:`PublicEntry` of each entry it is shown (node and verifier)."""

    def __init__(self) -> None:
        self.entries: list[PublicEntry] = []

    def observe(
        self, time: int, body: AnyBody | None, effect: Effect | None, state: LedgerState
    ) -> None:
        """Entry ``effect.seq`` (leaf time ``time``, decoded ``body``) was just accepted
        and ``state`` is the points state after it."""
        config = state.config()
        points: int | None
        if effect is None or body is None or config is None or effect.account is None:
            return
        if isinstance(body, Award):
            kind = AWARD if effect.earned_delta >= 0 else DEDUCTION
            date, points = body.date, effect.earned_delta
            # The body holds a commitment, not the note (DESIGN 9.2): the node looks the
            # text up where the resident consented (``node.publicity.published_note``).
            note, has_note = None, body.note is not None
            declared = body.declared
        elif isinstance(body, Objection | Reverse):
            if effect.rule is None:  # a redemption's reversal: not published
                return
            kind = OBJECTION if isinstance(body, Objection) else REVERSAL
            date = day_of(time, log_zone(config.tz)).isoformat()
            points = None if kind == OBJECTION else effect.earned_delta
            note, has_note = None, False
            declared = False
        else:
            return
        rule = state.rule(effect.rule or "")
        score = state.balance(effect.account).score(config)
        self.entries.append(
            PublicEntry(
                seq=effect.seq,
                kind=kind,
                date=date,
                account=effect.account,
                rule=effect.rule or "",
                title=rule.title if rule is not None else "",
                points=points,
                score=score,
                grade=config.grade_of(score),
                signers=effect.signers,
                target=effect.target,
                note=note,
                has_note=has_note,
                declared=declared,
            )
        )


# ---------------------------------------------------------------------------
# The CSV file


@dataclass(frozen=True)
class CsvRow:
    """One row of ``publicity.csv`` as read back: ``line`` is its line in the file."""

    line: int
    cells: dict[str, str]

    @property
    def seq(self) -> int:
        return int(self.cells["序号"])


def encode_csv(rows: Iterable[tuple[PublicEntry, str, str, str, str]]) -> bytes:
    """The file's bytes for ``(entry, village, masked name, published note, account kind)``
    rows (the kind as the column shows it: 个人, 家庭 or 组织)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADER)
    for entry, village, masked, note, kind in rows:
        cells = entry.cells()
        cells[VILLAGE], cells[NAME], cells[NOTE], cells[ACCOUNT_KIND] = village, masked, note, kind
        writer.writerow([_guard(column, cells[column]) for column in HEADER])
    return (BOM + buffer.getvalue()).encode("utf-8")


def decode_csv(data: bytes) -> list[CsvRow]:
    """Read ``publicity.csv``; ``FormatError`` naming the line for anything malformed.

    Checks the BOM, the header, the cell count, and that seqs are numbers in strictly
    increasing order; what the cells say is for the caller to compare.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"publicity.csv is not UTF-8 (byte {exc.start})") from None
    if not text.startswith(BOM):
        raise FormatError("publicity.csv does not start with the UTF-8 byte-order mark")
    reader = csv.reader(io.StringIO(text[len(BOM) :], newline=""), strict=True)
    try:
        lines = list(reader)
    except csv.Error as exc:
        raise FormatError(f"publicity.csv line {reader.line_num}: {exc}") from None
    if not lines or tuple(lines[0]) != HEADER:
        raise FormatError(f"publicity.csv: the first line must be the header {','.join(HEADER)}")
    rows: list[CsvRow] = []
    previous = -1
    for number, cells in enumerate(lines[1:], start=2):
        if len(cells) != len(HEADER):
            raise FormatError(
                f"publicity.csv line {number}: {len(cells)} cells, the header has {len(HEADER)}"
            )
        values = {
            column: _unguard(column, cell) for column, cell in zip(HEADER, cells, strict=True)
        }
        seq_text = values["序号"]
        if not seq_text.isascii() or not seq_text.isdigit() or str(int(seq_text)) != seq_text:
            raise FormatError(f"publicity.csv line {number}: 序号 {seq_text!r} is not an entry seq")
        if int(seq_text) <= previous:
            raise FormatError(
                f"publicity.csv line {number}: entry {seq_text} is out of order or listed twice"
            )
        previous = int(seq_text)
        rows.append(CsvRow(number, values))
    return rows


def mask_problem(masked: str) -> str | None:
    """Why ``masked`` cannot be a name masked as DESIGN 3.7 says, or None.

    A masked name hides at least one character and shows at most two (separators
    between parts count as nothing); anything else may be a name left unmasked.
    """
    characters = [character for character in masked if character not in NAME_SEPARATORS]
    shown = [character for character in characters if character != MASK]
    if not characters or len(shown) == len(characters):
        return f"{masked!r} is not masked (no character is hidden)"
    if len(shown) > MAX_SHOWN:
        return f"{masked!r} shows {len(shown)} characters of a name, more than {MAX_SHOWN}"
    return None


def _guard(column: str, value: str) -> str:
    if column in _TEXT_COLUMNS and value.startswith((*_FORMULA_START, _GUARD)):
        return _GUARD + value
    return value


def _unguard(column: str, value: str) -> str:
    if column in _TEXT_COLUMNS and value.startswith(_GUARD):
        return value[1:]
    return value


#: Columns of free text (every other column is a number, a date or a fixed word).
_TEXT_COLUMNS = frozenset({"村", "姓名", "账户", "规则", "规则名称", "等级", "登记人", "备注"})


def late(entries: Sequence[PublicEntry], month_start: int) -> list[PublicEntry]:
    """The objections and reversals among ``entries`` of awards recorded before
    ``month_start`` (a seq): corrections of an earlier month's publicity."""
    return [e for e in entries if e.target is not None and e.target < month_start]


def objections_by_target(entries: Iterable[PublicEntry]) -> dict[int, int]:
    """The first objection among ``entries`` to each award, by the award's seq."""
    found: dict[int, int] = {}
    for entry in entries:
        if entry.kind == OBJECTION and entry.target is not None:
            found.setdefault(entry.target, entry.seq)
    return found


def objection_cell(objection: int | None) -> str:
    """A black list's 异议 cell: the objection to the deduction, if any."""
    return "" if objection is None else f"已提出异议（第 {objection} 条）"


__all__ = [
    "ACCOUNT_KIND",
    "AWARD",
    "BLACK_HEADERS",
    "BOM",
    "DECLARED",
    "DEDUCTION",
    "DERIVED",
    "HEADER",
    "KINDS",
    "OBJECTION",
    "REVERSAL",
    "CsvRow",
    "PublicEntry",
    "PublicityRecorder",
    "decode_csv",
    "encode_csv",
    "late",
    "mask_problem",
    "objection_cell",
    "objections_by_target",
]
