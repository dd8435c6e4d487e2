"""Reversing many entries at once (``redlist reverse --csv`` and ``--sheet``): find them,
show them, then reverse each exactly once.

The targets come from a file of entry numbers (``csvfiles.parse_reversals_csv``) or
from an award sheet submitted by mistake: its rows' ids are recomputed as ``submit``
derives them (``sheet.sheet_rows``) and looked up (``recorded.find_recorded``), so the
entries found are exactly the ones the sheet recorded. Every target is proved to be in
the log (``LedgerClient.proved_leaves``) and must be an award or a redemption; the
node's account statements say what each is worth and whether it is reversed already.

A reversal's id is derived from the log and its target (``rowids.reversal_id``), so a
second run, or a run that stopped half way, finds the reversals already recorded and
records none twice; a target someone else reversed already is left as it is. Both are
reported as already done.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from redlist.ledger.crypto import SigningKey
from redlist.ledger.entry import Award, Envelope, Leaf, Redeem, decode_body
from redlist.ledger.errors import FormatError
from redlist.ledger.i18n import _
from redlist.proto.client import MAX_PAGE_SIZE, RemoteEntry
from redlist.proto.errors import NodeError, WireError
from redlist.staff import csvfiles, entries, signing
from redlist.staff.batching import batches
from redlist.staff.client import LedgerClient
from redlist.staff.problems import Problem, SheetError
from redlist.staff.recorded import conflict_error, find_recorded
from redlist.staff.rowids import reversal_id
from redlist.staff.sheet import sheet_rows


@dataclass(frozen=True)
class Target:
    """An entry to reverse: its ``seq``, the ``row`` of the file naming it, the reason,
    and what it is (``account``, ``subject`` such as "V01 ×2", ``points`` as the account
    statement lists them, ``date`` of the deed or "" for a redemption); ``reversed_by``
    is the reversal's seq if it is reversed already."""

    seq: int
    row: int
    reason: str
    account: str
    subject: str
    points: int
    date: str
    reversed_by: int | None = None


def from_numbers(
    client: LedgerClient, rows: Sequence[csvfiles.ReversalRow], reason: str | None, name: str
) -> list[Target]:
    """The targets a file of entry numbers names (``SheetError`` listing every bad row)."""
    size = client.latest().size
    problems: list[Problem] = []
    wanted: dict[int, tuple[int, str]] = {}
    for row in rows:
        why = row.reason or reason
        if row.target >= size:
            problems.append(
                Problem(
                    row.row,
                    "seq",
                    _("entry {target} is not in the log ({size} entries)").format(
                        target=row.target, size=size
                    ),
                )
            )
        elif why is None:
            problems.append(
                Problem(
                    row.row, "reason", _("no reason: fill in the reason column or give --reason")
                )
            )
        else:
            wanted[row.target] = (row.row, why)
    targets, more = _targets(client, wanted)
    problems += more
    if problems:
        raise SheetError(name, sorted(problems, key=lambda problem: problem.row))
    return targets


def from_sheet(
    client: LedgerClient, rows: Sequence[csvfiles.AwardRow], reason: str, name: str
) -> tuple[list[Target], list[int]]:
    """The entries an award sheet recorded, matched by what its rows say; and the rows
    of it that are not recorded (nothing to reverse for them)."""
    origin = client.latest().origin
    config = client.get_genesis().config
    today = entries.today(entries.now_ms(), config.tz)
    sheet = sheet_rows(rows, origin, today)
    recorded = find_recorded(client, sheet)
    if recorded.conflicting:
        raise conflict_error(name, sheet, recorded)
    missing = [row.row for index, row in enumerate(sheet) if index not in recorded.present]
    if not recorded.present:
        raise FormatError(
            _(
                "none of the {sheet_count} rows of {name} is recorded, so nothing is reversed "
                "(rows without a date are matched as deeds of today, {today})"
            ).format(sheet_count=len(sheet), name=name, today=today)
        )
    wanted = {seq: (sheet[index].row, reason) for index, seq in recorded.present.items()}
    targets, problems = _targets(client, wanted)
    if problems:
        raise SheetError(name, problems)
    return targets, missing


def _targets(
    client: LedgerClient, wanted: Mapping[int, tuple[int, str]]
) -> tuple[list[Target], list[Problem]]:
    """What each wanted entry is (seq → the row naming it and the reason)."""
    checkpoint = client.latest()
    leaves = client.proved_leaves(wanted, checkpoint)
    problems: list[Problem] = []
    bodies: dict[int, Award | Redeem] = {}
    for seq, (row, _reason) in wanted.items():
        body = decode_body(Envelope.from_bytes(Leaf.from_bytes(leaves[seq]).envelope).body)
        if isinstance(body, Award | Redeem):
            bodies[seq] = body
        else:
            problems.append(
                Problem(
                    row,
                    "seq",
                    _(
                        "entry {seq} is a {kind} entry: only awards and redemptions are reversed"
                    ).format(seq=seq, kind=body.kind),
                )
            )
    listed = _statement_entries(client, bodies)
    targets = []
    for seq, body in sorted(bodies.items()):
        row, reason = wanted[seq]
        entry = listed.get(seq)
        if entry is None:
            raise WireError(
                _("the node's statement of account {account} lacks entry {seq}").format(
                    account=body.account, seq=seq
                )
            )
        if isinstance(body, Award):
            subject = body.rule + (f" ×{body.qty}" if body.qty > 1 else "")
            points, day = entry.points, body.date
        else:
            subject, points, day = "redemption", entry.points, ""
        targets.append(
            Target(seq, row, reason, body.account, subject, points, day, entry.reversed_by)
        )
    return targets, problems


def _statement_entries(
    client: LedgerClient, bodies: Mapping[int, Award | Redeem]
) -> dict[int, RemoteEntry]:
    found: dict[int, RemoteEntry] = {}
    for account in sorted({body.account for body in bodies.values()}):
        for page in client.account_pages(account, page_size=MAX_PAGE_SIZE):
            for entry in page.entries:
                if entry.seq in bodies:
                    found[entry.seq] = entry
    return found


def already_done(client: LedgerClient, origin: str, targets: Sequence[Target]) -> set[int]:
    """The targets reversed already: by a reversal with this tool's id, or by any other."""
    done = {target.seq for target in targets if target.reversed_by is not None}
    ids = {reversal_id(origin, target.seq): target.seq for target in targets}
    done.update(ids[entry_id] for entry_id in client.find_entries(list(ids)))
    return done


def preview(targets: Sequence[Target]) -> list[str]:
    """A table of the targets: entry, account, rule or item, points, deed date."""
    header = (_("entry"), _("account"), _("rule / item"), _("points"), _("deed date"))
    lines = [
        f"  {_pad(header[0], 5, right=True)}  {_pad(header[1], 20)}  {_pad(header[2], 12)}  "
        f"{_pad(header[3], 6, right=True)}  {header[4]}"
    ]
    for target in targets:
        lines.append(
            f"  {target.seq:>5}  {_pad(target.account, 20)}  {_pad(target.subject, 12)}  "
            f"{target.points:>+6}  {target.date}"
        )
    return lines


def _pad(text: str, width: int, *, right: bool = False) -> str:
    """``text`` padded to ``width`` terminal columns (a Chinese character takes two)."""
    columns = sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)
    fill = " " * max(0, width - columns)
    return fill + text if right else text + fill


def reverse_all(
    client: LedgerClient,
    origin: str,
    targets: Sequence[Target],
    signers: Sequence[SigningKey],
    most: int,
) -> dict[int, int]:
    """Reverse every target, in batches; target seq → the seq of its reversal (proved)."""
    at = entries.now_ms()
    by_index = list(targets)
    # The reason travels beside the entry, which holds its commitment (DESIGN 9.2).
    salt = entries.derived_salt(signers[0])
    drafts = [
        entries.reverse(
            entries.Stamp(origin, reversal_id(origin, target.seq), at),
            target.seq,
            target.reason,
            salt=salt,
        )
        for target in by_index
    ]
    sealed = ((index, signing.seal(draft.body, signers)) for index, draft in enumerate(drafts))
    done: dict[int, int] = {}
    for batch in batches(sealed, most, client.get_limits()):
        pending = list(batch)
        while pending:
            try:
                result = client.submit(
                    [batch[index] for index in pending],
                    texts=[drafts[index].texts for index in pending],
                )
            except NodeError as error:
                if error.code != "ALREADY_EXISTS":
                    raise
                ids = {reversal_id(origin, by_index[index].seq): index for index in pending}
                found = client.find_entries(list(ids))
                if not found:
                    raise
                for entry_id, seq in found.items():
                    done[by_index[ids[entry_id]].seq] = seq
                pending = [index for index in pending if by_index[index].seq not in done]
                continue
            client.prove_recorded(
                {seq: batch[index] for index, seq in zip(pending, result.seqs, strict=True)},
                result.checkpoint,
            )
            for index, seq in zip(pending, result.seqs, strict=True):
                done[by_index[index].seq] = seq
            pending = []
    return done
