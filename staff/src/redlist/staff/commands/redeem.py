"""``redlist redeem``: spend an account's points at the points supermarket."""

from __future__ import annotations

import argparse

from redlist.ledger.i18n import N_, _
from redlist.staff import entries, signing, values
from redlist.staff.commands.account import after_entry, points_phrase, standing
from redlist.staff.nodeargs import add_node_argument, connect

DESCRIPTION = N_("""\
Record a redemption: the resident spends points on an item. Signed by a
cashier key. A redemption lowers the points left to spend, not the score (the
grade stays). The node refuses it when the account has fewer points to spend.

  redlist redeem --account dgc-0001 --points 50 --item "rice, 5 kg" \\
      --node 127.0.0.1:7420 --signer sun.pem""")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "redeem",
        help=_("spend an account's points on an item"),
        description=_(DESCRIPTION),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--account", required=True, help=_("the resident's account id"))
    parser.add_argument(
        "--points",
        required=True,
        type=values.whole_number,
        help=_("points spent (at least 1)"),
    )
    parser.add_argument("--item", required=True, help=_('what was given, e.g. "rice, 5 kg"'))
    add_node_argument(parser)
    signing.add_signer_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    draft = entries.redeem(entries.Stamp.fresh(), args.account, args.points, args.item)
    signers = signing.read_signers(args.signer, args.cosigner)
    with connect(args) as client:
        body, seq = signing.submit_entry(client, draft, signers, action=_("the redemption"))
        _entry, view = after_entry(client, body.account, seq)
    print(
        _("Redeemed {points_phrase} of {account} for “{text}” (entry {seq}).").format(
            points_phrase=points_phrase(body.points),
            account=body.account,
            text=draft.texts["item"].text,
            seq=seq,
        )
    )
    if view is not None:
        print(standing(view))
    return 0
