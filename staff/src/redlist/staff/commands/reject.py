"""``redlist reject``: the council takes a proposal out of the review queue."""

from __future__ import annotations

import argparse
from pathlib import Path

from redlist.ledger import keyfile
from redlist.ledger.i18n import N_, _
from redlist.staff import values
from redlist.staff.nodeargs import add_node_argument, connect

DESCRIPTION = N_("""\
Reject a proposal of the review queue (council members only). It is removed from
the queue with your reason, which its proposer sees ('redlist review show ID').
Nothing enters the log.

  redlist reject 5 --reason "not in the village that week" \\
      --node 127.0.0.1:7420 --signer li.pem""")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "reject",
        help=_("reject a proposal of the review queue"),
        description=_(DESCRIPTION),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("number", type=values.whole_number, metavar="ID")
    parser.add_argument("--reason", required=True, help=_("why, in the council's words"))
    add_node_argument(parser)
    parser.add_argument(
        "--signer", required=True, type=Path, metavar="KEYFILE", help=_("your private key file")
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    key = keyfile.read_signing_key(args.signer)
    with connect(args) as client:
        item = client.reject(args.number, args.reason, key)
    print(_("Rejected item {number}: {reason}").format(number=item.number, reason=item.reason))
    return 0
