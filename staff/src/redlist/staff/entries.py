"""Signed entries from what a clerk types: arguments and CSV rows become envelope bytes.

Three steps, kept apart so each can be tested on its own:

1. *check* the clerk's values (an account id, a number of points, a CSV file) and
   say in plain words what is wrong, before anything is signed or sent; every
   problem is a ``FormatError`` (or ``KeyFileError`` for keys), so ``redlist``
   exits 2 and nothing changes;
2. *build* the body with the ``redlist.ledger.entry`` classes, stamped with the
   log's origin, an entry id and the author's time (``Stamp``);
3. *seal* it: sign the exact body bytes with every signer
   (``crypto.sign_entry``) and put the signatures in increasing key id order, as
   DESIGN 3.2 requires (``seal``).

Entry ids are 16 random bytes, except for rows of a CSV file, whose ids are
derived from the file's SHA-256 and the row number (``row_entry_id``): the same
file gives the same ids on every run, so a node recognises rows it already holds
and a re-run after a crash never records a row twice.

CSV files are UTF-8, with or without the byte order mark Excel writes; the first
row names the columns (any order, any case). Rows are numbered as a spreadsheet
shows them: the header is row 1, the first data row is row 2. Rows whose cells
are all empty are skipped.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io
import itertools
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from redlist.ledger import crypto, keyfile
from redlist.ledger.entry import (
    ID_SIZE,
    MAX_ENVELOPE_SIZE,
    PUBLIC_KEY_SIZE,
    ROLES,
    Award,
    Body,
    EntrySignature,
    Envelope,
    KeyChange,
    Objection,
    Redeem,
    Reverse,
    RuleChange,
    is_valid_account,
)
from redlist.ledger.errors import FormatError, KeyFileError
from redlist.staff.client import LedgerClient

#: Longest free text (title, note, item, reason ...) accepted, in characters; far
#: below what would push an envelope past its 64 KiB limit.
MAX_TEXT_LENGTH = 2000
#: Most problems listed when a CSV file is refused.
MAX_REPORTED_ROWS = 20
#: Domain separation for ids derived from a file: never equal to an id derived
#: any other way, nor for another purpose.
ROW_ID_DOMAIN = b"redlist/staff/row-id/v1\x00"

COUNCIL_WORDS = {
    "true": True,
    "yes": True,
    "1": True,
    "是": True,
    "false": False,
    "no": False,
    "0": False,
    "否": False,
}

_HEX_KEY = re.compile(r"[0-9A-Fa-f]{64}")
# A whole number as a clerk or a spreadsheet writes it: Excel saves a cell formatted
# with decimals as "5.0" or "5.00", which is still the whole number 5.
_WHOLE_NUMBER = re.compile(r"(?P<digits>[+-]?[0-9]+)(?:\.0*)?")
#: Largest magnitude of a number typed in: msgpack carries 64-bit integers.
MAX_NUMBER = 2**63 - 1


# ---------------------------------------------------------------------------
# Ids, times and the common fields


def now_ms() -> int:
    """This machine's clock in ms since 1970 UTC: the author's time of a new entry."""
    return time.time_ns() // 1_000_000


def new_entry_id() -> bytes:
    """A fresh random 16-byte entry id."""
    return os.urandom(ID_SIZE)


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
class Stamp:
    """The fields every body shares: the log it is meant for, its id, the author's time."""

    log: str
    id: bytes
    at: int

    @classmethod
    def fresh(cls, log: str = "") -> Stamp:
        """A new random id, stamped now; ``log`` may be filled in later (``addressed``)."""
        return cls(log, new_entry_id(), now_ms())


_Body = TypeVar("_Body", bound=Body)


def addressed(body: _Body, log: str) -> _Body:
    """``body`` meant for the log named ``log``.

    Commands check and build a body first (so a typing mistake is reported
    without contacting the node), then learn the log's name from the node.
    """
    return dataclasses.replace(body, log=log)


# ---------------------------------------------------------------------------
# Signers and sealing


def add_signer_arguments(parser: argparse.ArgumentParser) -> None:
    """``--signer KEYFILE`` (required) and ``--cosigner KEYFILE`` (repeatable)."""
    parser.add_argument(
        "--signer",
        required=True,
        type=Path,
        metavar="KEYFILE",
        help="your private key file (from 'redlist keygen')",
    )
    parser.add_argument(
        "--cosigner",
        action="append",
        default=[],
        type=Path,
        metavar="KEYFILE",
        help="another staff member's private key file, signing too (repeat for each; "
        "council rules and reversals need the town's quorum of council members)",
    )


def read_signers(signer: Path, cosigners: Sequence[Path] = ()) -> tuple[crypto.SigningKey, ...]:
    """The signing keys in ``signer`` and ``cosigners``; each key may sign once."""
    keys: list[crypto.SigningKey] = []
    sources: dict[bytes, Path] = {}
    for path in (signer, *cosigners):
        if path in sources.values():
            raise KeyFileError(
                f"{path} is given twice (with --signer and --cosigner); each staff member "
                "signs once: give each council member's own key file"
            )
        key = keyfile.read_signing_key(path)
        if key.key_id in sources:
            raise KeyFileError(
                f"{path} holds the same key as {sources[key.key_id]} (key id "
                f"{key.key_id.hex()}); each staff member signs once"
            )
        sources[key.key_id] = path
        keys.append(key)
    return tuple(keys)


def submit_entry(
    client: LedgerClient, draft: _Body, signers: Sequence[crypto.SigningKey], *, action: str
) -> tuple[_Body, int]:
    """Address ``draft`` to the node's log, sign it and submit it alone.

    Returns the body as recorded and its seq; ``action`` names the entry in a refusal
    ("the award", "rule V01").
    """
    body = addressed(draft, client.latest().origin)
    return body, client.submit([seal(body, signers)], action=action).seqs[0]


def seal(body: Body, signers: Sequence[crypto.SigningKey]) -> bytes:
    """The envelope bytes of ``body`` signed by every key of ``signers``.

    The signatures cover the body's exact bytes (with the entry domain prefix)
    and are ordered by key id. Ed25519 is deterministic, so sealing the same body
    with the same keys always gives the same bytes.
    """
    if not signers:
        raise KeyFileError("an entry needs at least one signer")
    body_bytes = body.to_bytes()
    ordered = sorted(signers, key=lambda key: key.key_id)
    for earlier, later in itertools.pairwise(ordered):
        if earlier.key_id == later.key_id:
            raise KeyFileError(f"key {later.key_id.hex()} is given twice; each key signs once")
    envelope = Envelope(
        body_bytes,
        tuple(EntrySignature(key.key_id, crypto.sign_entry(key, body_bytes)) for key in ordered),
    ).to_bytes()
    if len(envelope) > MAX_ENVELOPE_SIZE:
        raise FormatError(
            f"the signed entry is {len(envelope)} bytes, more than the {MAX_ENVELOPE_SIZE}-byte "
            "limit; shorten its texts"
        )
    return envelope


# ---------------------------------------------------------------------------
# Checking single values


def check_text(value: str, what: str, *, required: bool = True) -> str:
    """``value`` without surrounding spaces: one line, not too long, non-empty if required."""
    stripped = value.strip()
    if required and not stripped:
        raise FormatError(f"{what} must not be empty")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in stripped):
        raise FormatError(f"{what} must be a single line of text")
    if len(stripped) > MAX_TEXT_LENGTH:
        raise FormatError(f"{what} is longer than {MAX_TEXT_LENGTH} characters")
    return stripped


def check_account(account: str) -> str:
    """``account`` if it is an account id of the allowed shape (DESIGN 3.4)."""
    if not is_valid_account(account):
        raise FormatError(
            f"account id {account!r} is not valid: use letters, digits, '.', '_' or '-', "
            "1 to 64 characters, starting with a letter or digit (never a name or ID number)"
        )
    return account


def parse_integer(text: str, what: str) -> int:
    """A whole number written in decimal (``+``/``-`` allowed), or a clear error.

    ``5.0`` and ``5.00`` are 5 (a spreadsheet's number format); ``5.5`` is refused.
    """
    stripped = text.strip()
    match = _WHOLE_NUMBER.fullmatch(stripped)
    if match is None or len(match["digits"]) > 20:
        raise FormatError(f"{what} must be a whole number, not {text!r}")
    value = int(match["digits"])
    if abs(value) > MAX_NUMBER:
        raise FormatError(f"{what} is far too large: {text.strip()}")
    return value


def whole_number(text: str) -> int:
    """An argparse ``type``: a whole number read as :func:`parse_integer` reads it.

    argparse puts the option's name before the message ("argument --qty: ...").
    """
    try:
        return parse_integer(text, "the value")
    except FormatError as error:
        raise argparse.ArgumentTypeError(error.diagnostics()) from None


def check_rule_points(points: int) -> int:
    if points == 0:
        raise FormatError("points must be a non-zero integer (negative for a deduction)")
    return points


def check_positive(value: int, what: str) -> int:
    if value < 1:
        raise FormatError(f"{what} must be at least 1, not {value}")
    return value


def check_target(target: int) -> int:
    if target < 1:
        raise FormatError(f"the target must be the entry number of an award, not {target}")
    return target


def parse_council(text: str) -> bool:
    """Whether a rule needs the council: true/false, yes/no, 1/0 or 是/否."""
    value = COUNCIL_WORDS.get(text.strip().lower())
    if value is None:
        raise FormatError(f"council must be one of true/false/yes/no/1/0/是/否, not {text!r}")
    return value


def parse_roles(text: str) -> tuple[str, ...]:
    """Comma-separated roles, e.g. ``grid,council``; each one of DESIGN 3.4's roles, once."""
    # Empty parts ("grid," or "grid,,council") are slips, not roles.
    roles = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    if not roles:
        raise FormatError(f"give at least one role ({', '.join(sorted(ROLES))})")
    for role in roles:
        if role not in ROLES:
            raise FormatError(
                f"{role!r} is not a role; roles are {', '.join(sorted(ROLES))} "
                "(comma-separated, e.g. grid,council)"
            )
    if len(set(roles)) != len(roles):
        raise FormatError(f"a role is listed twice in {text!r}")
    return roles


def read_public_key(text: str) -> bytes:
    """A raw public key from ``--pub``: a PEM key file (public or private) or 64 hex digits."""
    path = Path(text)
    if _HEX_KEY.fullmatch(text) and not path.exists():
        return bytes.fromhex(text)
    if not path.exists() and not path.is_symlink():
        raise KeyFileError(
            f"{text!r} is neither a key file nor a public key in hex "
            f"({2 * PUBLIC_KEY_SIZE} hex digits)"
        )
    return keyfile.read_public_key(path)


# ---------------------------------------------------------------------------
# Bodies


def key_add(stamp: Stamp, pub: bytes, name: str, roles: Sequence[str]) -> KeyChange:
    return KeyChange(
        stamp.log, stamp.id, stamp.at, "add", pub, keyfile.check_name(name), tuple(roles)
    )


def key_revoke(stamp: Stamp, pub: bytes) -> KeyChange:
    return KeyChange(stamp.log, stamp.id, stamp.at, "revoke", pub)


def rule_set(
    stamp: Stamp, code: str, title: str, module: str, points: int, council: bool
) -> RuleChange:
    return RuleChange(
        stamp.log,
        stamp.id,
        stamp.at,
        "set",
        check_text(code, "the rule code"),
        check_text(title, "the rule title"),
        check_text(module, "the module"),
        check_rule_points(points),
        council,
    )


def rule_retire(stamp: Stamp, code: str) -> RuleChange:
    return RuleChange(stamp.log, stamp.id, stamp.at, "retire", check_text(code, "the rule code"))


def award(stamp: Stamp, account: str, rule: str, qty: int, note: str | None) -> Award:
    checked_note = check_text(note, "the note", required=False) if note is not None else ""
    return Award(
        stamp.log,
        stamp.id,
        stamp.at,
        check_account(account),
        check_text(rule, "the rule code"),
        check_positive(qty, "qty"),
        checked_note or None,
    )


def redeem(stamp: Stamp, account: str, points: int, item: str) -> Redeem:
    return Redeem(
        stamp.log,
        stamp.id,
        stamp.at,
        check_account(account),
        check_positive(points, "the points redeemed"),
        check_text(item, "the item"),
    )


def objection(stamp: Stamp, target: int, text: str) -> Objection:
    return Objection(
        stamp.log, stamp.id, stamp.at, check_target(target), check_text(text, "the objection")
    )


def reverse(stamp: Stamp, target: int, reason: str) -> Reverse:
    return Reverse(
        stamp.log, stamp.id, stamp.at, check_target(target), check_text(reason, "the reason")
    )


# ---------------------------------------------------------------------------
# CSV files


@dataclass(frozen=True)
class RuleRow:
    """One rule of a catalogue file (``redlist rules load``)."""

    row: int
    code: str
    title: str
    module: str
    points: int
    council: bool

    def body(self, stamp: Stamp) -> RuleChange:
        return rule_set(stamp, self.code, self.title, self.module, self.points, self.council)


@dataclass(frozen=True)
class AwardRow:
    """One award of a bulk file (``redlist submit``)."""

    row: int
    account: str
    rule: str
    qty: int
    note: str | None

    def body(self, stamp: Stamp) -> Award:
        return award(stamp, self.account, self.rule, self.qty, self.note)


RULE_COLUMNS = ("code", "title", "module", "points", "council")
AWARD_COLUMNS = ("account", "rule")
AWARD_OPTIONAL_COLUMNS = ("qty", "note")

_Row = TypeVar("_Row")


def parse_rules_csv(data: bytes, name: str) -> tuple[RuleRow, ...]:
    """Every row of a catalogue file (columns ``code,title,module,points,council``).

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
            check_text(cells["code"], "code"),
            check_text(cells["title"], "title"),
            check_text(cells["module"], "module"),
            points,
            parse_council(cells["council"]),
        )

    rows = _parse_csv(data, name, RULE_COLUMNS, (), parse)
    _refuse_duplicates(name, [(rule.row, rule.code) for rule in rows], "rule code")
    return rows


def parse_awards_csv(data: bytes, name: str) -> tuple[AwardRow, ...]:
    """Every row of a bulk award file (columns ``account,rule``; optional ``qty,note``).

    An empty ``qty`` means 1, an empty ``note`` none. Refuses the whole file,
    listing the bad rows, if any row is unusable.
    """

    def parse(row: int, cells: dict[str, str]) -> AwardRow:
        qty_text = cells.get("qty", "")
        qty = parse_integer(qty_text, "qty") if qty_text else 1
        note = check_text(cells.get("note", ""), "note", required=False)
        return AwardRow(
            row,
            check_account(cells["account"]),
            check_text(cells["rule"], "rule"),
            check_positive(qty, "qty"),
            note or None,
        )

    return _parse_csv(data, name, AWARD_COLUMNS, AWARD_OPTIONAL_COLUMNS, parse)


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
    problems: list[str] = []
    for number, record in enumerate(records[1:], start=2):
        if not any(cell.strip() for cell in record):
            continue
        try:
            if len(record) < len(columns) or any(cell.strip() for cell in record[len(columns) :]):
                raise FormatError(f"has {len(record)} cells, the header has {len(columns)}")
            cells = {column: cell.strip() for column, cell in zip(columns, record, strict=False)}
            rows.append(parse(number, cells))
        except FormatError as error:
            problems.append(f"row {number}: {error.diagnostics()}")
    if problems:
        _refuse(name, problems)
    if not rows:
        raise FormatError(f"{name} has no rows below its header; nothing was submitted")
    return tuple(rows)


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
    problems: list[str] = []
    for row, key in keyed:
        if key in first:
            problems.append(f"row {row}: {what} {key!r} already appears in row {first[key]}")
        else:
            first[key] = row
    if problems:
        _refuse(name, problems)


def _refuse(name: str, problems: Sequence[str]) -> None:
    shown = list(problems[:MAX_REPORTED_ROWS])
    if len(problems) > len(shown):
        shown.append(f"... and {len(problems) - len(shown)} more")
    count = f"{len(problems)} row" + ("s" if len(problems) != 1 else "")
    raise FormatError(
        f"{name}: {count} cannot be used; nothing was submitted. Fix the file and run the "
        "command again:\n  " + "\n  ".join(shown)
    )
