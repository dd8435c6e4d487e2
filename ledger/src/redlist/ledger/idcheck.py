"""The full check of the entry-id index (``idindex``): one record per entry, where the
log's size puts it, and no id twice.

The index's layout is a function of the log's size and the shape the log was created
with (``idruns.plan``, computed in proportion to the runs it lists), so the check first
compares the stored run list with the plan (its count of runs first: the shape is the
stored list's own, and a forged one may plan a run per entry), then, as the replay
reaches each entry, reads that entry's record in the one place it must be (level 0 or
the run holding its seq): one get an entry, never a set of the ids in memory. At the end
the number of records must be the log's size: with one sound record per entry in its own
place, nothing else can be stored. An id held twice in different places (two entries
with one id, the index consistent with both) is then found by reading level 0 and the
runs side by side in key order (``heapq.merge``: a cursor per run), and reported as the
rule it breaks.
"""

from __future__ import annotations

import heapq

from redlist.ledger.errors import FormatError, IntegrityError
from redlist.ledger.idruns import Run, RunList, plan, run_count
from redlist.ledger.integrity import decode_leaf, fail
from redlist.ledger.store import StoredRecord, StoreReader, TableCounts


class IdIndexCheck:
    """The entry-id index of a log of ``size`` entries, checked against its replay.

    The replay calls :meth:`earlier` when the semantics asks whether an entry's id was
    used before, then :meth:`confirm` when it puts the id; :meth:`finish` after the
    last entry.
    """

    def __init__(self, reader: StoreReader, size: int) -> None:
        self._reader = reader
        self._runs = _checked_run_list(reader, size)
        self._seq = -1
        self._record: StoredRecord | None = None

    def _place(self, seq: int) -> Run | None:
        return None if self._runs is None else self._runs.run_of(seq)

    def _lookup(self, entry_id: bytes) -> int | None:
        """What a lookup of the index gives (-1: a damaged record)."""
        try:
            return self._reader.indexed_seq(entry_id)
        except IntegrityError:
            return -1

    def earlier(self, entry_id: bytes, seq: int) -> int | None:
        """The seq of an earlier entry of the log with the id of entry ``seq``, when the
        index holds one; None when it holds none (``confirm`` says what else is wrong)."""
        run = self._place(seq)
        record = self._reader.id_record(entry_id, None if run is None else run.number)
        self._seq, self._record = seq, record
        if record is not None and record.sound and not record.payload and record.seq == seq:
            return None
        stored = self._lookup(entry_id)
        if stored is None or not 0 <= stored < seq:
            return None
        # The index says the id was used before: either the log repeats it (a rule
        # violation the semantics reports) or the index itself is wrong.
        raw = self._reader.leaf(stored)
        if raw is not None and decode_leaf(stored, raw)[2].id == entry_id:
            return stored
        fail(
            "ids",
            f"the entry-id index sends this entry's id {entry_id.hex()} to entry {stored}",
            seq,
        )

    def confirm(self, entry_id: bytes, seq: int) -> None:
        """Entry ``seq``'s id must be in its place, sealed with its seq."""
        run = self._place(seq)
        record = (
            self._record
            if self._seq == seq
            else self._reader.id_record(entry_id, None if run is None else run.number)
        )
        if record is not None and record.sound and not record.payload and record.seq == seq:
            return
        if record is None:
            stored = self._lookup(entry_id)
            where = "level 0" if run is None else f"run {run.number}"
            if stored is None:
                found = "nothing"
            elif stored == seq:
                found = f"it elsewhere than in {where}, where it belongs"
            elif stored < 0:
                found = f"a damaged record elsewhere than in {where}"
            else:
                found = f"entry {stored}"
        elif not record.sound or record.payload:
            found = "a damaged record"
        else:
            found = f"entry {record.seq}"
        fail(
            "ids",
            f"the entry-id index should lead from this entry's id {entry_id.hex()} to it, "
            f"it holds {found}",
            seq,
        )

    def finish(self, counts: TableCounts, size: int) -> None:
        """No record beyond the log's entries, and no id twice."""
        held = counts.ids + counts.id_runs
        if held != size:
            fail("ids", f"the entry-id index holds {held} ids for a log of {size} entries")
        places: list[int | None] = [None]
        if self._runs is not None:
            places.extend(run.number for run in self._runs.runs)
        previous: tuple[bytes, StoredRecord] | None = None
        for entry_id, record in heapq.merge(
            *(self._reader.stored_ids(place) for place in places), key=_id
        ):
            if previous is not None and previous[0] == entry_id:
                first, second = sorted((previous[1].seq, record.seq))
                fail(
                    "duplicate-id",
                    f"the entry breaks the ledger's rules: entry id {entry_id.hex()} was "
                    f"used at seq {first}",
                    second,
                )
            previous = entry_id, record


def _id(item: tuple[bytes, StoredRecord]) -> bytes:
    return item[0]


def _checked_run_list(reader: StoreReader, size: int) -> RunList | None:
    """The stored run list, which must be sound and what the log's size gives."""
    stored = reader.id_runs_record()
    if stored is None:
        if size:
            fail("ids", "the entry-id index's list of runs is missing from the metadata")
        return None
    if not stored.sound:
        fail("ids", "the entry-id index's list of runs is damaged: its checksum does not match")
    try:
        runs = RunList.from_bytes(stored.payload)
    except FormatError as exc:
        fail("ids", f"the entry-id index's list of runs is malformed ({exc})")
    # The count first: a shape that makes a run per few entries (a forgery: no log is
    # made with one) would plan a list as long as the log.
    expected = run_count(runs.shape, size)
    if len(runs.runs) != expected:
        fail(
            "ids",
            f"the entry-id index's list of runs ({_describe(runs.runs)}) is not what a log "
            f"of {size} entries gives ({expected:,} runs of its shape)",
        )
    planned, changed = plan(runs.shape, size)
    if runs != planned:
        fail(
            "ids",
            f"the entry-id index's list of runs ({_describe(runs.runs)}) is not what a log "
            f"of {size} entries gives ({_describe(planned.runs)})",
        )
    if stored.seq != changed:
        fail(
            "ids",
            f"the entry-id index's list of runs names entry {stored.seq} as its last change; "
            f"the log's size gives entry {changed}",
        )
    return runs


#: Runs a message lists at most (a forged list may hold any number).
_DESCRIBED = 8


def _describe(runs: tuple[Run, ...]) -> str:
    if not runs:
        return "no runs"
    shown = ", ".join(
        f"run {run.number}: {run.count} ids from entry {run.first}" for run in runs[:_DESCRIBED]
    )
    return shown if len(runs) <= _DESCRIBED else f"{shown} and {len(runs) - _DESCRIBED:,} more"


__all__ = ["IdIndexCheck"]
