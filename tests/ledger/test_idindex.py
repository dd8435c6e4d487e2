"""The entry-id index (``idindex``, ``idruns``): lookups exact after every put, every
run, every merge and every reopening, over real LMDB.

Small shapes (level 0 of a few ids, fan-out 2 to 4) make runs and merges of every
tier happen within a few dozen ids; the production shape is the default and is
checked by its numbers (the worst-case lookups at 10M entries).
"""

from __future__ import annotations

import os
import tracemalloc
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.builders import SMALL_ID_INDEX, Town, create_log, id_index_shape
from tests.rawstore import id_run_key, raw_tables, seal

from redlist.ledger import idindex
from redlist.ledger.errors import FormatError, StateDamageError, StoreError
from redlist.ledger.idfilter import NO_FILTER
from redlist.ledger.idruns import DEFAULT_SHAPE, IndexShape, Run, RunList, plan, run_count
from redlist.ledger.store import LmdbStore

#: Ids, with those that sort first and last in a run (and right after or before them)
#: drawn often: a run's key is its number then the id, so they sit at its boundaries.
EXTREME_IDS = (bytes(16), bytes(15) + b"\x01", b"\xff" * 15 + b"\xfe", b"\xff" * 16)
ID = st.one_of(st.sampled_from(EXTREME_IDS), st.binary(min_size=16, max_size=16))
SHAPES = st.builds(
    IndexShape,
    level0_max=st.integers(1, 5),
    fanout=st.integers(2, 4),
    top_tier=st.integers(0, 3),
)


@contextmanager
def small_shape(shape: IndexShape) -> Iterator[None]:
    """New logs made in the block get ``shape`` (the store keeps it afterwards)."""
    with mock.patch.object(idindex, "shape_for_new_logs", shape):
        yield


def stored_layout(store: LmdbStore) -> tuple[RunList | None, int, int]:
    """The stored run list and the number of records in level 0 and in the runs."""
    with store.read() as reader:
        record = reader.id_runs_record()
        counts = reader.counts()
    runs = None if record is None else RunList.from_bytes(record.payload)
    return runs, counts.ids, counts.id_runs


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    shape=SHAPES,
    ids=st.lists(ID, unique=True, min_size=1, max_size=90),
    cuts=st.lists(st.integers(1, 12), min_size=1, max_size=30),
    reopen=st.lists(st.booleans(), min_size=1, max_size=30),
    absent=st.lists(ID, max_size=8),
)
def test_every_id_is_found_with_its_seq_and_no_other(
    tmp_path_factory: pytest.TempPathFactory,
    shape: IndexShape,
    ids: list[bytes],
    cuts: list[int],
    reopen: list[bool],
    absent: list[bytes],
) -> None:
    path = tmp_path_factory.mktemp("index") / "ledger.lmdb"
    absent = [entry_id for entry_id in absent if entry_id not in set(ids)]
    store = LmdbStore.open(path, create=True, map_size=1 << 26)
    put: list[bytes] = []
    batch = 0
    try:
        with small_shape(shape):
            while len(put) < len(ids):
                size = cuts[batch % len(cuts)]
                with store.write() as writer:
                    state = writer.state()
                    for entry_id in ids[len(put) : len(put) + size]:
                        assert state.entry_seq(entry_id) is None
                        state.put_entry_id(entry_id, len(put))
                        put.append(entry_id)
                        # Inside the transaction, right after any run or merge it made.
                        for seq, earlier in enumerate(put):
                            assert state.entry_seq(earlier) == seq
                        for other in absent:
                            assert state.entry_seq(other) is None
                if reopen[batch % len(reopen)]:
                    store.close()
                    store = LmdbStore.open(path)
                batch += 1
                with store.read() as reader:
                    for seq, entry_id in enumerate(put):
                        assert reader.indexed_seq(entry_id) == seq
                    for other in absent:
                        assert reader.indexed_seq(other) is None
                runs, level0, in_runs = stored_layout(store)
                assert runs == plan(shape, len(put))[0]
                assert level0 == len(put) - runs.level0_first
                assert in_runs == runs.level0_first
    finally:
        store.close()


def test_a_log_keeps_the_shape_it_was_made_with(tmp_path: Path) -> None:
    """Opened later under another default, a store still grows by its own shape."""
    path = tmp_path / "ledger.lmdb"
    store = LmdbStore.open(path, create=True, map_size=1 << 24)
    ids = [bytes([n]) * 16 for n in range(1, 20)]
    try:
        with small_shape(IndexShape(3, 2, 2)), store.write() as writer:
            for seq, entry_id in enumerate(ids[:5]):
                writer.state().put_entry_id(entry_id, seq)
        with store.write() as writer:  # the default shape now: level 0 of 16,384
            for seq, entry_id in enumerate(ids[5:], start=5):
                writer.state().put_entry_id(entry_id, seq)
        runs, level0, _ = stored_layout(store)
        assert runs == plan(IndexShape(3, 2, 2), 19)[0]
        assert [run.count for run in runs.runs] == [12, 6]
        assert level0 == 1
    finally:
        store.close()


def test_the_production_shape_and_its_worst_case_at_10m() -> None:
    """Level 0 of 16,384 ids, fan-out 4, top runs of 2^20 ids: at most 18 gets for an
    absent id up to 10M entries (14 at exactly 10,000,000), the docstring's figures."""
    assert IndexShape(16_384, 4, 3) == DEFAULT_SHAPE
    assert DEFAULT_SHAPE.run_size(DEFAULT_SHAPE.top_tier) == 1 << 20
    runs = RunList(DEFAULT_SHAPE)
    worst = 1
    for _ in range(10_000_000 // DEFAULT_SHAPE.level0_max):
        flush = runs.flush(DEFAULT_SHAPE.level0_max)
        assert all(len(merge.inputs) == 4 for merge in flush.merges)
        assert all(merge.output.count <= 1 << 20 for merge in flush.merges)
        runs = flush.after
        worst = max(worst, 1 + len(runs.runs))
    assert worst == 18
    assert 1 + len(plan(DEFAULT_SHAPE, 10_000_000)[0].runs) == 14


def replayed(shape: IndexShape, size: int) -> tuple[RunList, int]:
    """The run list of a log of ``size`` entries as its appends make it: level 0
    flushed once per ``level0_max`` entries (what ``plan`` computes directly)."""
    runs, changed = RunList(shape), 0
    for flush in range(size // shape.level0_max):
        runs, changed = runs.flush(shape.level0_max).after, (flush + 1) * shape.level0_max - 1
    return runs, changed


@settings(max_examples=300, deadline=None)
@given(
    shape=st.builds(
        IndexShape,
        level0_max=st.integers(1, 6),
        fanout=st.integers(2, 5),
        top_tier=st.integers(0, 4),
    ),
    size=st.integers(0, 2_000),
)
def test_the_plan_is_what_the_appends_make(shape: IndexShape, size: int) -> None:
    planned = plan(shape, size)
    assert planned == replayed(shape, size)
    assert run_count(shape, size) == len(planned[0].runs)


@pytest.mark.timeout(30)
def test_the_plan_costs_its_runs_not_the_log_length() -> None:
    """A log of 10M entries with a level 0 of one id: ten million flushes to replay, a
    few dozen runs to compute; a shape that never merges plans one run per entry, which
    its count tells without listing them."""
    shape = IndexShape(1, 4, 10)  # top-tier runs of 4^10 = 2^20 ids
    runs, changed = plan(shape, 10_000_000)
    assert [run.count for run in runs.runs[:10]] == [1 << 20] * 9 + [1 << 18]
    assert len(runs.runs) == run_count(shape, 10_000_000) < 40
    assert (runs.level0_first, changed) == (10_000_000, 9_999_999)
    assert run_count(IndexShape(1, 2, 0), 10**12) == 10**12


def test_the_run_list_codec_refuses_what_no_append_makes() -> None:
    runs = plan(IndexShape(2, 2, 2), 14)[0]
    assert RunList.from_bytes(runs.to_bytes()) == runs
    assert [(run.tier, run.first, run.count) for run in runs.runs] == [
        (2, 0, 8),
        (1, 8, 4),
        (0, 12, 2),
    ]
    data = runs.to_bytes()
    bad = {
        "short": data[:-1],
        "a gap": RunList(runs.shape, 9, (Run(5, 2, 0, 8), Run(7, 1, 9, 4))).to_bytes(),
        "out of order": RunList(runs.shape, 9, (Run(7, 2, 0, 8), Run(5, 1, 8, 4))).to_bytes(),
        "a tier above the top": RunList(runs.shape, 9, (Run(5, 3, 0, 8),)).to_bytes(),
        "a number taken": RunList(runs.shape, 5, (Run(5, 2, 0, 8),)).to_bytes(),
        "no fan-out": b"\x00\x00\x00\x02\x01\x02" + bytes(8),
    }
    for name, value in bad.items():
        with pytest.raises(FormatError):
            RunList.from_bytes(value)
        assert name


def test_a_repeated_id_is_damage_when_runs_merge(tmp_path: Path) -> None:
    """Two runs holding one id (impossible by construction): the merge refuses it."""
    path = tmp_path / "ledger.lmdb"
    store = LmdbStore.open(path, create=True, map_size=1 << 24)
    with small_shape(IndexShape(2, 2, 2)), store.write() as writer:
        state = writer.state()
        for seq in range(2):  # run 0 holds ids 1 and 2
            state.put_entry_id(bytes([seq + 1]) * 16, seq)
    store.close()
    with raw_tables(path) as tables:  # entry 2's id, put behind the index's back
        tables.put("ids", b"\x01" * 16, seal("ids", b"\x01" * 16, 2))
    store = LmdbStore.open(path)
    try:
        with pytest.raises(StateDamageError, match="held twice"), store.write() as writer:
            writer.state().put_entry_id(b"\x03" * 16, 3)  # level 0 full: run 1, then a merge
        with pytest.raises(StateDamageError):
            store.check_writable()
    finally:
        store.close()


def test_a_damaged_record_in_a_run_stops_the_writes(tmp_path: Path) -> None:
    path = tmp_path / "ledger.lmdb"
    store = LmdbStore.open(path, create=True, map_size=1 << 24)
    with small_shape(IndexShape(2, 4, 2)), store.write() as writer:
        for seq in range(3):
            writer.state().put_entry_id(bytes([seq + 1]) * 16, seq)
    store.close()
    with raw_tables(path) as tables:
        key = id_run_key(0, b"\x01" * 16)
        value = bytearray(tables.get("id_runs", key) or b"")
        value[3] ^= 0x10
        tables.put("id_runs", key, bytes(value))
    store = LmdbStore.open(path)
    try:
        with store.read() as reader:
            assert reader.indexed_seq(b"\x02" * 16) == 1
        with (
            pytest.raises(StateDamageError, match=r"ids record of entry id 0101"),
            store.write() as writer,
        ):
            writer.state().entry_seq(b"\x01" * 16)
        with pytest.raises(StateDamageError):
            store.check_writable()
    finally:
        store.close()


def test_ids_found_absent_are_remembered_within_bounds(tmp_path: Path) -> None:
    """An append looks a new id up twice; the second costs no get. The memory of absent
    ids is bounded, and forgets nothing that was put."""
    store = LmdbStore.open(tmp_path / "ledger.lmdb", create=True, map_size=1 << 24)
    try:
        with mock.patch.object(idindex, "_ABSENT_MAX", 3), store.write() as writer:
            index = writer.state().id_index()
            ids = [bytes([n]) * 16 for n in range(1, 8)]
            for entry_id in ids:
                assert index.seq(entry_id) is None
                assert len(index._absent) <= 3
            assert ids[-1] in index._absent
            index.put(ids[-1], 0)
            assert ids[-1] not in index._absent
            assert index.seq(ids[-1]) == 0
            assert [index.seq(entry_id) for entry_id in ids[:-1]] == [None] * 6
    finally:
        store.close()


def test_a_write_trusts_what_a_reader_found_absent_only_in_the_same_runs(
    tmp_path: Path,
) -> None:
    """A read snapshot's "in no run" spares the append's write transaction the runs, as
    long as its run list is the one the reader saw; a new run voids it."""
    store = LmdbStore.open(tmp_path / "ledger.lmdb", create=True, map_size=1 << 24)
    ids = [bytes([n]) * 16 for n in range(1, 8)]
    try:
        with small_shape(IndexShape(2, 4, 2)), store.write() as writer:
            for seq, entry_id in enumerate(ids[:3]):  # run 0 holds ids 1, 2; level 0 id 3
                writer.state().put_entry_id(entry_id, seq)
        with store.read() as reader:
            assert reader.indexed_seq(ids[5]) is None  # remembered: in no run of this list
            assert reader.indexed_seq(ids[0]) == 0
        with store.write() as writer:
            index = writer.state().id_index()
            assert index.run_list() is not None
            index._newest_first = [(b"\xff" * 8, NO_FILTER, 0)]  # a run that does not exist
            assert index.seq(ids[5]) is None  # not looked for in the runs: none is read
            assert index.seq(ids[0]) is None  # never found absent: read in the (bogus) run
            index._newest_first = [(bytes(8), NO_FILTER, 0)]
            index._absent.clear()
            assert index.seq(ids[0]) == 0
            index.put(ids[5], 3)  # level 0 full: run 1; the run list changes
            index._absent.clear()
            assert index.seq(ids[5]) == 3  # found in the new run, the memory void
    finally:
        store.close()


def test_a_full_map_at_any_point_of_a_run_and_its_merge_leaves_the_index_as_it_was(
    tmp_path: Path,
) -> None:
    """The append whose id fills level 0 writes a run, merges it with the one before
    and deletes both: the most pages any append asks for. Given one page more of map
    at a time, it fails at every point of that (a full map: the disk is full, in
    effect) and each time leaves the index as the last commit left it, the store still
    writable; once it fits, the index is the one the log's size gives."""
    shape = IndexShape(level0_max=600, fanout=2, top_tier=2)
    ids = [bytes(16), b"\xff" * 16] + [n.to_bytes(2, "big") * 8 for n in range(1, 1199)]
    path = tmp_path / "ledger.lmdb"
    store = LmdbStore.open(path, create=True, map_size=1 << 26)
    with small_shape(shape), store.write() as writer:
        state = writer.state()
        for seq, entry_id in enumerate(ids[:-1]):  # run 0, and level 0 short of one id
            state.put_entry_id(entry_id, seq)
    before = stored_layout(store)
    assert (len(before[0].runs) if before[0] else 0, before[1]) == (1, 599)
    store.close()
    page = os.sysconf("SC_PAGE_SIZE")  # LMDB's page
    used = (path / "data.mdb").stat().st_size // page
    refused = 0
    for extra in range(400):
        store = LmdbStore.open(path, map_size=(used + extra) * page)
        try:
            try:
                with store.write() as writer:
                    writer.state().put_entry_id(ids[-1], len(ids) - 1)
            except StoreError as full:
                assert "storage is full" in str(full)
                assert stored_layout(store) == before
                store.check_writable()
                refused += 1
                continue
            runs, level0, in_runs = stored_layout(store)
            assert runs == plan(shape, len(ids))[0] and (level0, in_runs) == (0, 1200)
            with store.read() as reader:
                for seq, entry_id in enumerate(ids):
                    assert reader.indexed_seq(entry_id) == seq
            break
        finally:
            store.close()
    else:
        pytest.fail("the append never fitted")
    assert refused > 20  # it failed in the run's writes, the merge's and the deletes'


def test_a_merge_streams_its_runs(tmp_path: Path) -> None:
    """The put that fills level 0 writes it as a run and merges four runs into one
    (16,384 ids here): read through a cursor per run and appended as they come, never
    held, so the Python memory it takes is a small fraction of what the ids would (some
    4 MB as objects)."""
    shape = IndexShape(level0_max=4096, fanout=4, top_tier=1)
    ids = [n.to_bytes(4, "big") * 4 for n in range(4 * 4096)]
    store = LmdbStore.open(tmp_path / "ledger.lmdb", create=True, map_size=1 << 28)
    try:
        with small_shape(shape), store.write() as writer:
            state = writer.state()
            for seq, entry_id in enumerate(ids[:-1]):
                state.put_entry_id(entry_id, seq)
        with store.write() as writer:
            state = writer.state()
            state.entry_seq(ids[-1])  # the run list and the counts read before measuring
            tracemalloc.start()
            try:
                state.put_entry_id(ids[-1], len(ids) - 1)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
        runs, level0, in_runs = stored_layout(store)
        assert runs is not None and [run.count for run in runs.runs] == [len(ids)]
        assert (level0, in_runs) == (0, len(ids))
        assert peak < 256 * 1024, peak
    finally:
        store.close()


def test_readers_build_the_filters_of_committed_runs_one_a_transaction(tmp_path: Path) -> None:
    """Runs of tier 1 and above get a filter, built by a read transaction from the
    committed run (at most one a transaction), never by the writer; a filter that
    lacks an id keeps its run from being read (ADR 0056)."""
    store = LmdbStore.open(tmp_path / "ledger.lmdb", create=True, map_size=1 << 24)
    filters = store._shared_ids.filters
    ids = [bytes([n]) * 16 for n in range(1, 20)]
    try:
        with small_shape(IndexShape(2, 2, 3)), store.write() as writer:
            for seq, entry_id in enumerate(ids[:15]):
                writer.state().put_entry_id(entry_id, seq)
                writer.state().entry_seq(b"\xee" * 16)  # the writer looks up: builds none
        assert filters.memory == 0
        runs, _, _ = stored_layout(store)
        assert [(run.tier, run.count) for run in runs.runs] == [(2, 8), (1, 4), (0, 2)]
        built = []
        for _ in range(3):
            with store.read() as reader:
                assert reader.indexed_seq(b"\xee" * 16) is None
            built.append([filters.get(run.number) is not None for run in runs.runs])
        assert built == [[False, True, False], [True, True, False], [True, True, False]]
        with store.read() as reader:
            assert [reader.indexed_seq(entry_id) for entry_id in ids[:15]] == list(range(15))
        # A filter with no bit set says no id of its run can be there: the run is not read.
        oldest = runs.runs[0].number
        filters._filters[oldest] = array("Q", bytes(len(filters._filters[oldest]) * 8))
        with store.read() as reader:
            assert [reader.indexed_seq(entry_id) for entry_id in ids[:8]] == [None] * 8
            assert reader.indexed_seq(ids[8]) == 8
    finally:
        store.close()


def test_a_filter_is_never_built_from_a_run_that_was_not_committed(tmp_path: Path) -> None:
    """A write that made a run and failed leaves no filter: the run number comes back
    with other ids in the next write, and each of them is found."""
    store = LmdbStore.open(tmp_path / "ledger.lmdb", create=True, map_size=1 << 24)
    filters = store._shared_ids.filters
    try:
        with small_shape(IndexShape(2, 2, 3)), store.write() as writer:
            for seq in range(2):
                writer.state().put_entry_id(bytes([seq + 1]) * 16, seq)
        with pytest.raises(RuntimeError), store.write() as writer:
            for seq in range(2, 4):  # run 1, merged with run 0 into run 2 (tier 1)
                writer.state().put_entry_id(bytes([seq + 1]) * 16, seq)
            with store.read() as reader:  # a reader meanwhile sees the committed runs
                assert reader.indexed_seq(b"\x03" * 16) is None
            assert writer.state().entry_seq(b"\xee" * 16) is None  # reads run 2
            raise RuntimeError("the write fails")
        assert filters.memory == 0
        with store.write() as writer:
            for seq in range(2, 4):
                writer.state().put_entry_id(bytes([seq + 0x41]) * 16, seq)
        with store.read() as reader:
            assert reader.indexed_seq(b"\x03" * 16) is None
            assert reader.indexed_seq(b"\x43" * 16) == 2
            assert reader.indexed_seq(b"\x01" * 16) == 0
        assert filters.memory > 0
        with store.read() as reader:
            assert [reader.indexed_seq(bytes([n]) * 16) for n in (1, 2, 0x43, 0x44)] == [
                0,
                1,
                2,
                3,
            ]
    finally:
        store.close()


def test_appends_alone_build_the_filters_their_lookups_use(tmp_path: Path) -> None:
    """Nothing but appends (no ``FindEntries``, no reader looking an id up): each batch
    still has a read snapshot build a filter a run lacks, so the writer's lookups skip
    the runs that cannot hold the id (ADR 0056). Runs of tier 1 have filters; the
    small shape makes them within a few entries."""
    town = Town.from_seed(b"filters from appends")
    with id_index_shape(SMALL_ID_INDEX), create_log(tmp_path / "data", town, setup=True) as log:
        assert log.id_filter_bytes == 0
        for n in range(4 * SMALL_ID_INDEX.run_size(1)):
            log.append([town.award(f"resident-{n}", "clean-pond")], now_ms=town.now_ms)
        assert log.id_filter_bytes > 0
