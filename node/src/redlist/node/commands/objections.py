"""``redlist-node objections``: the awards residents objected to that await a decision."""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from datetime import date
from pathlib import Path

from redlist.ledger import months
from redlist.ledger.deeddate import day_of, log_zone
from redlist.ledger.i18n import N_, _
from redlist.ledger.log import Log
from redlist.ledger.tables import print_table
from redlist.node.commands.serve import check_data_dir
from redlist.node.objectionwindow import OpenObjection, open_objections

DESCRIPTION = N_("""\
List the awards with an objection and no reversal yet: the open objections. Each
shows the month it was published in and the objection window (publicity_days
from the month's first 'export --month'). The council decides one by reversing
the award ('redlist reverse', its quorum signing) or by leaving it; a reversal
after the window is recorded like any other and appears in the next month's
publicity as a late correction. Safe while the node serves.""")

#: The columns, in English in the --csv output (for programs), translated in the table.
HEADERS = (
    N_("award"),
    N_("account"),
    N_("rule"),
    N_("qty"),
    N_("deed date"),
    N_("month"),
    N_("objections"),
    N_("objected on"),
    N_("status"),
)
#: Headers the table words more precisely than the CSV.
_TABLE_WORDS = {"award": N_("award entry")}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "objections",
        help=_("list open objections (awards objected to, not yet decided)"),
        description=_(DESCRIPTION),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data", required=True, type=Path, metavar="DIR", help=_("the node's data directory")
    )
    parser.add_argument(
        "--month", metavar="YYYY-MM", help=_("only awards recorded in this month (default: all)")
    )
    parser.add_argument("--csv", action="store_true", help=_("write CSV (UTF-8 with BOM) instead"))
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.month is not None:
        months.parse_month(args.month)
    check_data_dir(args.data)
    with Log.open(args.data, readonly=True) as log:
        found = open_objections(log, args.data, args.month)
        today = day_of(time.time_ns() // 1_000_000, log_zone(log.config().tz))
    rows = [_row(item, today) for item in found]
    if args.csv:
        text = io.StringIO(newline="")
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow(HEADERS)
        writer.writerows(rows)
        sys.stdout.flush()
        sys.stdout.buffer.write(b"\xef\xbb\xbf" + text.getvalue().encode("utf-8"))
        sys.stdout.buffer.flush()
        return 0
    where = _(" to awards recorded in {month}").format(month=args.month) if args.month else ""
    if not rows:
        print(_("No open objections{where}.").format(where=where))
        return 0
    print_table(sys.stdout, [_(_TABLE_WORDS.get(header, header)) for header in HEADERS], rows)
    print(_("\n{rows_count} open objection(s){where}.").format(rows_count=len(rows), where=where))
    return 0


def _row(item: OpenObjection, today: date) -> list[str]:
    return [
        str(item.award),
        item.account,
        item.rule,
        str(item.qty),
        item.deed_date,
        item.month,
        " ".join(str(seq) for seq in item.objections),
        item.first_objected.isoformat(),
        item.status(today),
    ]
