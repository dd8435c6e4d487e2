"""``redlist rules load|list``: load a whole rule catalogue from a CSV file, in one atomic
batch; print the catalogue."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from redlist.ledger.i18n import N_, _, ngettext
from redlist.proto.errors import NodeError
from redlist.staff import csvfiles, entries, listing, signing
from redlist.staff.commands.propose import add_propose_argument, propose_entry
from redlist.staff.nodeargs import add_node_argument, connect

DESCRIPTION = N_("""\
Load the rules of a CSV file into the town's catalogue, all or nothing.

The file's first row names the columns: code,title,module,points,council, and
optionally max_qty,max_per_month,decided
  code           the rule's code, e.g. V01 (each code once in the file)
  points         a whole number, negative for a deduction, never 0
  council        whether awards need the council's quorum: true/false, yes/no, 1/0, 是/否
  max_qty        the most qty one award may have (empty: no limit)
  max_per_month  the most qty a resident may get under the rule per month of the
                 deed dates, counting awards not reversed (empty: no limit)
  decided        the meeting that voted the rule, e.g. "村民代表大会 2026-05-03"
                 (kept by the town's node; the log holds a commitment to it)
Excel's "CSV UTF-8" or plain "CSV" (GB18030 on a Chinese Windows): the file is
read as UTF-8 when it is UTF-8, else as GB18030, and the summary says which.

Every row is checked before anything is sent; a bad row is reported by its
number as a spreadsheet shows it (the header is row 1) and nothing is loaded.
The rules are then sent as one batch: the node records all of them or none.
Rules change only with the town's governance quorum (by default an admin and
the council's quorum): the admin signs with --signer, each council member
with --cosigner.
Running the command again with the same file changes nothing: the entries'
ids are derived from the file's content, and the node recognises them.
With --propose each rule of the file becomes a proposal of the node's review
queue, which council members approve one at a time ('redlist approve ID'); the
node records each rule once its quorum signed, not all or nothing.""")

PURPOSE = "rules"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "rules",
        help=_("load a rule catalogue from a CSV file"),
        description=_(DESCRIPTION),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(title=_("actions"), metavar="ACTION", required=True)
    load = actions.add_parser(
        "load",
        help=_("load every rule of a CSV file, all or nothing"),
        description=_(DESCRIPTION),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    load.add_argument(
        "--csv",
        required=True,
        type=Path,
        metavar="FILE",
        help=_("columns code,title,module,points,council[,max_qty,max_per_month,decided]"),
    )
    add_node_argument(load)
    signing.add_signer_arguments(load)
    add_propose_argument(load)
    load.set_defaults(run=run_load)

    show = actions.add_parser(
        "list",
        help=_("print the catalogue: every rule, retired ones too"),
        description=_(
            "Print the town's rule catalogue as the node states it: code, title, points, "
            "module, whether the council decides, the caps, the meeting that decided it and "
            'whether it is active. --json prints one object {"rules": [...]}, each rule '
            "with code, title, points, module, council, max_qty, max_per_month, decided "
            "(null when none), active and seq (its last change)."
        ),
    )
    show.add_argument("--json", action="store_true", help=_("print one JSON object"))
    add_node_argument(show)
    show.set_defaults(run=run_list)


def run_list(args: argparse.Namespace) -> int:
    with connect(args) as client:
        head = client.latest()
        rules = sorted(client.get_rules().values(), key=lambda rule: rule.code)
    if args.json:
        print(
            json.dumps({"rules": [listing.rule_json(rule) for rule in rules]}, ensure_ascii=False)
        )
        return 0
    active = sum(1 for rule in rules if rule.active)
    print(
        ngettext(
            "Rules of log {origin} as of entry {entry}: {count} rule, {active} active.",
            "Rules of log {origin} as of entry {entry}: {count} rules, {active} active.",
            len(rules),
        ).format(origin=head.origin, entry=head.size - 1, count=len(rules), active=active)
    )
    if rules:
        listing.print_rules(sys.stdout, rules)
    return 0


def run_load(args: argparse.Namespace) -> int:
    name = args.csv.name
    data = csvfiles.read_input_file(args.csv, _("catalogue file"))
    rows = csvfiles.parse_rules_csv(data, name)
    signers = signing.read_signers(args.signer, args.cosigner)
    digest = csvfiles.file_digest(data)
    at = entries.now_ms()
    # Salts derived from the signer's key: a re-run commits to a decided text the same way.
    salt = entries.derived_salt(signers[0])
    with connect(args) as client:
        client.repeatable = True  # ids from what the rows say (advice)
        head = client.latest()
        drafts = [
            row.body(
                entries.Stamp(head.origin, csvfiles.row_entry_id(digest, PURPOSE, row.row), at),
                salt,
            )
            for row in rows
        ]
        if args.propose:
            for draft in drafts:
                what = _("rule {code}").format(code=draft.body.code)
                print(propose_entry(client, draft, signers, what))
            print(csvfiles.read_as(data, name))
            return 0
        envelopes = [signing.seal(draft.body, signers) for draft in drafts]
        try:
            result = client.submit(envelopes, texts=[draft.texts for draft in drafts])
        except NodeError as error:
            if error.code == "ALREADY_EXISTS":
                # The ids come from this very file, and the batch was atomic: a run
                # before this one (with another time or other keys) loaded all of it.
                print(
                    _(
                        "The {rows_count} rules of {name} were already loaded by an earlier run "
                        "of this "
                        "command; nothing changed."
                    ).format(rows_count=len(rows), name=name)
                )
                print(csvfiles.read_as(data, name))
                return 0
            raise _located(error, rows, name) from None
        client.prove_recorded(dict(zip(result.seqs, envelopes, strict=True)), result.checkpoint)
    first, last = min(result.seqs), max(result.seqs)
    if last < head.size:
        print(
            _(
                "The {rows_count} rules of {name} were already loaded by an earlier run (entries "
                "{first} to {last}); nothing changed."
            ).format(rows_count=len(rows), name=name, first=first, last=last)
        )
    else:
        print(
            _("Loaded {rows_count} rules from {name} (entries {first} to {last}).").format(
                rows_count=len(rows), name=name, first=first, last=last
            )
        )
    print(csvfiles.read_as(data, name))
    return 0


def _located(error: NodeError, rows: tuple[csvfiles.RuleRow, ...], name: str) -> NodeError:
    """The refusal, naming the row of the file it is about."""
    if error.index is not None and 0 <= error.index < len(rows):
        where = _("row {row} of {name}").format(row=rows[error.index].row, name=name)
    else:
        where = name
    return error.about(_("{where} (no rule of the file was loaded)").format(where=where))
