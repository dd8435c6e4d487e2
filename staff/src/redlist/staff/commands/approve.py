"""``redlist approve``: a council member signs proposals of the review queue."""

from __future__ import annotations

import argparse
from pathlib import Path

from redlist.ledger import crypto, keyfile
from redlist.ledger.entry import Envelope, Leaf, decode_body
from redlist.ledger.errors import VerificationError
from redlist.ledger.i18n import N_, _
from redlist.staff import values
from redlist.staff.client import LedgerClient
from redlist.staff.commands.review import describe
from redlist.staff.nodeargs import add_node_argument, connect
from redlist.staff.reviewcalls import ReviewItem

DESCRIPTION = N_("""\
Approve proposals of the review queue ('redlist review list'), one council member
at a time. For each ID the proposal is printed in words (an award: account, the
resident's masked name where the town keeps a register, rule, points, deed date;
a rule change: the rule as 'redlist rule set' describes it, or its retirement; a
key change: key id, holder and roles) and exactly that body is signed; the node
refuses the approval if its body is not the one shown. Once enough council
members approved, the node records the entry.

  redlist approve 3 4 --node 127.0.0.1:7420 --signer li.pem""")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "approve",
        help=_("approve proposals of the review queue"),
        description=_(DESCRIPTION),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("numbers", nargs="+", type=values.whole_number, metavar="ID")
    add_node_argument(parser)
    parser.add_argument(
        "--signer", required=True, type=Path, metavar="KEYFILE", help=_("your private key file")
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    key = keyfile.read_signing_key(args.signer)
    with connect(args) as client:
        origin = client.latest().origin
        zone = client.town_zone()
        for number in args.numbers:
            shown = client.list_pending(number=number, closed=True)[0]
            print(describe(shown, zone))
            if shown.state != "pending":
                print(
                    _("Item {number} is no longer waiting for review: nothing signed.").format(
                        number=number
                    )
                )
                continue
            body = decode_body(shown.body)
            if body.log != origin:
                raise VerificationError(
                    "log",
                    _("item {number} is meant for log {log!r}, not for {origin!r}").format(
                        number=number, log=body.log, origin=origin
                    ),
                )
            signature = crypto.sign_entry(key, shown.body)
            after = client.approve(shown, key, signature)
            if after.body_hash != shown.body_hash:
                raise VerificationError(
                    "review-body",
                    _(
                        "the node answered for item {number} with another body than the one "
                        "shown and signed; tell the town admin"
                    ).format(number=number),
                )
            print(_outcome(client, after, key.key_id))
    return 0


def _outcome(client: LedgerClient, item: ReviewItem, key_id: bytes) -> str:
    if item.state == "appended":
        _prove(client, item, key_id)
        return _("Approved item {number}: recorded as entry {seq}.").format(
            number=item.number, seq=item.seq
        )
    counted = any(signer.key_id == key_id for signer in item.signers)
    if not counted:
        return _("Item {number}: your approval was not counted.").format(number=item.number)
    return _("Approved item {number}; it still needs: {needs}.").format(
        number=item.number, needs=item.needs_in_words() or _("nothing")
    )


def _prove(client: LedgerClient, item: ReviewItem, key_id: bytes) -> None:
    """The entry at ``item.seq`` holds the body shown, and is in the signed log."""

    def check(seq: int, data: bytes) -> None:
        envelope = Envelope.from_bytes(Leaf.from_bytes(data).envelope)
        if envelope.body != item.body:
            raise VerificationError(
                "inclusion",
                _("entry {seq} does not hold the body of item {number}").format(
                    seq=seq, number=item.number
                ),
                seq=seq,
            )

    client.proved_leaves([item.seq], client.latest(), check)
