"""The packed per-entry tables behind ``MemoryState`` (ledger/packed.py, ADR 0030)."""

from __future__ import annotations

import hashlib
import sys

import pytest

from redlist.ledger.packed import IdTable, TargetTable
from redlist.ledger.state import MemoryState, TargetRecord


def entry_id(n: int) -> bytes:
    return hashlib.sha256(b"id %d" % n).digest()[:16]


def test_the_id_table_answers_exactly_through_growth() -> None:
    table = IdTable()
    count = 5000  # several rehashes from the first 1024 slots
    for seq in range(count):
        table.put(entry_id(seq), seq)
    assert len(table) == count
    assert all(table.get(entry_id(seq)) == seq for seq in range(count))
    assert table.get(entry_id(count)) is None
    assert entry_id(count) not in table
    assert set(table) == {entry_id(seq) for seq in range(count)}
    with pytest.raises(KeyError):
        table[entry_id(-1)]


def test_ids_sharing_a_slot_are_told_apart_by_their_whole_bytes() -> None:
    table = IdTable()
    # Same first 15 bytes: only the last byte tells them apart.
    ids = [bytes(15) + bytes([n]) for n in range(200)]
    for seq, item in enumerate(ids):
        table.put(item, seq)
    assert [table.get(item) for item in ids] == list(range(200))
    assert table.get(bytes(14) + b"\x01\x00") is None


def test_an_id_put_again_moves_and_other_lengths_are_kept_too() -> None:
    table = IdTable()
    table.put(entry_id(1), 3)
    table.put(entry_id(1), 7)
    table.put(b"short", 4)
    assert dict(table) == {entry_id(1): 7, b"short": 4}


def test_the_target_table_rebuilds_each_record() -> None:
    state = MemoryState()
    award = TargetRecord("award", "resident-1", 50, "S01", None, 10, "2026-03")
    redeem = TargetRecord("redeem", "resident-2", 30, "")
    state.put_target(4, award)
    state.put_target(9, redeem)
    state.put_target(4, award.reversed(12))
    assert state.target(4) == award.reversed(12)
    assert state.target(9) == redeem
    assert state.target(5) is None and state.target(100) is None
    assert dict(state.targets) == {4: award.reversed(12), 9: redeem}
    assert len(state.targets) == 2


def test_a_value_beyond_the_arrays_changes_nothing() -> None:
    table = TargetTable()
    with pytest.raises(OverflowError):
        table.put(3, ("award", "resident-1", 2**63, "S01", None, 1, "2026-03"))
    with pytest.raises(OverflowError):
        table.put(2**32, ("award", "resident-1", 1, "S01", None, 1, "2026-03"))
    assert len(table) == 0 and table.get(3) is None and list(table.seqs()) == []


def test_the_tables_grow_by_bytes_per_entry_not_objects() -> None:
    ids, targets = IdTable(), TargetTable()
    count = 50_000
    for seq in range(count):
        ids.put(entry_id(seq), seq)
        targets.put(seq, ("award", f"resident-{seq % 25}", 5, "V01", None, 1, "2026-03"))
    held = sum(
        sys.getsizeof(part)
        for part in (
            ids._ids,
            ids._slots,
            targets._account,
            targets._points,
            targets._qty,
            targets._reversed_by,
            targets._shape,
        )
    )
    # 16 (id) + 6 to 12 (slots) + 28 (target) bytes, arrays over-allocating a little.
    assert held / count < 64
