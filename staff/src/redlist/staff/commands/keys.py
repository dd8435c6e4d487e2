"""``redlist keys list``: the town's staff keys as the node states them."""

from __future__ import annotations

import argparse
import json
import sys

from redlist.ledger.i18n import N_, _, ngettext
from redlist.staff import listing
from redlist.staff.nodeargs import add_node_argument, connect

DESCRIPTION = N_("""\
Print the staff keys registered in the town's log, revoked ones too: key id, the
holder's name, the roles, the entry that registered the key and the one that
revoked it (empty while it is active). Entry 0 is the genesis: the log's first
admin.

  redlist keys list --node 127.0.0.1:7420
  redlist keys list --node 127.0.0.1:7420 --json

--json prints one object {"keys": [...]}, each key with key_id and public_key
(hex), name, roles, added, revoked (null while active) and active.""")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "keys",
        help=_("list the staff keys of the log"),
        description=_(DESCRIPTION),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(title=_("actions"), metavar="ACTION", required=True)
    show = actions.add_parser(
        "list",
        help=_("print every staff key, revoked ones too"),
        description=_(DESCRIPTION),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show.add_argument("--json", action="store_true", help=_("print one JSON object"))
    add_node_argument(show)
    show.set_defaults(run=run_list)


def run_list(args: argparse.Namespace) -> int:
    with connect(args) as client:
        head = client.latest()
        keys = client.get_keys()
    if args.json:
        print(json.dumps({"keys": [listing.key_json(key) for key in keys]}, ensure_ascii=False))
        return 0
    active = sum(1 for key in keys if key.revoked is None)
    print(
        ngettext(
            "Staff keys of log {origin} as of entry {entry}: {count} key, {active} active.",
            "Staff keys of log {origin} as of entry {entry}: {count} keys, {active} active.",
            len(keys),
        ).format(origin=head.origin, entry=head.size - 1, count=len(keys), active=active)
    )
    listing.print_keys(sys.stdout, keys)
    return 0
