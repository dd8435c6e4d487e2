"""``redlist review list|show``: what waits for the council, and what became of it."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, tzinfo

from redlist.ledger import crypto
from redlist.ledger.entry import Award, KeyChange, RuleChange, decode_body
from redlist.ledger.errors import FormatError
from redlist.ledger.i18n import N_, _
from redlist.staff import values
from redlist.staff.commands.rule import describe_rule
from redlist.staff.nodeargs import add_node_argument, connect
from redlist.staff.reviewcalls import ReviewItem

DESCRIPTION = N_("""\
Show the node's review queue: the proposals waiting for council members'
approval, who signed each and what it still needs. Besides awards ('redlist
propose'), the queue holds catalogue and staff-list changes proposed with
--propose ('redlist rule set', 'redlist rules load', 'redlist key add' ...).

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
        zone = client.town_zone() if items and not args.json else UTC
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
        print(describe(item, zone))
    return 0


def run_show(args: argparse.Namespace) -> int:
    with connect(args) as client:
        items = client.list_pending(number=args.number, closed=True)
        zone = UTC if args.json else client.town_zone()
    if args.json:
        print(json.dumps(item_json(items[0]), ensure_ascii=False, indent=2))
    else:
        print(describe(items[0], zone))
    return 0


def in_words(item: ReviewItem) -> str:
    """The proposal as a reviewer reads it before signing. An award: account, masked
    name, rule, points, deed date, and whether the resident declared it. A rule
    change: the rule as ``redlist rule set`` describes it, or its retirement. A key
    change: registration (key id, holder, roles) or revocation (key id)."""
    try:
        body = decode_body(item.body)
    except FormatError as error:
        return _("an entry that cannot be read ({error})").format(error=error)
    if isinstance(body, RuleChange):
        if body.op == "set":
            return _("set {rule}").format(rule=describe_rule(body))
        return _(
            "retire rule {code}: no new awards under it; earlier awards keep their points"
        ).format(code=body.code)
    if isinstance(body, KeyChange):
        key = crypto.key_id(body.pub).hex()
        if body.op == "add":
            roles = body.roles or ()
            return _("register key {key} of {name} with the roles {roles}").format(
                key=key,
                name=body.name,
                roles=_(", ").join(_(values.ROLE_NAMES.get(role, role)) for role in roles),
            )
        return _("revoke key {key}: it can no longer sign").format(key=key)
    if not isinstance(body, Award):
        return _("a {kind} entry").format(kind=body.kind)
    who = body.account + (f" ({item.masked_name})" if item.masked_name else "")
    title = _(" \u201c{title}\u201d").format(title=item.rule_title) if item.rule_title else ""
    times = f" ×{body.qty}" if body.qty > 1 else ""
    points = _("{points} points, ").format(points=f"{item.points:+d}") if item.rule_title else ""
    declared = _("; declared by the resident (本人申报)") if body.declared else ""
    return _(
        "award to {who} under rule {rule}{title}{times}: {points}deed of {date}{declared}"
    ).format(
        who=who,
        rule=body.rule,
        title=title,
        times=times,
        points=points,
        date=body.date,
        declared=declared,
    )


def describe(item: ReviewItem, zone: tzinfo) -> str:
    """The item in words: what it is, who proposed and signed it, and its state; times
    in ``zone``, the town's (as a statement shows them)."""
    lines = [_("Item {number}: {what}").format(number=item.number, what=in_words(item))]
    lines.append(
        _("  proposed by {name} on {when}").format(
            name=item.proposer_name, when=_when(item.proposed, zone)
        )
    )
    signed = _(", ").join(
        signer.name
        if signer.counts
        else _("{name} (revoked: not counted)").format(name=signer.name)
        for signer in item.signers
    )
    lines.append(_("  signed by {signers}").format(signers=signed))
    if item.state == "pending":
        if item.needs:
            lines.append(_("  still needs: {needs}").format(needs=item.needs_in_words()))
        if item.problem:
            lines.append(_("  cannot be recorded now: {problem}").format(problem=item.problem))
        lines.append(_("  expires {when}").format(when=_when(item.expires, zone)))
    elif item.state == "appended":
        lines.append(_("  recorded as entry {seq}").format(seq=item.seq))
    elif item.state == "rejected":
        lines.append(
            _("  rejected by {name} on {when}: {reason}").format(
                name=item.decided_by, when=_when(item.decided, zone), reason=item.reason
            )
        )
    else:
        lines.append(_("  expired unreviewed on {when}").format(when=_when(item.decided, zone)))
    lines.append(_("  body SHA-256 {hash}").format(hash=item.body_hash.hex()))
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
        "still_needs": _needs_json(item),
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
    if isinstance(body, RuleChange):
        value.update(op=body.op, rule=body.code, rule_title=body.title, points=body.points)
    if isinstance(body, KeyChange):
        value.update(
            op=body.op,
            key_id=crypto.key_id(body.pub).hex(),
            key_name=body.name,
            roles=list(body.roles or ()),
        )
    if item.state == "appended":
        value["seq"] = item.seq
    if item.state == "rejected":
        value.update(reason=item.reason, rejected_by=item.decided_by)
    return value


def _needs_json(item: ReviewItem) -> dict[str, object] | None:
    """``needs`` as the node sent it as data (English keys and values, for programs)."""
    needs = item.still_needs
    if needs is None:
        return None
    return {
        "quorum": needs.quorum,
        "alternatives": [
            {"admin": one.admin, "council": one.council} for one in needs.alternatives
        ],
        "admins": needs.admins,
        "councils": needs.councils,
    }


def _when(ms: int, zone: tzinfo) -> str:
    return datetime.fromtimestamp(ms / 1000, zone).strftime("%Y-%m-%d %H:%M")
