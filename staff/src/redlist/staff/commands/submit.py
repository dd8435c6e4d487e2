"""``redlist submit --csv``: bulk awards from a CSV file, safe to run again after a crash.

How a re-run avoids recording a row twice, without keeping any state file:

* Every row's entry id is derived from the file's SHA-256 and the row number
  (``csvfiles.row_entry_id``), so the same file always yields the same ids.
* Every row of one run carries the same author's time ``at``. Before signing, the
  command asks the node whether the file's first data row is already in the log
  (the account's entries, then the leaf itself, compared by entry id). If it is,
  an earlier run recorded the file at least in part, and this run reuses that
  run's ``at``. Ed25519 signatures are deterministic, so with the same keys every
  envelope comes out byte for byte as before, and the node answers a row it
  already holds with its existing entry number instead of recording it again.
  Rows are sent in file order and a run stops at the first refused batch, so the
  first row is in the log whenever any row is.
* Should a row still come back as ``ALREADY_EXISTS`` (the earlier run was signed
  with other keys), its id proves the row was recorded from this very file: it
  is reported as "already submitted earlier" and skipped, and the rest of that
  batch is sent one row at a time.

An edited file is a new file (other ids): delete the rows that were recorded
from it before submitting a corrected version.

A row counts as recorded only once the node has proved it: the checkpoint that
answers its batch verifies with the town log's key, and the row's leaf (fetched
with the others of the batch, one stream per run of consecutive entries) holds
exactly the envelope sent and has an inclusion proof to that checkpoint's root.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from redlist.ledger.entry import Award
from redlist.ledger.errors import FormatError, RedlistError
from redlist.ledger.progress import ProgressBar
from redlist.proto.client import MAX_PAGE_SIZE
from redlist.proto.contract import ENVELOPE_FRAMING_BYTES, MAX_BATCH_CHECK, Limits
from redlist.proto.errors import NodeError
from redlist.staff import csvfiles, entries, signing, values
from redlist.staff.client import LedgerClient, add_node_argument, connect

DESCRIPTION = """\
Record many awards from a CSV file. The first row names the columns:
  account,rule,qty,date,note
qty, date and note may be left empty or left out: qty 1; date (the day of the
deed, YYYY-MM-DD, also 2026/5/3; the column may be headed 日期) today in the
town's time zone, and the summary says how many rows got it; no note. Account
ids are case-folded (DGC-0019 is dgc-0019). UTF-8, with or without the byte
order mark Excel writes ("CSV UTF-8").

Every row is checked first; if any is unusable, the rows are listed by their
number as a spreadsheet shows it (the header is row 1) and nothing is sent.
The rows then go to the node in batches (--batch-size, and never more than the
node takes in one request). A progress bar is shown on a terminal; a summary
line at the end in any case.

Safe to run again: if the command is interrupted, or the node refuses a row
(for example an unknown rule), run it again with the same, unchanged file once
the problem is solved: rows already recorded are recognised, never recorded
twice. An edited file counts as new; delete the rows already recorded from it
first (the message says which)."""

PURPOSE = "awards"
DEFAULT_BATCH_SIZE = 500


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "submit",
        help="record many awards from a CSV file",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--csv",
        required=True,
        type=Path,
        metavar="FILE",
        help="columns account,rule,qty,date,note",
    )
    parser.add_argument(
        "--batch-size",
        type=values.whole_number,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help=f"rows per request to the node (default {DEFAULT_BATCH_SIZE}; fewer when the "
        "node takes fewer)",
    )
    add_node_argument(parser)
    signing.add_signer_arguments(parser)
    parser.set_defaults(run=run)


@dataclass
class Outcome:
    """What became of the rows so far."""

    recorded: dict[int, int] = field(default_factory=dict)  # row -> seq, new in this run
    present: dict[int, int] = field(default_factory=dict)  # row -> seq, recorded earlier
    conflicting: list[int] = field(default_factory=list)  # rows recorded earlier, other bytes

    @property
    def done(self) -> int:
        return len(self.recorded) + len(self.present) + len(self.conflicting)

    def seqs(self) -> list[int]:
        return sorted((*self.recorded.values(), *self.present.values()))

    def summary(self, name: str, total: int, today: tuple[int, str] | None = None) -> str:
        """The summary line; ``today``: how many rows had no date, and the day they got."""
        parts = [f"{len(self.recorded)} recorded now"]
        if self.present:
            parts.append(f"{len(self.present)} already recorded by an earlier run")
        if self.conflicting:
            parts.append(f"{len(self.conflicting)} already submitted earlier with other keys")
        seqs = self.seqs()
        if not seqs:
            span = ""
        elif seqs[0] == seqs[-1]:
            span = f"; entry {seqs[0]}"
        else:
            span = f"; entries {seqs[0]} to {seqs[-1]}"
        dated = ""
        if today is not None and today[0]:
            rows = "1 row" if today[0] == 1 else f"{today[0]} rows"
            dated = f" {rows} had no date and got today's, {today[1]}."
        return f"Submitted {self.done} of {total} rows of {name}: {', '.join(parts)}{span}.{dated}"


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise FormatError(f"--batch-size must be at least 1, not {args.batch_size}")
    name = args.csv.name
    data = csvfiles.read_input_file(args.csv, "awards file")
    rows = csvfiles.parse_awards_csv(data, name)
    signers = signing.read_signers(args.signer, args.cosigner)
    digest = csvfiles.file_digest(data)
    ids = [csvfiles.row_entry_id(digest, PURPOSE, row.row) for row in rows]
    with connect(args) as client:
        head = client.latest()
        limits = client.get_limits()
        earlier_at = earlier_run_time(client, head.origin, rows[0], ids[0])
        at = entries.now_ms() if earlier_at is None else earlier_at
        tz = client.get_genesis().config.tz
        undated = sum(1 for row in rows if row.date is None)
        today = (undated, entries.today(at, tz))
        outcome = Outcome()
        progress = ProgressBar(sys.stderr, "submitting", "rows")
        progress.update(0, len(rows))
        # Signed as they go out, lazily: a long file starts going out at once, and
        # signing is deterministic, so a re-run yields the same bytes anyway.
        sealed = (
            (
                index,
                signing.seal(
                    entries.dated(row.body(entries.Stamp(head.origin, ids[index], at)), tz),
                    signers,
                ),
            )
            for index, row in enumerate(rows)
        )
        try:
            size = head.size
            for envelopes in batches(sealed, args.batch_size, limits):
                size = _submit_batch(client, rows, envelopes, list(envelopes), size, outcome)
                progress.update(outcome.done, len(rows))
        except RedlistError as error:
            progress.close()
            _report_stop(rows, outcome, name, refused=isinstance(error, NodeError), today=today)
            raise
        except KeyboardInterrupt:
            progress.close()
            _report_stop(rows, outcome, name, refused=False, today=today)
            raise  # the command line reports the interruption and exits 130
        progress.close()
    if outcome.conflicting:
        print(
            f"{_rows_phrase(outcome.conflicting)} already submitted earlier (signed by other "
            "keys or at another time); skipped."
        )
    print(outcome.summary(name, len(rows), today))
    return 0


def earlier_run_time(
    client: LedgerClient, origin: str, first: csvfiles.AwardRow, entry_id: bytes
) -> int | None:
    """The author's time of an earlier run of the same file, if the node holds its first row.

    Candidates are the account's awards that match the row; each is fetched and
    compared by entry id, so a look-alike award from elsewhere never matches.
    """
    wanted = ("award", first.rule, first.qty, first.note or "")
    candidates = [
        entry.seq
        for page in client.account_pages(first.account, page_size=MAX_PAGE_SIZE)
        for entry in page.entries
        if (entry.kind, entry.rule, entry.qty, entry.note) == wanted
    ]
    for seq in reversed(candidates):
        body = client.get_body(seq)
        if isinstance(body, Award) and body.id == entry_id and body.log == origin:
            return body.at
    return None


def batches(
    envelopes: Iterable[tuple[int, bytes]], most: int, limits: Limits
) -> Iterator[dict[int, bytes]]:
    """``envelopes`` (row index, bytes) in consecutive batches, in order, each one request
    the node takes: at most ``most`` envelopes and within the node's ``limits``.

    An envelope too large on its own still goes out alone: the node's refusal names it.
    """
    most = max(1, min(most, limits.max_batch))
    batch: dict[int, bytes] = {}
    total = 0
    for index, envelope in envelopes:
        cost = len(envelope) + ENVELOPE_FRAMING_BYTES
        if batch and (len(batch) >= most or total + cost > limits.max_message_bytes):
            yield batch
            batch, total = {}, 0
        batch[index] = envelope
        total += cost
    if batch:
        yield batch


def _submit_batch(
    client: LedgerClient,
    rows: tuple[csvfiles.AwardRow, ...],
    envelopes: Mapping[int, bytes],
    batch: list[int],
    size: int,
    outcome: Outcome,
) -> int:
    """Submit rows ``batch`` (indexes into ``rows``); the log size after it.

    ``size`` is the log's size before the batch: a returned seq below it belongs
    to a row an earlier run recorded.
    """
    try:
        result = client.submit([envelopes[index] for index in batch])
    except NodeError as error:
        if error.code != "ALREADY_EXISTS":
            raise _located(error, rows, batch) from None
        # Some row was recorded earlier with other bytes; find which, one by one.
        for index in batch:
            size = _submit_batch_of_one(client, rows, envelopes, index, size, outcome)
        return size
    client.prove_recorded(
        {seq: envelopes[index] for index, seq in zip(batch, result.seqs, strict=True)},
        result.checkpoint,
    )
    for index, seq in zip(batch, result.seqs, strict=True):
        (outcome.present if seq < size else outcome.recorded)[rows[index].row] = seq
    return max(size, result.tree_size)


def _submit_batch_of_one(
    client: LedgerClient,
    rows: tuple[csvfiles.AwardRow, ...],
    envelopes: Mapping[int, bytes],
    index: int,
    size: int,
    outcome: Outcome,
) -> int:
    try:
        result = client.submit([envelopes[index]])
    except NodeError as error:
        if error.code != "ALREADY_EXISTS":
            raise _located(error, rows, [index]) from None
        outcome.conflicting.append(rows[index].row)
        return size
    seq = result.seqs[0]
    client.prove_recorded({seq: envelopes[index]}, result.checkpoint)
    (outcome.present if seq < size else outcome.recorded)[rows[index].row] = seq
    return max(size, result.tree_size)


def _rows_phrase(rows: list[int]) -> str:
    """``[2, 3, 4, 7]`` as "Rows 2 to 4 and 7 were"."""
    spans: list[str] = []
    start = previous = rows[0]
    for row in [*rows[1:], None]:
        if row is not None and row == previous + 1:
            previous = row
            continue
        spans.append(str(start) if start == previous else f"{start} to {previous}")
        if row is not None:
            start = previous = row
    if len(rows) == 1:
        return f"Row {rows[0]} was"
    listed = spans[0] if len(spans) == 1 else ", ".join(spans[:-1]) + " and " + spans[-1]
    return f"Rows {listed} were"


def _located(error: NodeError, rows: tuple[csvfiles.AwardRow, ...], batch: list[int]) -> NodeError:
    if error.index is not None and 0 <= error.index < len(batch):
        row = rows[batch[error.index]]
        return error.about(f"row {row.row} ({row.account}, rule {row.rule})")
    first, last = rows[batch[0]].row, rows[batch[-1]].row
    located = error.about(f"the batch of rows {first} to {last}")
    if error.check == MAX_BATCH_CHECK and error.limit is not None and len(batch) > 1:
        # The node takes fewer rows per request than it said when the run began (its
        # limit changed): say what to type.
        return NodeError(
            located.check,
            f"{error.message}; run the same command again with --batch-size {error.limit}",
            index=located.index,
            code=located.code,
            limit=located.limit,
            retry_after_ms=located.retry_after_ms,
            action=located.action,
        )
    return located


def _report_stop(
    rows: tuple[csvfiles.AwardRow, ...],
    outcome: Outcome,
    name: str,
    *,
    refused: bool,
    today: tuple[int, str] | None = None,
) -> None:
    """What was and was not recorded when a run stops early.

    ``refused``: the node refused a batch, so nothing after it was recorded. Any
    other stop (a lost connection, Ctrl-C) leaves the last batch sent in doubt.
    """
    print(outcome.summary(name, len(rows), today))
    done = sorted((*outcome.recorded, *outcome.present, *outcome.conflicting))
    if not done:
        recorded, span, after = "No row is recorded", "", ""
    elif done[0] == done[-1]:
        recorded, span, after = f"Row {done[0]} is recorded", f"row {done[0]}", "the rows after it"
    else:
        recorded = f"Rows {done[0]} to {done[-1]} are recorded"
        span, after = f"rows {done[0]} to {done[-1]}", "the rows after them"
    if refused:
        if done:
            state = f"{recorded}; {after} were not."
            edit = f" If you edit the file, first delete {span} from it."
        else:
            state, edit = f"{recorded}.", ""
        print(
            f"{state} Once the problem is solved, run the same command with the unchanged "
            f"file: rows already recorded are recognised.{edit}"
        )
    else:
        print(
            f"{recorded}; the rows sent last may or may not be. Run the same command again "
            "with the unchanged file (once the node answers): rows already recorded are "
            "recognised, never recorded twice."
        )
