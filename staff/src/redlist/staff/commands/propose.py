"""``redlist propose``: put an award before the council, to be approved over days."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from redlist.ledger.crypto import SigningKey
from redlist.ledger.entry import Award, Body
from redlist.ledger.errors import FormatError
from redlist.ledger.i18n import N_, _
from redlist.proto.errors import NodeError
from redlist.staff import csvfiles, entries, signing, values
from redlist.staff.client import LedgerClient
from redlist.staff.entries import Draft
from redlist.staff.nodeargs import add_node_argument, connect
from redlist.staff.reviewcalls import ReviewItem
from redlist.staff.sheet import sheet_rows

_Body = TypeVar("_Body", bound=Body)

DESCRIPTION = N_("""\
Propose an award for the council's review. The node keeps it in its review queue
until enough council members have approved it ('redlist approve ID'), one at a
time and on any day, then records it as an ordinary entry. An award that needs
no review (a rule without the council, not a declaration) is recorded at once.

  redlist propose --account dgc-0002 --rule S01 --date 2026-11-20 \\
      --node 127.0.0.1:7420 --signer wang.pem
  redlist propose --account dgc-0031 --rule V01 --declared-by-resident \\
      --note "cleared snow at the school" --node 127.0.0.1:7420 --signer wang.pem
  redlist propose --csv declarations.csv --declared-by-resident \\
      --node 127.0.0.1:7420 --signer wang.pem

--declared-by-resident records that the resident declared the deed themselves
(本人申报): the entry says so, and the council must approve it whatever the rule.
--csv takes a sheet as 'redlist submit' does (account,rule,qty,date,note) and
proposes each row; proposing the same sheet again proposes no row twice.
'redlist review list' shows what waits.""")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "propose",
        help=_("propose an award for the council's review"),
        description=_(DESCRIPTION),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--account", help=_("the resident's account id"))
    parser.add_argument("--rule", help=_("the rule's code, e.g. S01"))
    parser.add_argument("--qty", type=values.whole_number, default=1, help=_("default 1"))
    parser.add_argument(
        "--date",
        type=values.deed_date_arg,
        metavar="YYYY-MM-DD",
        help=_("the day of the deed (default: today in the town's time zone)"),
    )
    parser.add_argument("--note", help=_("a short note (optional)"))
    parser.add_argument(
        "--csv", type=Path, metavar="FILE", help=_("propose every row of this sheet instead")
    )
    parser.add_argument(
        "--declared-by-resident",
        action="store_true",
        help=_("the resident declared the deed (本人申报): the council reviews it"),
    )
    add_node_argument(parser)
    signing.add_signer_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if (args.csv is None) == (args.account is None or args.rule is None):
        raise FormatError(_("give either --account and --rule, or --csv FILE"))
    signers = signing.read_signers(args.signer, args.cosigner)
    with connect(args) as client:
        origin = client.latest().origin
        tz = client.get_genesis().config.tz
        read_as = None  # for a sheet: the line saying which encoding it was read as
        if args.csv is None:
            draft = entries.award(
                entries.Stamp.fresh(origin), args.account, args.rule, args.qty, args.note, args.date
            )
            drafts = [entries.dated(draft, tz)]
        else:
            data = csvfiles.read_input_file(args.csv, "sheet")
            stamp = entries.Stamp.fresh(origin)
            rows = sheet_rows(
                csvfiles.parse_awards_csv(data, str(args.csv)), origin, entries.today(stamp.at, tz)
            )
            read_as = csvfiles.read_as(data, str(args.csv))
            salt = entries.derived_salt(signers[0])
            drafts = [row.body(stamp.at, salt) for row in rows]
        for draft in drafts:
            if args.declared_by_resident:
                draft = Draft(dataclasses.replace(draft.body, declared=True), draft.texts)
            print(_proposed(client, draft, signers))
    if read_as is not None:
        print(read_as)
    return 0


def add_propose_argument(parser: argparse.ArgumentParser) -> None:
    """``--propose``: queue the entry for the council instead of submitting it."""
    parser.add_argument(
        "--propose",
        action="store_true",
        help=_(
            "put it in the node's review queue instead: council members approve it one "
            "at a time ('redlist approve ID'), and the node records it once the quorum signed"
        ),
    )


def propose_entry(
    client: LedgerClient, draft: Draft[_Body], signers: Sequence[SigningKey], what: str
) -> str:
    """Address ``draft`` to the node's log, seal it with ``signers`` and put it in the
    review queue (the node records it at once when the signatures already suffice);
    the outcome in words. ``what`` names the entry ("rule V01")."""
    body = entries.addressed(draft, client.latest().origin)
    try:
        item = client.propose(signing.seal(body.body, signers), body.texts, action=what)
    except NodeError as error:
        if error.check == "duplicate-id":
            return _("Already proposed or recorded: {what}.").format(what=what)
        raise
    return describe_outcome(item, what)


def _proposed(client: LedgerClient, draft: Draft[Award], signers: Sequence[SigningKey]) -> str:
    body = draft.body
    what = _("the award to {account} under rule {rule}").format(
        account=body.account, rule=body.rule
    )
    try:
        item = client.propose(signing.seal(body, signers), draft.texts, action=what)
    except NodeError as error:
        if error.check == "duplicate-id":
            return _("Already proposed or recorded: {what} (deed of {date}).").format(
                what=what, date=body.date
            )
        raise
    return describe_outcome(item, what)


def describe_outcome(item: ReviewItem, what: str) -> str:
    """What became of a proposal: recorded at once, recorded, or waiting (and for what)."""
    if item.state == "appended" and not item.number:
        return _("Recorded {what} at once (entry {seq}): it needs no council review.").format(
            what=what, seq=item.seq
        )
    if item.state == "appended":
        return _("Item {number}: {what} is recorded (entry {seq}).").format(
            number=item.number, what=what, seq=item.seq
        )
    if item.needs:
        return _("Item {number}: proposed {what}; it needs {needs}.").format(
            number=item.number, what=what, needs=item.needs_in_words()
        )
    return _("Item {number}: proposed {what}.").format(number=item.number, what=what)
