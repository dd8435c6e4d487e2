"""``redlist award``: award (or deduct) points to one account under a catalogue rule."""

from __future__ import annotations

import argparse

from redlist.ledger import i18n
from redlist.ledger.errors import FormatError
from redlist.ledger.i18n import N_, _
from redlist.staff import entries, signing, values
from redlist.staff.commands.account import after_entry, points_phrase, standing
from redlist.staff.nodeargs import add_node_argument, connect
from redlist.staff.sheet import unknown_account

DESCRIPTION = N_("""\
Record one award under a rule of the catalogue. Signed by a grid or council
key; for a rule that needs the council, add --cosigner for each further council
member until the town's quorum is reached.

  redlist award --account dgc-0001 --rule V01 --node 127.0.0.1:7420 --signer wang.pem
  redlist award --account dgc-0007 --rule D07 --note "report of 3 May" \\
      --node 127.0.0.1:7420 --signer li.pem --cosigner zhao.pem

The points are the rule's points times --qty; a rule with negative points
deducts them. --date is the day of the deed (YYYY-MM-DD; default: today in the
town's time zone); the town accepts dates up to its backdate_days (92 unless its
genesis says otherwise) before today, never after. Use the account id, never a
resident's name or ID number; it is case-folded (DGC-0019 is dgc-0019). Where
the town keeps a resident register ('redlist-node residents import'), an account
it does not hold is refused before anything is sent.""")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "award",
        help=_("award (or deduct) points under a rule"),
        description=_(DESCRIPTION),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--account", required=True, help=_("the resident's account id"))
    parser.add_argument("--rule", required=True, help=_("the rule's code, e.g. V01"))
    parser.add_argument(
        "--qty",
        type=values.whole_number,
        default=1,
        help=_("how many times the rule applies (default 1)"),
    )
    parser.add_argument(
        "--date",
        type=values.deed_date_arg,
        metavar="YYYY-MM-DD",
        help=_("the day of the deed (default: today in the town's time zone)"),
    )
    parser.add_argument("--note", help=_("a short note, e.g. where or when (optional)"))
    add_node_argument(parser)
    signing.add_signer_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    draft = entries.award(
        entries.Stamp.fresh(), args.account, args.rule, args.qty, args.note, args.date
    )
    signers = signing.read_signers(args.signer, args.cosigner)
    with connect(args) as client:
        if not draft.body.date:
            draft = entries.dated(draft, client.get_genesis().config.tz)
        account = draft.body.account
        if account in client.check_accounts([account], signers[0]).unknown:
            problem = unknown_account(account)
            raise FormatError(_("{problem}; nothing was sent").format(problem=problem))
        body, seq = signing.submit_entry(client, draft, signers, action=_("the award"))
        entry, view = after_entry(client, body.account, seq)
    times = f" ×{body.qty}" if body.qty > 1 else ""
    where = _("(deed of {date}, entry {seq})").format(date=i18n.prose_date(body.date), seq=seq)
    if entry is None:
        print(
            _("Recorded the award to {account} under rule {rule}{times} {where}.").format(
                account=body.account, rule=body.rule, times=times, where=where
            )
        )
    elif entry.points >= 0:
        print(
            _("Awarded {points_phrase} to {account} under rule {rule}{times} {where}.").format(
                points_phrase=points_phrase(entry.points),
                account=body.account,
                rule=body.rule,
                times=times,
                where=where,
            )
        )
    else:
        print(
            _("Deducted {points_phrase} from {account} under rule {rule}{times} {where}.").format(
                points_phrase=points_phrase(-entry.points),
                account=body.account,
                rule=body.rule,
                times=times,
                where=where,
            )
        )
    if view is not None:
        print(standing(view))
    return 0
