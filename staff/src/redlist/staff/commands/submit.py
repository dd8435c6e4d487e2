"""``redlist submit --csv``: bulk awards from a CSV file; a row is never recorded twice.

Rows are known by what they say (``redlist.staff.rowids``): each row's entry id is
derived from its content (log, account, rule, qty, deed date, note) and its occurrence
among identical rows of the sheet, never from the file's bytes, its row numbers or who
signs. A run goes:

1. read the sheet and check every cell (``csvfiles``);
2. ask the node which rows' ids its log holds (``recorded.find_recorded``): each
   found entry is proved to be in the log and must say what its row says, else the
   sheet is refused as a conflict; found rows are "already recorded";
3. check the other rows against the town's catalogue, deed-date window and caps,
   with the log's monthly counts (``sheet.check_rows``), and their accounts against the
   town's resident register (``check_accounts``, ADR 0038; the run ends by saying how
   many accounts the register holds, or that the node keeps none); any problem refuses
   the whole sheet, listing every bad row, before anything is signed or sent;
4. ``--dry-run`` stops here and says what would be recorded (``preview``); otherwise
   the new rows are signed and sent in batches. A batch the node answers with
   ``ALREADY_EXISTS`` (someone recorded some of its rows meanwhile) is looked up
   again, its recorded rows counted as already recorded, and the rest sent.

So re-running a sheet after a crash, after saving it again (other line endings,
spaces, rows sorted, Excel's date format) or after correcting some rows records only
the rows not yet recorded. A corrected row is a new deed: the row as it was stays
recorded, and is reversed like any entry.

A row counts as recorded only once the node has proved it: the checkpoint that
answers its batch verifies with the town log's key, and the row's leaf holds exactly
the envelope sent and has an inclusion proof to that checkpoint's root.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from redlist.ledger import deeddate, i18n
from redlist.ledger.bodies import TownConfig
from redlist.ledger.crypto import SigningKey
from redlist.ledger.errors import FormatError, RedlistError
from redlist.ledger.i18n import N_, _, ngettext
from redlist.ledger.progress import ProgressBar
from redlist.ledger.textcommit import EntryText
from redlist.proto.contract import MAX_BATCH_CHECK
from redlist.proto.errors import NodeError
from redlist.staff import csvfiles, entries, signing, values
from redlist.staff.advice import IN_DOUBT, REFUSED, advice
from redlist.staff.batching import batches
from redlist.staff.client import LedgerClient, RegisterAnswer, RemoteRule
from redlist.staff.nodeargs import add_node_argument, connect
from redlist.staff.problems import Problem, SheetError, write_problems
from redlist.staff.recorded import conflict_error, find_recorded
from redlist.staff.sheet import (
    SheetRow,
    Town,
    account_problems,
    capped_keys,
    check_rows,
    sheet_rows,
)

DESCRIPTION = N_("""\
Record many awards from a CSV file. The first row names the columns:
  account,rule,qty,date,note
qty, date and note may be left empty or left out: qty 1; date (the day of the
deed, YYYY-MM-DD, also 2026/5/3; the column may be headed 日期) today in the
town's time zone, and the summary says how many rows got it; no note. Account
ids are case-folded (DGC-0019 is dgc-0019). Excel's "CSV UTF-8" or plain "CSV"
(GB18030 on a Chinese Windows): the file is read as UTF-8 when it is UTF-8, else
as GB18030, and the summary says which.

Everything is checked before anything is sent: every cell, then every row
against the town's catalogue (unknown or retired rules, council rules, max_qty,
the monthly caps with what the log already has) and its date window, and, where
the town keeps a resident register, every account against it (the node answers
the town's staff only; an older node that cannot is an error). If any row
is bad, all bad rows are listed by their number as a spreadsheet shows it (the
header is row 1) and nothing is sent; --errors FILE writes the full list as a
CSV file to open beside the sheet. --dry-run shows what would be recorded.

Rows are known by what they say, never recorded twice: run the command again
after an interruption, after saving the sheet again (in either encoding) or after
correcting some of its rows, and only the rows not yet recorded are recorded; the
summary says how many were already there. Two identical rows are two deeds. A
corrected row is a new deed: the row as it was stays recorded until reversed
('redlist reverse'). Rows without a date are known by the day they are sent:
submitted again on another day, they are recorded again, so put the dates in
the sheet.""")

DEFAULT_BATCH_SIZE = 500


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "submit",
        help=_("record many awards from a CSV file"),
        description=_(DESCRIPTION),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--csv",
        required=True,
        type=Path,
        metavar="FILE",
        help=_("columns account,rule,qty,date,note"),
    )
    parser.add_argument(
        "--batch-size",
        type=values.whole_number,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help=_(
            "rows per request to the node (default {DEFAULT_BATCH_SIZE}; fewer when the node "
            "takes fewer)"
        ).format(DEFAULT_BATCH_SIZE=DEFAULT_BATCH_SIZE),
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help=_("check the sheet and say what would be recorded, without signing or sending"),
    )
    parser.add_argument(
        "--errors",
        type=Path,
        metavar="FILE",
        help=_("if the sheet has bad rows, write all of them to FILE (CSV for Excel)"),
    )
    add_node_argument(parser)
    signing.add_signer_arguments(parser)
    parser.set_defaults(run=run)


@dataclass(frozen=True)
class Plan:
    """A checked sheet: its rows, which are recorded already (index → seq), the author's
    time and day of this run, and the town's configuration and catalogue."""

    name: str
    rows: tuple[SheetRow, ...]
    present: Mapping[int, int]
    at: int
    today: str
    config: TownConfig
    rules: Mapping[str, RemoteRule]
    #: False when the node keeps no resident register: the accounts were not checked.
    accounts_checked: bool = True
    #: The accounts of the rows to record that the register was asked about, and holds.
    accounts_registered: int = 0

    @property
    def new(self) -> list[int]:
        """The indexes of the rows to record, in sheet order."""
        return [index for index in range(len(self.rows)) if index not in self.present]

    @property
    def undated(self) -> int:
        return sum(1 for row in self.rows if row.undated)


@dataclass
class Outcome:
    """What became of the rows so far (row number → seq)."""

    recorded: dict[int, int] = field(default_factory=dict)  # new in this run
    present: dict[int, int] = field(default_factory=dict)  # recorded before this run

    @property
    def done(self) -> int:
        return len(self.recorded) + len(self.present)

    def seqs(self) -> list[int]:
        return sorted((*self.recorded.values(), *self.present.values()))

    def summary(self, name: str, total: int, today: tuple[int, str] | None = None) -> str:
        """The summary line; ``today``: how many rows had no date, and the day they got."""
        parts = [_("{recorded_count} recorded now").format(recorded_count=len(self.recorded))]
        if self.present:
            parts.append(
                _("{present_count} already recorded").format(present_count=len(self.present))
            )
        seqs = self.seqs()
        if not seqs:
            span = ""
        elif seqs[0] == seqs[-1]:
            span = _("; entry {seqs}").format(seqs=seqs[0])
        else:
            span = _("; entries {seqs} to {seqs2}").format(seqs=seqs[0], seqs2=seqs[-1])
        dated = ""
        if today is not None and today[0]:
            rows = _("1 row") if today[0] == 1 else _("{today} rows").format(today=today[0])
            dated = _(" {rows} had no date and got today's, {today}.").format(
                rows=rows, today=i18n.prose_date(today[1])
            )
        return _("Submitted {done} of {total} rows of {name}: {join}{span}.{dated}").format(
            done=self.done, total=total, name=name, join=_(", ").join(parts), span=span, dated=dated
        )


#: Said when a run recorded rows of a sheet that was partly recorded before.
CORRECTED_ADVICE = N_(
    "If you corrected rows of this sheet since it was last submitted, the rows as they "
    "were stay recorded too: reverse each with 'redlist reverse' (many at once with "
    "--csv); 'redlist account ACCOUNT' shows their entry numbers."
)
#: Said when rows had no date.
UNDATED_ADVICE = N_(
    "Rows without a date are known by the day they are sent: submitted again on another "
    "day they would be recorded again, so write the dates into the sheet."
)

#: Said when the node keeps no resident register.
UNCHECKED_NOTE = N_(
    "Accounts were not checked: the node keeps no resident register "
    "('redlist-node residents import' creates it)."
)


def checked_note(plan: Plan) -> str | None:
    """What to say of the account check after the summary: that the register holds every
    account of the rows to record, that the node keeps no register, or nothing (no row
    was left to record, so no account was asked about)."""
    if not plan.accounts_checked:
        return _(UNCHECKED_NOTE)
    if not plan.accounts_registered:
        return None
    return ngettext(
        "Accounts checked against the town's resident register: {count} account, registered.",
        "Accounts checked against the town's resident register: {count} accounts, all registered.",
        plan.accounts_registered,
    ).format(count=plan.accounts_registered)


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise FormatError(
            _("--batch-size must be at least 1, not {batch_size}").format(
                batch_size=args.batch_size
            )
        )
    name = args.csv.name
    data = csvfiles.read_input_file(args.csv, _("awards file"))
    signers = signing.read_signers(args.signer, args.cosigner)
    try:
        rows = csvfiles.parse_awards_csv(data, name)
        with connect(args) as client:
            client.repeatable = True  # ids from what the rows say (advice)
            plan = prepare(client, rows, name, signers)
            if args.dry_run:
                print(preview(client, plan))
                print(csvfiles.read_as(data, name))
                _print_note(checked_note(plan))
                return 0
            outcome = send(client, plan, signers, args.batch_size)
    except SheetError as error:
        if args.errors is not None:
            write_problems(args.errors, error.problems)
            print(
                _("All {problems_count} problems are listed in {errors}.").format(
                    problems_count=len(error.problems), errors=args.errors
                )
            )
        raise
    today = (plan.undated, plan.today)
    print(outcome.summary(name, len(plan.rows), today))
    print(csvfiles.read_as(data, name))
    if outcome.recorded and plan.present:
        print(_(CORRECTED_ADVICE))
    if plan.undated and outcome.recorded:
        print(_(UNDATED_ADVICE))
    _print_note(checked_note(plan))
    return 0


def _print_note(note: str | None) -> None:
    if note is not None:
        print(note)


def prepare(
    client: LedgerClient,
    rows: Sequence[csvfiles.AwardRow],
    name: str,
    signers: Sequence[SigningKey],
) -> Plan:
    """The sheet's rows checked against the log: which are recorded, and that the others
    would all be taken (``SheetError`` listing every bad row; ``ConflictError`` for ids
    the log holds for other entries). Nothing is signed or sent."""
    origin = client.latest().origin
    config = client.get_genesis().config
    at = entries.now_ms()
    first, last = deeddate.date_window(at, deeddate.log_zone(config.tz), config.deed_window_days)
    today = last.isoformat()
    sheet = sheet_rows(rows, origin, today)
    recorded = find_recorded(client, sheet)
    if recorded.conflicting:
        raise conflict_error(name, sheet, recorded)
    rules = client.get_rules()
    new = [sheet[index] for index in range(len(sheet)) if index not in recorded.present]
    keys = capped_keys(new, rules)
    counts = dict(zip(keys, client.month_counts(keys), strict=True))
    town = Town(
        rules, first.isoformat(), today, config.deed_window_days, config.quorum, len(signers)
    )
    checked = check_accounts(client, new, signers[0])
    problems = check_rows(new, town, counts)
    if checked.unknown:
        # One list in row order; within a row, the account first.
        problems = sorted([*account_problems(new, checked.unknown), *problems], key=_row_of)
    if problems:
        raise SheetError(name, problems)
    registered = len({row.deed.account for row in new}) if checked.register else 0
    return Plan(
        name, sheet, recorded.present, at, today, config, rules, checked.register, registered
    )


def check_accounts(
    client: LedgerClient, rows: Sequence[SheetRow], signer: SigningKey
) -> RegisterAnswer:
    """What the town's resident register says of the accounts of ``rows`` (each asked
    once; nothing asked when no row is left to record)."""
    accounts = list(dict.fromkeys(row.deed.account for row in rows))
    if not accounts:
        return RegisterAnswer(register=True, unknown=frozenset())
    return client.check_accounts(accounts, signer)


def _row_of(problem: Problem) -> int:
    return problem.row


def preview(client: LedgerClient, plan: Plan) -> str:
    """What a run would record: rows new and already recorded, points per rule, and the
    residents whose grade would change (from the node's figures for them now)."""
    new = [plan.rows[index] for index in plan.new]
    present = len(plan.present)
    lines = [
        _(
            "Dry run: nothing was signed or sent. Of the {rows_count} rows of {name}, "
            "{new_count} would be recorded now and {present} {value} already recorded."
        ).format(
            rows_count=len(plan.rows),
            name=plan.name,
            new_count=len(new),
            present=present,
            value="is" if present == 1 else "are",
        )
    ]
    if plan.undated:
        lines.append(
            _("{undated} rows have no date and would get today's, {today}.").format(
                undated=plan.undated, today=i18n.prose_date(plan.today)
            )
        )
    per_rule: dict[str, tuple[int, int]] = {}
    gains: dict[str, int] = {}
    for row in new:
        points = plan.rules[row.deed.rule].points * row.deed.qty
        count, total = per_rule.get(row.deed.rule, (0, 0))
        per_rule[row.deed.rule] = (count + 1, total + points)
        gains[row.deed.account] = gains.get(row.deed.account, 0) + points
    if per_rule:
        lines.append(_("Points per rule, of the rows to record:"))
        width = max(len(code) for code in per_rule)
        for code, (count, total) in sorted(per_rule.items()):
            rows_text = ngettext("{count} row", "{count} rows", count).format(count=count)
            title = plan.rules[code].title
            lines.append(f"  {code:<{width}}  {total:+8d}  {rows_text:>10}  {title}")
    changes = []
    for account, gain in sorted(gains.items()):
        score = next(client.account_pages(account, page_size=1)).score
        before, after = plan.config.grade_of(score), plan.config.grade_of(score + gain)
        if before != after:
            changes.append(
                _("  {account}  {before} -> {after}  (score {score} -> {value})").format(
                    account=account, before=before, after=after, score=score, value=score + gain
                )
            )
    if changes:
        lines.append(
            _("Residents whose grade would change ({changes_count}):").format(
                changes_count=len(changes)
            )
        )
        lines.extend(changes)
    elif new:
        lines.append(_("No resident's grade would change."))
    return "\n".join(lines)


def send(client: LedgerClient, plan: Plan, signers: Sequence[SigningKey], most: int) -> Outcome:
    """Sign and send the new rows of ``plan`` in batches; what became of every row."""
    limits = client.get_limits()
    outcome = Outcome()
    rows = plan.rows
    for index, seq in plan.present.items():
        outcome.present[rows[index].row] = seq
    progress = ProgressBar(sys.stderr, _("submitting"), _("rows"))
    progress.update(outcome.done, len(rows))
    # Signed as they go out, lazily: a long sheet starts going out at once. A note's salt
    # is derived from the signer's key and the row's id, so a re-run signs the same bytes.
    salt = entries.derived_salt(signers[0])
    texts: dict[int, Mapping[str, EntryText]] = {}

    def sealed_row(index: int) -> tuple[int, bytes]:
        draft = rows[index].body(plan.at, salt)
        texts[index] = draft.texts
        return index, signing.seal(draft.body, signers)

    sealed = (sealed_row(index) for index in plan.new)
    try:
        size = client.latest().size
        for envelopes in batches(sealed, most, limits):
            size = _submit_batch(client, plan, envelopes, texts, list(envelopes), size, outcome)
            progress.update(outcome.done, len(rows))
    except RedlistError as error:
        progress.close()
        _report_stop(plan, outcome, refused=isinstance(error, NodeError))
        raise
    except KeyboardInterrupt:
        progress.close()
        _report_stop(plan, outcome, refused=False)
        raise  # the command line reports the interruption and exits 130
    progress.close()
    return outcome


def _submit_batch(
    client: LedgerClient,
    plan: Plan,
    envelopes: Mapping[int, bytes],
    texts: Mapping[int, Mapping[str, EntryText]],
    batch: list[int],
    size: int,
    outcome: Outcome,
) -> int:
    """Submit rows ``batch`` (indexes into ``plan.rows``); the log size after it.

    A batch refused with ``ALREADY_EXISTS`` holds rows recorded since the run looked:
    they are looked up again, counted as already recorded, and the rest sent again.
    """
    rows = plan.rows
    while batch:
        try:
            result = client.submit(
                [envelopes[index] for index in batch],
                texts=[texts.get(index, {}) for index in batch],
            )
        except NodeError as error:
            if error.code != "ALREADY_EXISTS":
                raise _located(error, rows, batch) from None
            recorded = find_recorded(client, rows, batch)
            if recorded.conflicting:
                raise conflict_error(plan.name, rows, recorded) from None
            if not recorded.present:
                raise _located(error, rows, batch) from None
            for index, seq in recorded.present.items():
                outcome.present[rows[index].row] = seq
            batch = [index for index in batch if index not in recorded.present]
            continue
        client.prove_recorded(
            {seq: envelopes[index] for index, seq in zip(batch, result.seqs, strict=True)},
            result.checkpoint,
        )
        for index, seq in zip(batch, result.seqs, strict=True):
            (outcome.present if seq < size else outcome.recorded)[rows[index].row] = seq
        return max(size, result.tree_size)
    return size


def _located(error: NodeError, rows: Sequence[SheetRow], batch: list[int]) -> NodeError:
    if error.index is not None and 0 <= error.index < len(batch):
        row = rows[batch[error.index]]
        return error.about(
            _("row {row} ({account}, rule {rule})").format(
                row=row.row, account=row.deed.account, rule=row.deed.rule
            )
        )
    first, last = rows[batch[0]].row, rows[batch[-1]].row
    located = error.about(_("the batch of rows {first} to {last}").format(first=first, last=last))
    if error.check == MAX_BATCH_CHECK and error.limit is not None and len(batch) > 1:
        # The node takes fewer rows per request than it said when the run began (its
        # limit changed): say what to type.
        return NodeError(
            located.check,
            _("{message}; run the same command again with --batch-size {limit}").format(
                message=error.message, limit=error.limit
            ),
            index=located.index,
            code=located.code,
            limit=located.limit,
            retry_after_ms=located.retry_after_ms,
            action=located.action,
        )
    return located


def _report_stop(plan: Plan, outcome: Outcome, *, refused: bool) -> None:
    """What was and was not recorded when a run stops early.

    ``refused``: the node refused a batch, so nothing of it was recorded. Any other
    stop (a lost connection, Ctrl-C) leaves the last batch sent in doubt.
    """
    print(outcome.summary(plan.name, len(plan.rows), (plan.undated, plan.today)))
    print(advice(REFUSED if refused else IN_DOUBT, repeatable=True))
