"""``redlist account``: an account's score, grade, points to spend and entries.

Also the phrases other commands use to report an account after an entry.
"""

from __future__ import annotations

import argparse
import json
import unicodedata
from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from redlist.ledger.errors import RedlistError
from redlist.ledger.text import shown
from redlist.proto.client import RemoteAccount, RemoteEntry
from redlist.staff import values
from redlist.staff.client import LedgerClient, add_node_argument, read_checkpoint

DESCRIPTION = """\
Show an account as the node computes it: score (the base score plus every
award, minus every deduction) and grade, the points left to spend (awards
minus redemptions), the points redeemed, and every award and redemption with
its entry number, the date it was recorded (in the town's time zone) and
whether it was reversed. Needs no key.

  redlist account dgc-0001 --node 127.0.0.1:7420
  redlist account dgc-0001 --node 127.0.0.1:7420 --json

--json prints one JSON object: account, score, spendable, redeemed, earned,
grade, log, tree_size, time_zone, checkpoint and entries (each with seq, kind,
rule, qty, note, item, points, reversed, reversed_by, time, at and date)."""

KIND_WORDS = {"award": "award", "redeem": "redemption"}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "account",
        help="show an account's score, grade and entries",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("account", metavar="ACCOUNT", help="the resident's account id")
    add_node_argument(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    account = values.check_account(args.account)
    with LedgerClient(args.node) as client:
        view = client.get_account(account)
        zone_name = client.get_genesis().config.tz
    zone = town_zone(zone_name)
    if args.json:
        print(json.dumps(to_json(view, zone_name, zone), ensure_ascii=False, indent=2))
    else:
        print("\n".join(to_lines(view, zone_name, zone)))
    return 0


# ---------------------------------------------------------------------------
# Phrases shared with the commands that record entries


def points_phrase(points: int) -> str:
    return f"{points} point" + ("" if abs(points) == 1 else "s")


def standing(view: RemoteAccount) -> str:
    """One line: the account's score, grade and points to spend."""
    return (
        f"{view.account} now has a score of {view.score} (grade {view.grade}) and "
        f"{points_phrase(view.spendable)} to spend."
    )


def lookup(client: LedgerClient, account: str) -> RemoteAccount | None:
    """The account, or None when the node does not say (the entry is recorded anyway)."""
    try:
        return client.get_account(account)
    except RedlistError:
        return None


def after_entry(
    client: LedgerClient, account: str, seq: int
) -> tuple[RemoteEntry | None, RemoteAccount | None]:
    """The account after entry ``seq`` was recorded, and that entry as the node reports it."""
    view = lookup(client, account)
    if view is None:
        return None, None
    for entry in view.entries:
        if entry.seq == seq:
            return entry, view
    return None, view


# ---------------------------------------------------------------------------
# The statement


def town_zone(name: str) -> tzinfo:
    """The town's time zone; UTC if this machine does not know it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def to_json(view: RemoteAccount, zone_name: str, zone: tzinfo) -> dict[str, Any]:
    checkpoint = read_checkpoint(view.checkpoint) if view.checkpoint else None
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
        "entries": [
            {
                "seq": entry.seq,
                "kind": entry.kind,
                "rule": entry.rule or None,
                "qty": entry.qty or None,
                "note": entry.note or None,
                "item": entry.item or None,
                "points": entry.points,
                "reversed": entry.reversed,
                "reversed_by": entry.reversed_by,
                "time": entry.time,
                "at": entry.at,
                "date": _local(entry.time, zone).isoformat(timespec="seconds"),
            }
            for entry in view.entries
        ],
        "checkpoint": view.checkpoint,
    }


def to_lines(view: RemoteAccount, zone_name: str, zone: tzinfo) -> list[str]:
    checkpoint = read_checkpoint(view.checkpoint) if view.checkpoint else None
    where = f" in log {checkpoint.origin}, as of entry {checkpoint.size - 1}" if checkpoint else ""
    lines = [
        f"Account {view.account}{where}",
        f"  score:     {view.score:>6}  (grade {view.grade})",
        f"  to spend:  {view.spendable:>6}",
        f"  redeemed:  {view.redeemed:>6}",
        "",
    ]
    if not view.entries:
        lines.append("No awards or redemptions yet.")
        return lines
    header = ["entry", f"recorded ({zone_name})", "kind", "rule / item", "points", "reversed"]
    table = [header]
    for entry in view.entries:
        if entry.kind == "award":
            kind = "award" if entry.points >= 0 else "deduction"
            subject = entry.rule + (f" ×{entry.qty}" if entry.qty > 1 else "")
            points = f"{entry.points:+d}"
        else:
            kind = KIND_WORDS.get(entry.kind, entry.kind)
            subject = entry.item
            points = f"{-entry.points:+d}"  # spent: lowers the points to spend
        reversed_text = f"yes, entry {entry.reversed_by}" if entry.reversed_by is not None else ""
        date = _local(entry.time, zone).strftime("%Y-%m-%d %H:%M")
        table.append([str(entry.seq), date, kind, shown(subject), points, reversed_text])
    lines.extend(_render(table, right=(0, 4)))
    if any(entry.kind == "redeem" for entry in view.entries):
        lines.append("Redemptions lower the points to spend, not the score.")
    return lines


def _local(ms: int, zone: tzinfo) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=zone)


def _width(text: str) -> int:
    """Columns ``text`` takes in a terminal: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def _render(table: Sequence[Sequence[str]], right: Sequence[int]) -> list[str]:
    widths = [max(_width(row[column]) for row in table) for column in range(len(table[0]))]
    lines = []
    for row in table:
        cells = []
        for column, cell in enumerate(row):
            padding = " " * (widths[column] - _width(cell))
            cells.append(padding + cell if column in right else cell + padding)
        lines.append("  ".join(cells).rstrip())
    return lines
