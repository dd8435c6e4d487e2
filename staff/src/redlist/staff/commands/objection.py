"""``redlist objection``: file a resident's objection to an award."""

from __future__ import annotations

import argparse

from redlist.ledger.i18n import N_, _
from redlist.staff import entries, signing, values
from redlist.staff.nodeargs import add_node_argument, connect

DESCRIPTION = N_("""\
Record a resident's objection to an award (staff file it on the resident's
behalf; any registered key may sign). The objection itself changes no points:
if the council upholds it, council members reverse the award with
'redlist reverse --target SEQ'.

  redlist objection --target 57 --text "I was not in the village that day" \\
      --node 127.0.0.1:7420 --signer wang.pem""")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "objection",
        help=_("file an objection to an award"),
        description=_(DESCRIPTION),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--target",
        required=True,
        type=values.whole_number,
        metavar="SEQ",
        help=_("the award's entry number"),
    )
    parser.add_argument("--text", required=True, help=_("the objection, in the resident's words"))
    add_node_argument(parser)
    signing.add_signer_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    draft = entries.objection(entries.Stamp.fresh(), args.target, args.text)
    signers = signing.read_signers(args.signer, args.cosigner)
    with connect(args) as client:
        body, seq = signing.submit_entry(
            client,
            draft,
            signers,
            action=_("the objection to entry {target}").format(target=draft.body.target),
        )
    print(
        _(
            "Recorded the objection to entry {target} (entry {seq}). If the council upholds "
            "it, council members reverse the award: redlist reverse --target {target}"
        ).format(target=body.target, seq=seq)
    )
    return 0
