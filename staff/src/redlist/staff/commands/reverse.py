"""``redlist reverse``: cancel an award or a redemption by council decision."""

from __future__ import annotations

import argparse

from redlist.ledger.entry import Award, Redeem
from redlist.ledger.errors import RedlistError
from redlist.staff import entries, signing, values
from redlist.staff.client import add_node_argument, connect
from redlist.staff.commands.account import lookup, points_phrase, standing

DESCRIPTION = """\
Reverse an award or a redemption, for example when the council upholds an
objection. Needs the town's quorum of council members: sign with --signer and
add --cosigner for each further member. The entry stays in the log (nothing is
ever deleted); from now on its points no longer count. An entry is reversed once.

  redlist reverse --target 57 --reason "objection upheld, council meeting 3 June" \\
      --node 127.0.0.1:7420 --signer li.pem --cosigner zhao.pem"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "reverse",
        help="reverse an award or redemption (council quorum)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--target",
        required=True,
        type=values.whole_number,
        metavar="SEQ",
        help="the entry number to reverse",
    )
    parser.add_argument("--reason", required=True, help="why, e.g. the council's decision")
    add_node_argument(parser)
    signing.add_signer_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    draft = entries.reverse(entries.Stamp.fresh(), args.target, args.reason)
    signers = signing.read_signers(args.signer, args.cosigner)
    with connect(args) as client:
        body, seq = signing.submit_entry(
            client, draft, signers, action=f"the reversal of entry {draft.target}"
        )
        try:
            target = client.get_body(body.target)
        except RedlistError:
            target = None  # recorded all the same; the summary is only shorter
        view = lookup(client, target.account) if isinstance(target, Award | Redeem) else None
    if isinstance(target, Award):
        what = f", the award to {target.account} under rule {target.rule}"
        effect = "its points no longer count"
    elif isinstance(target, Redeem):
        what = f", the redemption of {points_phrase(target.points)} by {target.account}"
        effect = "the points are back to spend"
    else:
        what, effect = "", "its points no longer count"
    print(f"Reversed entry {body.target}{what} (entry {seq}): {effect}.")
    if view is not None:
        print(standing(view))
    return 0
