"""``redlist review list|show``: what waits for the council, and what became of it."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from redlist.ledger.entry import Award, decode_body
from redlist.ledger.errors import FormatError
from redlist.ledger.i18n import N_, _
from redlist.staff import values
from redlist.staff.client import add_node_argument, connect
from redlist.staff.reviewcalls import ReviewItem

DESCRIPTION = N_("""\
Show the node's review queue: the proposals waiting for council members'
approval, who signed each and what it still needs.

  redlist review list --node 127.0.0.1:7420
  redlist review list --village 东村 --node 127.0.0.1:7420 --json
  redlist review show 3 --node 127.0.0.1:7420

--village keeps the residents of one village (the node's register says who lives
where; a proposal for an account the register does not hold is left out).
'show' also tells what became of an item: recorded (with its entry number),
rejected (with the council's reason) or expired.""")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "review",
        help=_("list proposals waiting for the council"),
        description=_(DESCRIPTION),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="{list,show}")
    listing = actions.add_parser("list", help=_("the proposals waiting for review"))
    listing.add_argument("--village", default="", help=_("only residents of this village"))
    listing.add_argument(
        "--all", action="store_true", help=_("also those recorded, rejected or expired lately")
    )
    listing.add_argument("--json", action="store_true", help=_("print JSON"))
    add_node_argument(listing)
    listing.set_defaults(run=run_list)
    show = actions.add_parser("show", help=_("one proposal, and what became of it"))
    show.add_argument("number", type=values.whole_number, metavar="ID")
    show.add_argument("--json", action="store_true", help=_("print JSON"))
    add_node_argument(show)
    show.set_defaults(run=run_show)


def run_list(args: argparse.Namespace) -> int:
    with connect(args) as client:
        items = client.list_pending(village=args.village, closed=args.all)
    if args.json:
        print(json.dumps([item_json(item) for item in items], ensure_ascii=False, indent=2))
        return 0
    if not items:
        print(
            _("No proposal waits for review in {village}.").format(village=args.village)
            if args.village
            else _("No proposal waits for review.")
        )
        return 0
    for item in items:
        print(describe(item))
    return 0


def run_show(args: argparse.Namespace) -> int:
    with connect(args) as client:
        items = client.list_pending(number=args.number, closed=True)
    if args.json:
        print(json.dumps(item_json(items[0]), ensure_ascii=False, indent=2))
    else:
        print(describe(items[0]))
    return 0


def in_words(item: ReviewItem) -> str:
    """The proposal as a reviewer reads it before signing: account, masked name, rule,
    points, deed date, and whether the resident declared it."""
    try:
        body = decode_body(item.body)
    except FormatError as error:
        return f"an entry that cannot be read ({error})"
    if not isinstance(body, Award):
        return f"a {body.kind} entry"
    who = body.account + (f" ({item.masked_name})" if item.masked_name else "")
    title = f' "{item.rule_title}"' if item.rule_title else ""
    times = f" ×{body.qty}" if body.qty > 1 else ""
    points = f"{item.points:+d} points, " if item.rule_title else ""
    declared = "; declared by the resident (本人申报)" if body.declared else ""
    return (
        f"award to {who} under rule {body.rule}{title}{times}: {points}deed of "
        f"{body.date}{declared}"
    )


def describe(item: ReviewItem) -> str:
    lines = [f"Item {item.number}: {in_words(item)}"]
    lines.append(f"  proposed by {item.proposer_name} on {_when(item.proposed)}")
    signed = ", ".join(
        signer.name + ("" if signer.counts else " (revoked: not counted)")
        for signer in item.signers
    )
    lines.append(f"  signed by {signed}")
    if item.state == "pending":
        if item.needs:
            lines.append(f"  still needs: {item.needs}")
        if item.problem:
            lines.append(f"  cannot be recorded now: {item.problem}")
        lines.append(f"  expires {_when(item.expires)}")
    elif item.state == "appended":
        lines.append(f"  recorded as entry {item.seq}")
    elif item.state == "rejected":
        lines.append(f"  rejected by {item.decided_by} on {_when(item.decided)}: {item.reason}")
    else:
        lines.append(f"  expired unreviewed on {_when(item.decided)}")
    lines.append(f"  body SHA-256 {item.body_hash.hex()}")
    return "\n".join(lines)


def item_json(item: ReviewItem) -> dict[str, object]:
    body = decode_body(item.body)
    value: dict[str, object] = {
        "id": item.number,
        "state": item.state,
        "kind": body.kind,
        "body_sha256": item.body_hash.hex(),
        "proposer": item.proposer_name,
        "proposed_ms": item.proposed,
        "expires_ms": item.expires,
        "signers": [
            {"key_id": s.key_id.hex(), "name": s.name, "roles": list(s.roles), "counts": s.counts}
            for s in item.signers
        ],
        "needs": item.needs,
        "problem": item.problem,
        "masked_name": item.masked_name,
        "village": item.village,
    }
    if isinstance(body, Award):
        value.update(
            account=body.account,
            rule=body.rule,
            rule_title=item.rule_title,
            qty=body.qty,
            points=item.points,
            date=body.date,
            declared=body.declared,
        )
    if item.state == "appended":
        value["seq"] = item.seq
    if item.state == "rejected":
        value.update(reason=item.reason, rejected_by=item.decided_by)
    return value


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
