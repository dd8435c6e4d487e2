"""``redlist rule set|retire``: add or change one rule of the catalogue, or retire it."""

from __future__ import annotations

import argparse

from redlist.ledger.entry import RuleChange
from redlist.ledger.i18n import N_, _
from redlist.staff import entries, signing, values
from redlist.staff.commands.propose import add_propose_argument, propose_entry
from redlist.staff.nodeargs import add_node_argument, connect

DESCRIPTION = N_("""\
Set one rule of the town's catalogue, or retire it. The catalogue changes only
with the town's governance quorum: by default an admin (--signer) and the
council's quorum (--cosigner for each council member).

  redlist rule set --code V01 --title "Cleaned the village pond" \\
      --module environment --points 5 ...
  redlist rule set --code D07 --title "Did not support elderly parents" \\
      --module family --points -100 --council ...
  redlist rule retire --code V01 ...
  redlist rule set --code V03 ... --signer admin.pem --propose

Negative points make a deduction. With --council an award under the rule needs
the town's quorum of council signatures. --max-qty caps the qty of one award;
--max-per-month caps the qty a resident may get under the rule per month of the
deed dates (awards later reversed do not count). Setting an existing code replaces the
rule for later awards; earlier awards keep the points they were given.
With --propose the change waits in the node's review queue until the council
members approve it, one at a time and on any day ('redlist approve ID'), instead
of every signer signing now.
To load a whole catalogue at once, use 'redlist rules load'; to see it,
'redlist rules list'.""")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "rule",
        help=_("set or retire one rule of the catalogue"),
        description=_(DESCRIPTION),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(title=_("actions"), metavar="ACTION", required=True)

    set_parser = actions.add_parser(
        "set",
        help=_("add a rule, or change it for later awards"),
        description=_(
            "Add a rule to the catalogue, or change it for later awards (earlier "
            "awards keep their points), with the town's governance quorum. Negative "
            "--points make a deduction; with --council, awards under it need the town's "
            "council quorum."
        ),
    )
    set_parser.add_argument("--code", required=True, help=_("the rule's code, e.g. V01"))
    set_parser.add_argument("--title", required=True, help=_("what the rule is for"))
    set_parser.add_argument("--module", required=True, help=_("its section, e.g. environment"))
    set_parser.add_argument(
        "--points",
        required=True,
        type=values.whole_number,
        help=_("points per award (negative for a deduction, never 0)"),
    )
    set_parser.add_argument(
        "--council", action="store_true", help=_("awards under it need council quorum")
    )
    set_parser.add_argument(
        "--max-qty",
        type=values.whole_number,
        metavar="N",
        help=_("the most qty one award may have (default: no limit)"),
    )
    set_parser.add_argument(
        "--max-per-month",
        type=values.whole_number,
        metavar="N",
        help=_(
            "the most qty a resident may get under it per month of the deed dates, "
            "counting awards not reversed (default: no limit)"
        ),
    )
    set_parser.add_argument(
        "--decided",
        metavar="TEXT",
        help=_(
            'the meeting that voted the rule, e.g. "village assembly of 3 May 2026" '
            "(kept by the town's node; the log holds only a commitment to it)"
        ),
    )
    add_node_argument(set_parser)
    signing.add_signer_arguments(set_parser)
    add_propose_argument(set_parser)
    set_parser.set_defaults(run=run_set)

    retire = actions.add_parser(
        "retire",
        help=_("retire a rule: no new awards under it"),
        description=_(
            "Retire a rule, with the town's governance quorum: no new awards can be made "
            "under it; earlier awards keep their points. 'redlist rule set' with the same "
            "code brings it back."
        ),
    )
    retire.add_argument("--code", required=True, help=_("the rule's code"))
    add_node_argument(retire)
    signing.add_signer_arguments(retire)
    add_propose_argument(retire)
    retire.set_defaults(run=run_retire)


def describe_rule(rule: RuleChange) -> str:
    """A rule in one phrase: code, title, module, points and whether the council decides."""
    points = rule.points or 0
    effect = (
        _("awards {points} points").format(points=points)
        if points > 0
        else _("deducts {points} points").format(points=-points)
    )
    council = _("; needs council approval") if rule.council else ""
    limits = ""
    if rule.max_qty is not None:
        limits += _("; at most {max_qty} per award").format(max_qty=rule.max_qty)
    if rule.max_per_month is not None:
        limits += _("; at most {max_per_month} per resident a month").format(
            max_per_month=rule.max_per_month
        )
    return _("rule {code} “{title}” ({module}): {effect}{council}{limits}").format(
        code=rule.code,
        title=rule.title,
        module=rule.module,
        effect=effect,
        council=council,
        limits=limits,
    )


def run_set(args: argparse.Namespace) -> int:
    draft = entries.rule_set(
        entries.Stamp.fresh(),
        args.code,
        args.title,
        args.module,
        args.points,
        args.council,
        args.max_qty,
        args.max_per_month,
        args.decided,
    )
    signers = signing.read_signers(args.signer, args.cosigner)
    what = _("rule {code}").format(code=draft.body.code)
    with connect(args) as client:
        if args.propose:
            print(propose_entry(client, draft, signers, what))
            return 0
        body, seq = signing.submit_entry(client, draft, signers, action=what)
    print(
        _("Set {describe_rule} (entry {seq}).").format(describe_rule=describe_rule(body), seq=seq)
    )
    return 0


def run_retire(args: argparse.Namespace) -> int:
    draft = entries.rule_retire(entries.Stamp.fresh(), args.code)
    signers = signing.read_signers(args.signer, args.cosigner)
    what = _("the retirement of rule {code}").format(code=draft.body.code)
    with connect(args) as client:
        if args.propose:
            print(propose_entry(client, draft, signers, what))
            return 0
        body, seq = signing.submit_entry(client, draft, signers, action=what)
    print(
        _(
            "Retired rule {code} (entry {seq}): no new awards can be made under it; earlier "
            "awards keep their points."
        ).format(code=body.code, seq=seq)
    )
    return 0
