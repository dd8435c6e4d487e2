"""The entry-id index over LMDB: level 0 in ``ids``, runs in ``id_runs`` (``idruns``).

A record of either table is the sealed ``ids`` record of its id (``seal("ids", id,
seq, b"")``: an empty payload, the entry's seq), so a run is written by copying
level 0's values as they are. The seal binds the value to the id and the seq; which
run a record sits in is checked by the full check (each run holds a known range of
seqs). The run list is a sealed record in ``meta`` (``META_ID_RUNS``), written by the
genesis (with the shape the log keeps) and by every append that makes a run.

Lookups (``IdIndex.seq``) try level 0, then each live run, newest first: one LMDB get
each, since a run's keys (its number, then the id) form a range of their own. A log
holds at most ``fanout - 1`` runs of each tier below the top and one top-tier run per
1,048,576 entries: with the default shape, an id that is absent costs at most 18 gets
in a log of up to 10M entries (14 at exactly 10,000,000: 9 top-tier runs, 4 below,
level 0); one present is found on the way. Runs of tier 1 and above have filters in
memory (``idfilter``, ADR 0056), built by readers from committed runs: a run whose
filter lacks the id is not read, which leaves about 4 gets at 10M. An id is put only
after a lookup found it absent (``points.apply_entry``), so no id is ever in two
places; a merge refuses ids out of order or repeated as damage, and the full check
proves it for the whole index. A record that is lost has no seal to fail, so the
first put of each append counts the records first (``put``; ADR 0046).

Writes, all in the append's own transaction: a batch puts its ids into level 0 (at
most ``level0_max`` ids: some 300 pages dirtied, however long the log). The append
whose id fills level 0 copies it, in key order, into a new run (LMDB's append mode,
dense pages) and empties it; merges read their inputs through one cursor each
(``heapq.merge``: memory bounded by the fan-out), append the output, and delete the
inputs. The largest merge, into a top-tier run, writes about 15,000 pages and deletes
as many; it happens once every 1,048,576 entries.
"""

from __future__ import annotations

import heapq
import threading
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field

import lmdb

from redlist.ledger import idfilter
from redlist.ledger.errors import FormatError, StateDamageError
from redlist.ledger.idfilter import MASK_BITS, MASK_LOW, MASKS, NO_FILTER, RunFilters
from redlist.ledger.idruns import DEFAULT_SHAPE, IndexShape, Merge, Run, RunList
from redlist.ledger.sealmemo import SealedMemo
from redlist.ledger.storelayout import (
    INT_SIZE,
    META_ID_RUNS,
    META_SIZE,
    Tables,
    id_run_key,
    id_run_prefix,
    record_name,
    seal,
    unseal,
)

#: The shape a new log's index takes (a test may make a small one).
shape_for_new_logs: IndexShape = DEFAULT_SHAPE
#: Ids remembered as absent, at most (a long read transaction forgets and starts again).
_ABSENT_MAX = 1 << 16


class AbsentIds:
    """Ids a read snapshot found in none of the runs, with the run list they were looked
    up in (its next run number), shared by the transactions of one open store.

    A caller that asks which of its ids the log holds (``lookups.find_entries``, the
    ``FindEntries`` call, in a read snapshot) often appends the others next, and the
    append looks them up again in its write transaction. Runs change only when a run
    is made, which moves the next run number on, so a write transaction whose run
    list has the number a reader saw holds the same runs: an id that reader found in
    none of them needs only a look in level 0.
    Only read transactions record (they see committed runs only); the memory keeps the
    ids of the newest run list seen, at most ``_ABSENT_MAX`` of them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version = -1
        self._ids: set[bytes] = set()

    def remember(self, entry_id: bytes, version: int) -> None:
        with self._lock:
            if version != self._version:
                if version < self._version:
                    return
                self._version, self._ids = version, set()
            if len(self._ids) >= _ABSENT_MAX:
                self._ids.clear()
            self._ids.add(entry_id)

    def known(self, entry_id: bytes, version: int) -> bool:
        with self._lock:
            return version == self._version and entry_id in self._ids


@dataclass(frozen=True)
class SharedIdMemory:
    """What the transactions of one open store share about its entry-id index: the ids
    readers found in no run, and the runs' filters (``idfilter``)."""

    absent: AbsentIds = field(default_factory=AbsentIds)
    filters: RunFilters = field(default_factory=RunFilters)


class IdIndex:
    """The entry-id index of one transaction (``LmdbState`` makes one, lazily).

    Over a write transaction it is the only writer of ``ids``, ``id_runs`` and the
    run list (its caches rely on that); over a read transaction it looks up only.
    Ids looked up and found absent are remembered until put, so an append's two
    lookups of a new id (the resubmission check, the semantics' duplicate check)
    cost one: a batch's ids, and never more than ``_ABSENT_MAX``.
    """

    def __init__(
        self,
        txn: lmdb.Transaction[bytes],
        tables: Tables,
        shared: SharedIdMemory | None = None,
        *,
        writing: bool = False,
        memo: SealedMemo | None = None,
    ) -> None:
        self._txn = txn
        self._tables = tables
        self._absent_ids = None if shared is None else shared.absent
        self._filters = None if shared is None else shared.filters
        self._writing = writing
        self._memo = memo
        self._runs: RunList | None = None
        #: The runs a lookup reads, newest first: key prefix, filter (``NO_FILTER``
        #: when none) and its length in words; made at the first lookup in the runs.
        self._newest_first: list[tuple[bytes, array[int], int]] | None = None
        self._level0: int | None = None  # the number of ids in level 0, once counted
        self._absent: set[bytes] = set()
        self._cursor: lmdb.Cursor[bytes] | None = None

    # -- the run list -----------------------------------------------------------

    def run_list(self) -> RunList | None:
        """The stored run list; None before the genesis put the first id.

        ``StateDamageError`` when it is damaged, or missing from a log with entries.
        """
        if self._runs is None:
            data = self._txn.get(META_ID_RUNS, db=self._tables.meta)
            if data is None:
                if self._txn.get(META_SIZE, db=self._tables.meta) not in (None, bytes(INT_SIZE)):
                    raise StateDamageError("meta", record_name("meta", META_ID_RUNS), "is missing")
                return None
            opened = unseal("meta", META_ID_RUNS, data)
            if opened is None:
                raise StateDamageError("meta", record_name("meta", META_ID_RUNS))
            try:
                self._set_runs(RunList.from_bytes(opened[0]))
            except FormatError:
                raise StateDamageError("meta", record_name("meta", META_ID_RUNS)) from None
        return self._runs

    def _set_runs(self, runs: RunList) -> None:
        self._runs = runs
        self._newest_first = None

    def _write_runs(self, runs: RunList, seq: int) -> None:
        sealed = seal("meta", META_ID_RUNS, seq, runs.to_bytes())
        self._txn.put(META_ID_RUNS, sealed, db=self._tables.meta)
        self._set_runs(runs)

    # -- lookups --------------------------------------------------------------

    def seq(self, entry_id: bytes) -> int | None:
        """The seq of the entry whose id is ``entry_id``; None when the log has none.

        ``StateDamageError`` when the record found, or the run list, is damaged.
        """
        if entry_id in self._absent:
            return None
        value = self._txn.get(entry_id, db=self._tables.ids)
        if value is None:
            value = self._in_runs(entry_id)
        if value is None:
            if len(self._absent) >= _ABSENT_MAX:
                self._absent.clear()
            self._absent.add(entry_id)
            return None
        return _opened(entry_id, value)

    def _in_runs(self, entry_id: bytes) -> bytes | None:
        """The record of ``entry_id`` in the runs, newest first; None when none holds it."""
        runs = self.run_list()
        if runs is None or not runs.runs:
            return None
        memory = self._absent_ids
        if self._writing and memory is not None and memory.known(entry_id, runs.next_number):
            return None
        newest_first = self._newest_first
        if newest_first is None:
            newest_first = self._newest_first = self._lookup_order(runs)
        key = hash(entry_id)
        mask, word = MASKS[key & MASK_LOW], key >> MASK_BITS
        get = self._run_cursor().get
        for prefix, words, size in newest_first:
            if size and words[word % size] & mask != mask:
                continue  # the run's filter proves the id is not in it
            value = get(prefix + entry_id)
            if value is not None:
                return value
        if not self._writing and memory is not None:
            memory.remember(entry_id, runs.next_number)
        return None

    def build_filters(self) -> None:
        """Do what a read transaction's first lookup in the runs does to the filters
        without looking an id up: forget those of runs merged away and build one a run
        lacks. The writer's lookups use only filters readers built (``_lookup_order``),
        and an append with nothing else to read the ids calls this once a batch."""
        if self._writing or self._newest_first is not None:
            return
        runs = self.run_list()
        if runs is not None and runs.runs:
            self._newest_first = self._lookup_order(runs)

    def _lookup_order(self, runs: RunList) -> list[tuple[bytes, array[int], int]]:
        """The live runs newest first, each with its filter where one is kept; a read
        transaction builds at most one missing filter (``idfilter``)."""
        filters = self._filters
        if filters is not None and not self._writing:
            filters.keep_only({run.number for run in runs.runs}, runs.next_number)
        may_build = filters is not None and not self._writing
        order: list[tuple[bytes, array[int], int]] = []
        for run in reversed(runs.runs):
            words = None
            if filters is not None and run.tier >= idfilter.MIN_TIER:
                words = filters.get(run.number)
                if words is None and may_build and filters.fits(run.count):
                    may_build = False
                    words = self._built_filter(filters, run)
            words = NO_FILTER if words is None else words
            order.append((id_run_prefix(run.number), words, len(words)))
        return order

    def _built_filter(self, filters: RunFilters, run: Run) -> array[int]:
        """Run ``run``'s filter, built from its committed keys and kept in ``filters``."""
        with self._txn.cursor(db=self._tables.id_runs) as cursor:
            words = idfilter.build(_run_ids(cursor, run.number), run.count)
        filters.add(run.number, words)
        return words

    def record(self, entry_id: bytes, run: int | None) -> bytes | None:
        """The stored record of ``entry_id`` in run ``run`` (None: level 0), unchecked."""
        if run is None:
            return self._txn.get(entry_id, db=self._tables.ids)
        return self._txn.get(id_run_key(run, entry_id), db=self._tables.id_runs)

    def records(self, run: int | None) -> Iterator[tuple[bytes, bytes]]:
        """``(id, record)`` of run ``run`` (None: level 0) in key order, unchecked."""
        if run is None:
            yield from self._txn.cursor(db=self._tables.ids)
            return
        with self._txn.cursor(db=self._tables.id_runs) as cursor:
            yield from _run_items(cursor, run)

    def _run_cursor(self) -> lmdb.Cursor[bytes]:
        if self._cursor is None:
            self._cursor = self._txn.cursor(db=self._tables.id_runs)
        return self._cursor

    # -- puts, runs and merges --------------------------------------------------

    def put(self, entry_id: bytes, seq: int) -> None:
        """Index ``entry_id`` as entry ``seq`` (the next entry: ids are put in seq order,
        each after a lookup found it absent); make a run when level 0 is full.

        The first put of a transaction counts the records first: the log's ``seq``
        entries put one id each, so level 0 and the runs must hold exactly as many as
        the run list gives them, else ``StateDamageError``. A lost record has no seal
        to fail, and the lookup that missed it would let an entry's retry in again
        under its id: the count refuses that batch before anything is signed.
        """
        runs = self.run_list()
        if runs is None:
            runs = RunList(shape_for_new_logs)
            self._write_runs(runs, seq)
        if self._level0 is None:
            self._level0 = self._counted(runs, seq)
        sealed = seal("ids", entry_id, seq, b"")
        self._txn.put(entry_id, sealed, db=self._tables.ids)
        if self._memo is not None:
            self._memo.ids.put(entry_id, sealed, (seq,))
        self._absent.discard(entry_id)
        self._level0 += 1
        if self._level0 >= runs.shape.level0_max:
            self._flush(runs, seq)

    def _counted(self, runs: RunList, size: int) -> int:
        """The ids in level 0, once checked with those in the runs against a log of
        ``size`` entries (``put``)."""
        level0 = self._txn.stat(self._tables.ids)["entries"]
        in_runs = self._txn.stat(self._tables.id_runs)["entries"]
        first = runs.level0_first
        if level0 + in_runs != size:
            raise StateDamageError(
                "ids",
                "the index's level 0 and runs",
                f"holds {level0 + in_runs} ids for a log of {size} entries",
            )
        if in_runs != first:
            raise StateDamageError(
                "ids",
                "the index's level 0 and runs",
                f"holds {in_runs} ids in its runs, which its run list gives {first}",
            )
        return level0

    def _flush(self, runs: RunList, seq: int) -> None:
        """Level 0 becomes a run of tier 0, then the merges it completes are made."""
        flush = runs.flush(self._level0 or 0)
        self._append_run(flush.run.number, self._level0_records())
        if self._memo is not None:
            self._memo.ids.clear()  # level 0 is emptied: its records are not read again
        self._txn.drop(self._tables.ids, delete=False)
        self._level0 = 0
        for merge in flush.merges:
            self._merge(merge)
        self._write_runs(flush.after, seq)

    def _level0_records(self) -> Iterator[tuple[bytes, bytes]]:
        # A damaged record is never carried on: each is opened, unless its bytes are
        # those this writer sealed (``sealmemo``), which level 0 mostly holds.
        remembered = None if self._memo is None else self._memo.ids
        with self._txn.cursor(db=self._tables.ids) as cursor:
            for entry_id, value in cursor:
                if remembered is None or remembered.get(entry_id, value) is None:
                    _opened(entry_id, value)
                yield entry_id, value

    def _merge(self, merge: Merge) -> None:
        """Merge ``merge.inputs`` in key order into ``merge.output``, then delete them."""
        cursors = [self._txn.cursor(db=self._tables.id_runs) for _ in merge.inputs]
        try:
            merged = heapq.merge(
                *(
                    self._run_records(cursor, run.number)
                    for cursor, run in zip(cursors, merge.inputs, strict=True)
                )
            )
            self._append_run(merge.output.number, merged)
        finally:
            for cursor in cursors:
                cursor.close()
        for run in merge.inputs:
            self._delete_run(run.number)

    def _run_records(
        self, cursor: lmdb.Cursor[bytes], number: int
    ) -> Iterator[tuple[bytes, bytes]]:
        """``(id, value)`` of run ``number`` in key order, each record checked."""
        for entry_id, value in _run_items(cursor, number):
            _opened(entry_id, value)
            yield entry_id, value

    def _append_run(self, number: int, records: Iterator[tuple[bytes, bytes]]) -> None:
        """Write ``records`` (in increasing id order) as run ``number``, in append mode."""
        previous = b""
        prefix = id_run_prefix(number)

        def keyed() -> Iterator[tuple[bytes, bytes]]:
            nonlocal previous
            for entry_id, value in records:
                if entry_id <= previous:  # a repeated id: impossible unless damaged
                    raise StateDamageError(
                        "ids", record_name("ids", entry_id), "is held twice by the index"
                    )
                previous = entry_id
                yield prefix + entry_id, value

        with self._txn.cursor(db=self._tables.id_runs) as writer:
            consumed, added = writer.putmulti(keyed(), append=True)
        if added != consumed:  # append mode refuses a key below one already stored
            raise StateDamageError(
                "ids", f"run {number}", "is below a record the index already holds"
            )

    def _delete_run(self, number: int) -> None:
        prefix = id_run_prefix(number)
        with self._txn.cursor(db=self._tables.id_runs) as cursor:
            if not cursor.set_range(prefix):
                return
            while cursor.key()[:INT_SIZE] == prefix:
                if not cursor.delete():
                    return


def _run_items(cursor: lmdb.Cursor[bytes], number: int) -> Iterator[tuple[bytes, bytes]]:
    """``(id, value)`` of run ``number`` in key order, read through ``cursor``."""
    prefix = id_run_prefix(number)
    if not cursor.set_range(prefix):
        return
    for key, value in cursor.iternext():
        if key[:INT_SIZE] != prefix:
            return
        yield key[INT_SIZE:], value


def _run_ids(cursor: lmdb.Cursor[bytes], number: int) -> Iterator[bytes]:
    """The ids of run ``number`` in key order, read through ``cursor``."""
    prefix = id_run_prefix(number)
    if not cursor.set_range(prefix):
        return
    for key in cursor.iternext(keys=True, values=False):
        if key[:INT_SIZE] != prefix:
            return
        yield key[INT_SIZE:]


def _opened(entry_id: bytes, value: bytes) -> int:
    """The seq of an index record; ``StateDamageError`` unless its seal matches."""
    opened = unseal("ids", entry_id, value)
    if opened is None or opened[0]:
        raise StateDamageError("ids", record_name("ids", entry_id))
    return opened[1]


__all__ = ["AbsentIds", "IdIndex", "SharedIdMemory", "shape_for_new_logs"]
