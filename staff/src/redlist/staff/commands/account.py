"""``redlist account``: an account's score, grade, points to spend and entries.

Also the phrases other commands use to report an account after an entry.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from redlist.ledger import keyfile
from redlist.ledger.deeddate import known_zone
from redlist.ledger.errors import RedlistError
from redlist.ledger.i18n import N_, _, ngettext
from redlist.ledger.note.checkpoint import SignedCheckpoint
from redlist.ledger.text import shown
from redlist.proto.client import MAX_PAGE_SIZE, RemoteAccount, RemoteEntry, RemoteRecognition
from redlist.staff import values
from redlist.staff.client import LedgerClient
from redlist.staff.nodeargs import add_node_argument, connect

DESCRIPTION = N_("""\
Show an account as the node computes it: score (the base score plus every
award, minus every deduction) and grade, the points left to spend (awards
minus redemptions), the points redeemed, and every award and redemption with
its entry number, the date it was recorded (in the town's time zone), the day
of the deed, the rule's title and whether it was reversed. Needs no key. The
node sends a long statement in pages, and each is printed as it comes, so an
account of any length can be shown.

Free texts (an award's note, what was redeemed) are personal data: the node sends
them only to its staff. With --signer, the request is signed with your staff key
and the texts are shown; without it they are shown as "(withheld)". A text the
town erased is shown as "(erased)".

  redlist account dgc-0001 --node 127.0.0.1:7420
  redlist account dgc-0001 --node 127.0.0.1:7420 --signer wang.pem
  redlist account dgc-0001 --node 127.0.0.1:7420 --json

Grades recognised from other towns ('redlist-node recognise', from auditors'
attestations) are listed under the figures: the other town's log and grade, the
grade it counts as here, the auditor, and until when it is valid (an expired one
is marked so).

--json prints one JSON object: account, score, spendable, redeemed, earned,
grade, log, tree_size, time_zone, texts_withheld, recognised (each with origin, foreign_account,
grade, equivalent, score, auditor, tree_size, expires, recognised_at, expired),
checkpoint and entries (each with seq, kind, rule, title, qty, note, item, points,
reversed, reversed_by, declared, time, at, date (recorded) and deed_date).""")

KIND_WORDS = {"award": N_("award"), "redeem": N_("redemption")}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "account",
        help=_("show an account's score, grade and entries"),
        description=_(DESCRIPTION),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("account", metavar="ACCOUNT", help=_("the resident's account id"))
    add_node_argument(parser)
    parser.add_argument("--json", action="store_true", help=_("print one JSON object"))
    parser.add_argument(
        "--signer",
        type=Path,
        metavar="KEYFILE",
        help=_("your staff key file: sign the request, to see the free texts"),
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    account = values.check_account(args.account)
    read_key = keyfile.read_signing_key(args.signer) if args.signer is not None else None
    with connect(args) as client:
        zone_name = client.get_genesis().config.tz
        zone = known_zone(zone_name) or UTC  # the genesis read once
        # Printed page by page as the node sends them: only one page is held at a time.
        pages = client.account_pages(account, page_size=MAX_PAGE_SIZE, read_key=read_key)
        first = next(pages)
        # The figures are the node's word; the checkpoint they are "as of" is verified
        # (every page carries the first page's, the client checks).
        checkpoint = client.verified(first.checkpoint) if first.checkpoint else None
        statement = itertools.chain((first,), pages)
        titles = {code: rule.title for code, rule in client.get_rules().items()}
        if args.json:
            for chunk in json_chunks(statement, checkpoint, zone_name, zone, titles):
                sys.stdout.write(chunk)
            sys.stdout.write("\n")
        else:
            for line in statement_lines(statement, checkpoint, zone_name, zone, titles):
                print(line)
    return 0


# ---------------------------------------------------------------------------
# Phrases shared with the commands that record entries


def points_phrase(points: int) -> str:
    return ngettext("{points} point", "{points} points", abs(points)).format(points=points)


def standing(view: RemoteAccount) -> str:
    """One line: the account's score, grade and points to spend."""
    return _(
        "{account} now has a score of {score} (grade {grade}) and {points_phrase} to spend."
    ).format(
        account=view.account,
        score=view.score,
        grade=view.grade,
        points_phrase=points_phrase(view.spendable),
    )


def lookup(client: LedgerClient, account: str) -> RemoteAccount | None:
    """The account's figures (its first page of entries at most), or None when the node
    does not say (the entry is recorded anyway)."""
    try:
        return next(client.account_pages(account, page_size=1))
    except RedlistError:
        return None


def after_entry(
    client: LedgerClient, account: str, seq: int
) -> tuple[RemoteEntry | None, RemoteAccount | None]:
    """The account's figures after entry ``seq`` was recorded (None when the node does
    not say), and that entry as the node reports it, read page by page."""
    view: RemoteAccount | None = None
    try:
        for page in client.account_pages(account, page_size=MAX_PAGE_SIZE):
            view = view or page
            for entry in page.entries:
                if entry.seq == seq:
                    return entry, view
    except RedlistError:
        pass
    return None, view


# ---------------------------------------------------------------------------
# The statement


def to_json(
    view: RemoteAccount,
    checkpoint: SignedCheckpoint | None,
    zone_name: str,
    zone: tzinfo,
    titles: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The ``--json`` object of a whole statement (``json_chunks`` prints it page by page);
    ``checkpoint`` is the verified checkpoint the figures are at, ``titles`` the rule
    titles by code (from the catalogue)."""
    return {
        **_json_head(view, checkpoint, zone_name),
        "entries": [_json_entry(entry, zone, titles or {}) for entry in view.entries],
        "checkpoint": checkpoint.note if checkpoint else None,
    }


def json_chunks(
    pages: Iterable[RemoteAccount],
    checkpoint: SignedCheckpoint | None,
    zone_name: str,
    zone: tzinfo,
    titles: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """The ``--json`` object of the statement whose pages are ``pages``, in pieces as the
    pages come: the same text as ``json.dumps(to_json(...), indent=2)``."""
    pages = iter(pages)
    first = next(pages)
    head = "".join(
        f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)},\n"
        for key, value in _json_head(first, checkpoint, zone_name).items()
    )
    yield "{\n" + head + '  "entries": ['
    count = 0
    for page in itertools.chain((first,), pages):
        for entry in page.entries:
            text = json.dumps(_json_entry(entry, zone, titles or {}), ensure_ascii=False, indent=2)
            yield ("," if count else "") + "\n    " + text.replace("\n", "\n    ")
            count += 1
    note = json.dumps(checkpoint.note if checkpoint else None, ensure_ascii=False)
    yield ("\n  ]" if count else "]") + f',\n  "checkpoint": {note}\n}}'


def _json_head(
    view: RemoteAccount, checkpoint: SignedCheckpoint | None, zone_name: str
) -> dict[str, Any]:
    return {
        "account": view.account,
        "score": view.score,
        "spendable": view.spendable,
        "redeemed": view.redeemed,
        "earned": view.earned,
        "grade": view.grade,
        "log": checkpoint.origin if checkpoint else None,
        "tree_size": checkpoint.size if checkpoint else None,
        "time_zone": zone_name,
        "texts_withheld": view.texts_withheld,
        "recognised": [_json_recognition(item) for item in view.recognised],
    }


def _json_recognition(item: RemoteRecognition) -> dict[str, Any]:
    return {
        "origin": item.origin,
        "foreign_account": item.foreign_account,
        "grade": item.grade,
        "equivalent": item.equivalent,
        "score": item.score,
        "auditor": item.auditor,
        "tree_size": item.tree_size,
        "expires": item.expires,
        "recognised_at": item.recognised_at,
        "expired": item.expired,
    }


def _json_entry(entry: RemoteEntry, zone: tzinfo, titles: Mapping[str, str]) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "kind": entry.kind,
        "rule": entry.rule or None,
        "title": titles.get(entry.rule) if entry.rule else None,
        "deed_date": entry.date or None,
        "qty": entry.qty or None,
        "note": entry.note or None,
        "item": entry.item or None,
        "points": entry.points,
        "reversed": entry.reversed,
        "reversed_by": entry.reversed_by,
        "declared": entry.declared,
        "time": entry.time,
        "at": entry.at,
        "date": _local(entry.time, zone).isoformat(timespec="seconds"),
    }


def to_lines(
    view: RemoteAccount,
    checkpoint: SignedCheckpoint | None,
    zone_name: str,
    zone: tzinfo,
    titles: Mapping[str, str] | None = None,
) -> list[str]:
    """The printed statement of a whole account (``statement_lines``, in one list)."""
    return list(statement_lines((view,), checkpoint, zone_name, zone, titles))


def statement_lines(
    pages: Iterable[RemoteAccount],
    checkpoint: SignedCheckpoint | None,
    zone_name: str,
    zone: tzinfo,
    titles: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """The printed statement whose pages are ``pages``, line by line as the pages come.

    Each award shows its deed date and its rule's title (``titles``, by code, from the
    catalogue), and its note where the reader may see it; a redemption its item.
    The table's columns are as wide as the header and the first page need; a wider
    cell on a later page widens its column from there on (earlier lines are printed).
    """
    header = [
        _("entry"),
        _("recorded ({zone_name})").format(zone_name=zone_name),
        _("deed date"),
        _("kind"),
        _("rule / item"),
        _("title"),
        _("points"),
        _("reversed"),
        _("note"),
    ]
    widths: list[int] | None = None
    redemptions = False
    declared = False
    withheld = False
    for number, page in enumerate(pages):
        if number == 0:
            yield from _head_lines(page, checkpoint)
        rows = [_row(entry, zone, page.texts_withheld, titles or {}) for entry in page.entries]
        withheld = withheld or (page.texts_withheld and any(e.has_text for e in page.entries))
        if not rows:
            continue
        table = rows if widths is not None else [header, *rows]
        widths = [
            max([_width(row[column]) for row in table] + ([widths[column]] if widths else []))
            for column in range(len(header))
        ]
        yield from _render(table, widths, right=(0, 6))
        redemptions = redemptions or any(entry.kind == "redeem" for entry in page.entries)
        declared = declared or any(entry.declared for entry in page.entries)
    if widths is None:
        yield _("No awards or redemptions yet.")
    elif redemptions:
        yield _("Redemptions lower the points to spend, not the score.")
    if declared:
        yield _("A declared award: declared by the resident (本人申报), approved by the council.")
    if withheld:
        yield _("Notes and items are withheld: staff see them with --signer KEYFILE.")


def _head_lines(view: RemoteAccount, checkpoint: SignedCheckpoint | None) -> list[str]:
    where = (
        _(" in log {origin}, as of entry {value}").format(
            origin=checkpoint.origin, value=checkpoint.size - 1
        )
        if checkpoint
        else ""
    )
    lines = [
        _("Account {account}{where}").format(account=view.account, where=where),
        _("  score:     {score:>6}  (grade {grade})").format(score=view.score, grade=view.grade),
        _("  to spend:  {spendable:>6}").format(spendable=view.spendable),
        _("  redeemed:  {redeemed:>6}").format(redeemed=view.redeemed),
        "",
    ]
    if view.recognised:
        lines.append(_("Grades recognised from other towns (auditors' attestations):"))
        header = [
            _("town's log"),
            _("account there"),
            _("grade there"),
            _("counts here as"),
            _("valid until"),
        ]
        rows = [header] + [_recognition_row(item) for item in view.recognised]
        widths = [max(_width(row[column]) for row in rows) for column in range(len(header))]
        lines.extend("  " + line for line in _render(rows, widths, right=()))
        auditors = sorted({item.auditor for item in view.recognised})
        lines.append(_("  attested by ") + ", ".join(shown(key) for key in auditors))
        lines.append("")
    return lines


def _recognition_row(item: RemoteRecognition) -> list[str]:
    try:
        until = datetime.fromtimestamp(item.expires, tz=UTC).strftime("%Y-%m-%d")
    except (OverflowError, OSError, ValueError):  # a date past what the clock can show
        until = str(item.expires)
    return [
        shown(item.origin),
        shown(item.foreign_account),
        f"{shown(item.grade)} ({item.score})",
        shown(item.equivalent),
        _("{until} (EXPIRED)").format(until=until) if item.expired else until,
    ]


def text_shown(entry: RemoteEntry, withheld: bool) -> str:
    """The entry's note or item as a statement shows it: the text, "(withheld)" when the
    node did not send it, "(erased)" when the town erased it, "" when there is none."""
    text = entry.note if entry.kind == "award" else entry.item
    if text:
        return shown(text)
    if not entry.has_text:
        return ""
    return _("(withheld)") if withheld else _("(erased)")


def _row(
    entry: RemoteEntry,
    zone: tzinfo,
    withheld: bool = True,
    titles: Mapping[str, str] | None = None,
) -> list[str]:
    text = text_shown(entry, withheld)
    titles = titles or {}
    if entry.kind == "award":
        kind = _("award") if entry.points >= 0 else _("deduction")
        if entry.declared:
            kind = _("declared {kind}").format(kind=kind)
        subject = shown(entry.rule) + (f" ×{entry.qty}" if entry.qty > 1 else "")
        title = shown(titles.get(entry.rule, ""))
        note = text
        points = f"{entry.points:+d}"
    else:
        kind = _(KIND_WORDS.get(entry.kind, entry.kind))
        subject = text
        title = note = ""
        points = f"{-entry.points:+d}"  # spent: lowers the points to spend
    reversed_text = (
        _("yes, entry {reversed_by}").format(reversed_by=entry.reversed_by)
        if entry.reversed_by is not None
        else ""
    )
    date = _local(entry.time, zone).strftime("%Y-%m-%d %H:%M")
    deed = entry.date if entry.kind == "award" else ""
    return [str(entry.seq), date, deed, kind, subject, title, points, reversed_text, note]


def _local(ms: int, zone: tzinfo) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=zone)


def _width(text: str) -> int:
    """Columns ``text`` takes in a terminal: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def _render(
    table: Sequence[Sequence[str]], widths: Sequence[int], right: Sequence[int]
) -> list[str]:
    lines = []
    for row in table:
        cells = []
        for column, cell in enumerate(row):
            padding = " " * (widths[column] - _width(cell))
            cells.append(padding + cell if column in right else cell + padding)
        lines.append("  ".join(cells).rstrip())
    return lines
