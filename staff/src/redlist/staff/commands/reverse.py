"""``redlist reverse``: cancel an award or a redemption by council decision; one, or many
at once from a file (``redlist.staff.bulkreverse``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from redlist.ledger.entry import Award, Redeem
from redlist.ledger.errors import FormatError, RedlistError
from redlist.ledger.i18n import N_, _, ngettext
from redlist.staff import bulkreverse, csvfiles, entries, signing, values
from redlist.staff.client import LedgerClient
from redlist.staff.commands.account import lookup, points_phrase, standing
from redlist.staff.nodeargs import add_node_argument, connect
from redlist.staff.problems import SheetError, write_problems

DESCRIPTION = N_("""\
Reverse an award or a redemption, for example when the council upholds an
objection. Needs the town's quorum of council members: sign with --signer and
add --cosigner for each further member. The entry stays in the log (nothing is
ever deleted); from now on its points no longer count. An entry is reversed once.

  redlist reverse --target 57 --reason "objection upheld, council meeting 3 June" \\
      --node 127.0.0.1:7420 --signer li.pem --cosigner zhao.pem

Many at once:
  --csv FILE    a CSV file with the columns seq,reason (序号,原因): the entry numbers,
                each with its reason (an empty reason cell takes --reason)
  --sheet FILE  an award sheet submitted by mistake: the entries its rows recorded,
                found by what the rows say, all with --reason
The entries are listed first (entry, account, rule, points, deed date) and the
command asks for confirmation; --yes skips the question (needed without a
terminal). Safe to run again: an entry already reversed is reported as done,
never reversed twice.""")

DEFAULT_BATCH_SIZE = 500


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "reverse",
        help=_("reverse awards or redemptions (council quorum)"),
        description=_(DESCRIPTION),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--target", type=values.whole_number, metavar="SEQ", help=_("the entry number to reverse")
    )
    which.add_argument(
        "--csv", type=Path, metavar="FILE", help=_("entries to reverse: columns seq,reason")
    )
    which.add_argument(
        "--sheet", type=Path, metavar="FILE", help=_("reverse what an award sheet recorded")
    )
    parser.add_argument("--reason", help=_("why, e.g. the council's decision"))
    parser.add_argument(
        "--yes", action="store_true", help=_("reverse without asking for confirmation")
    )
    parser.add_argument(
        "--errors",
        type=Path,
        metavar="FILE",
        help=_("if the file has bad rows, write all of them to FILE (CSV for Excel)"),
    )
    add_node_argument(parser)
    signing.add_signer_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.target is None:
        try:
            return _run_many(args)
        except SheetError as error:
            if args.errors is not None:
                write_problems(args.errors, error.problems)
                print(
                    _("All {problems_count} problems are listed in {errors}.").format(
                        problems_count=len(error.problems), errors=args.errors
                    )
                )
            raise
    if args.reason is None:
        raise FormatError(_("give the reason with --reason"))
    draft = entries.reverse(entries.Stamp.fresh(), args.target, args.reason)
    signers = signing.read_signers(args.signer, args.cosigner)
    with connect(args) as client:
        body, seq = signing.submit_entry(
            client,
            draft,
            signers,
            action=_("the reversal of entry {target}").format(target=draft.body.target),
        )
        try:
            target = client.get_body(body.target)
        except RedlistError:
            target = None  # recorded all the same; the summary is only shorter
        view = lookup(client, target.account) if isinstance(target, Award | Redeem) else None
    if isinstance(target, Award):
        what = _(", the award to {account} under rule {rule}").format(
            account=target.account, rule=target.rule
        )
        effect = _("its points no longer count")
    elif isinstance(target, Redeem):
        what = _(", the redemption of {points_phrase} by {account}").format(
            points_phrase=points_phrase(target.points), account=target.account
        )
        effect = _("the points are back to spend")
    else:
        what, effect = "", _("its points no longer count")
    print(
        _("Reversed entry {target}{what} (entry {seq}): {effect}.").format(
            target=body.target, what=what, seq=seq, effect=effect
        )
    )
    if view is not None:
        print(standing(view))
    return 0


def _run_many(args: argparse.Namespace) -> int:
    path: Path = args.csv or args.sheet
    name = path.name
    reason = None if args.reason is None else values.check_text(args.reason, "--reason")
    data = csvfiles.read_input_file(path, "file")
    awards: tuple[csvfiles.AwardRow, ...] = ()
    numbers: tuple[csvfiles.ReversalRow, ...] = ()
    if args.sheet is None:
        numbers = csvfiles.parse_reversals_csv(data, name)
    elif reason is None:
        raise FormatError(_("give the reason for reversing the sheet with --reason"))
    else:
        awards = csvfiles.parse_awards_csv(data, name)
    signers = signing.read_signers(args.signer, args.cosigner)
    with connect(args) as client:
        client.repeatable = True  # reversal ids from [log, target] (advice)
        origin = client.latest().origin
        missing: list[int] = []
        if awards and reason is not None:
            targets, missing = bulkreverse.from_sheet(client, awards, reason, name)
        else:
            targets = bulkreverse.from_numbers(client, numbers, reason, name)
        done = bulkreverse.already_done(client, origin, targets)
        todo = [target for target in targets if target.seq not in done]
        print(_overview(name, todo, len(done), missing))
        print(csvfiles.read_as(data, name))
        if not todo:
            print(_("Nothing to reverse."))
            return 0
        print("\n".join(bulkreverse.preview(todo)))
        _confirm(args.yes, len(todo))
        reversals = bulkreverse.reverse_all(client, origin, todo, signers, DEFAULT_BATCH_SIZE)
        print(_summary(reversals, len(done)))
        _standings(client, todo)
    return 0


def _overview(name: str, todo: Sequence[bulkreverse.Target], done: int, missing: list[int]) -> str:
    entries_text = ngettext("{todo_count} entry", "{todo_count} entries", len(todo)).format(
        todo_count=len(todo)
    )
    line = _("{name}: {entries_text} to reverse").format(name=name, entries_text=entries_text)
    if done:
        line += _("; {done} already reversed, left as they are").format(done=done)
    if missing:
        rows = ", ".join(str(row) for row in missing[:20]) + (", ..." if len(missing) > 20 else "")
        line += _("; {missing_count} rows of the sheet are not recorded (rows {rows})").format(
            missing_count=len(missing), rows=rows
        )
    return line + _(".")


def _confirm(yes: bool, count: int) -> None:
    """Ask before reversing; without a terminal only ``--yes`` goes on."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise FormatError(
            _(
                "nothing was reversed: confirm the {count} reversals by running the command "
                "again with --yes (there is no terminal to ask on)"
            ).format(count=count)
        )
    answer = input(_("Reverse these {count} entries? Type yes to go on: ").format(count=count))
    if answer.strip().lower() not in ("yes", "y", "是"):
        raise FormatError(_("nothing was reversed: not confirmed"))


def _summary(reversals: dict[int, int], done: int) -> str:
    seqs = sorted(reversals.values())
    span = (
        _("entry {seqs}").format(seqs=seqs[0])
        if len(seqs) == 1
        else _("entries {seqs} to {seqs2}").format(seqs=seqs[0], seqs2=seqs[-1])
    )
    count = ngettext("{seqs_count} entry", "{seqs_count} entries", len(seqs)).format(
        seqs_count=len(seqs)
    )
    already = _("; {done} already reversed before").format(done=done) if done else ""
    return _("Reversed {count} ({span}){already}: their points no longer count.").format(
        count=count, span=span, already=already
    )


def _standings(client: LedgerClient, targets: Sequence[bulkreverse.Target]) -> None:
    accounts = sorted({target.account for target in targets})
    if len(accounts) > 20:
        return  # 'redlist account' shows each; a long list here helps nobody
    for account in accounts:
        view = lookup(client, account)
        if view is not None:
            print(standing(view))
