"""The packed per-entry tables behind ``MemoryState`` (ledger/packed.py, ADR 0030)."""

from __future__ import annotations

import copy
import hashlib
import sys

import pytest

from redlist.ledger import native
from redlist.ledger.packed import (
    MAX_RESERVED,
    AccountTable,
    BalanceTable,
    IdTable,
    MonthCountTable,
    TargetTable,
)
from redlist.ledger.state import Balance, KeyRecord, MemoryState, RuleRecord, TargetRecord


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


def test_accounts_get_numbers_in_order_of_first_sight_and_find_interns_nothing() -> None:
    accounts = AccountTable()
    assert accounts.find("resident-1") is None and len(accounts) == 0
    assert [accounts.number(name) for name in ("b", "a", "b", "c")] == [0, 1, 0, 2]
    assert accounts.find("a") == 1 and accounts.name(2) == "c" and len(accounts) == 3


def test_the_balance_table_holds_only_what_was_put() -> None:
    table = BalanceTable()
    table.put(3, 50, 20, 4)
    table.put(0, -5, 0, 1)
    assert table.get(3) == (50, 20, 4) and table.get(0) == (-5, 0, 1)
    assert table.get(1) is None and table.get(99) is None and not table.has(2)
    assert list(table.numbers()) == [0, 3] and len(table) == 2
    table.put(3, 55, 20, 5)
    assert table.get(3) == (55, 20, 5) and len(table) == 2


def test_a_balance_beyond_the_arrays_changes_nothing() -> None:
    table = BalanceTable()
    table.put(1, 10, 2, 3)
    with pytest.raises(OverflowError):
        table.put(1, 11, 2**63, 4)  # earned in range, redeemed not: earned is put back
    with pytest.raises(OverflowError):
        table.put(5, 2**63, 0, 1)  # a new account: nothing grows
    assert table.get(1) == (10, 2, 3) and table.get(5) is None and len(table) == 1


def test_monthly_counts_under_integer_keys_and_zero_removes() -> None:
    table = MonthCountTable()
    table.put(7, "V01", "2026-03", 2)
    table.put(7, "V01", "2026-04", 1)
    table.put(2**31, "V01", "2026-03", 9)  # a large account number stays its own
    table.put(8, "V02", "2026-03", 0)  # nothing to remove, no pair interned
    assert table.get(7, "V01", "2026-03") == 2 and table.get(7, "V02", "2026-03") == 0
    assert table.get(2**31, "V01", "2026-03") == 9 and table.get(8, "V01", "2026-03") == 0
    table.put(7, "V01", "2026-03", 0)
    assert table.get(7, "V01", "2026-03") == 0
    assert sorted(table.items()) == [(7, "V01", "2026-04", 1), (2**31, "V01", "2026-03", 9)]
    assert len(table) == 2 and len(table._pairs) == 2


def test_the_state_keeps_each_account_id_once_for_every_table() -> None:
    state = MemoryState()
    for seq in range(3):
        account = "".join(["resident-", "1"])  # a new str each time, as a decoder makes
        state.put_balance(account, Balance(5 * (seq + 1), 0, seq + 1))
        state.put_month_qty(account, "V01", "2026-03", seq + 1)
        state.put_target(seq, TargetRecord("award", account, 5, "V01", None, 1, "2026-03"))
    (kept,) = state.balances
    assert all(state.targets[seq].account is kept for seq in range(3))
    assert all(account is kept for account, _, _ in state.month_counts)
    assert len(state._accounts) == 1


def test_balances_and_counts_read_as_the_mappings_they_replace() -> None:
    state = MemoryState()
    state.put_balance("b", Balance(10, 4, 2))
    state.put_balance("a", Balance(5, 0, 1))
    state.put_month_qty("a", "V01", "2026-03", 3)
    state.put_month_qty("b", "V01", "2026-03", 1)
    state.put_month_qty("b", "V01", "2026-03", 0)
    state.put_month_qty("zz", "V01", "2026-03", 0)  # removing what is not there
    assert dict(state.balances) == {"b": Balance(10, 4, 2), "a": Balance(5, 0, 1)}
    assert state.balance("c") == Balance() and "c" not in state.balances
    assert state.balances.get("c") is None and 5 not in state.balances
    with pytest.raises(KeyError):
        state.balances["c"]
    assert dict(state.month_counts) == {("a", "V01", "2026-03"): 3}
    assert ("b", "V01", "2026-03") not in state.month_counts
    assert state.month_qty("b", "V01", "2026-03") == 0 and state.month_qty("c", "x", "y") == 0
    assert "zz" not in state.balances and len(state.month_counts) == 1


def test_a_balance_snapshot_keeps_the_moment_it_was_taken() -> None:
    state = MemoryState()
    state.put_balance("a", Balance(5, 0, 1))
    snapshot = state.balances.snapshot()
    state.put_balance("a", Balance(10, 0, 2))
    state.put_balance("b", Balance(1, 0, 1))
    assert dict(snapshot) == {"a": Balance(5, 0, 1)}
    assert dict(state.balances) == {"a": Balance(10, 0, 2), "b": Balance(1, 0, 1)}


def test_per_account_state_is_bytes_not_objects() -> None:
    state = MemoryState()
    count = 20_000
    for number in range(count):
        account = f"resident-{number}"
        state.put_balance(account, Balance(1000 + number, number, 2))
        state.put_month_qty(account, "V01", "2026-03", 300 + number)
    balances = state._balances
    arrays = (balances._earned, balances._redeemed, balances._entries, balances._present)
    held = sum(sys.getsizeof(part) for part in arrays)
    # The balance's 25 bytes (three 8-byte fields and a flag), over-allocating a little.
    assert held / count < 32
    # A count: an int key and an int qty in a dictionary, the pair interned once.
    counts = state._month_counts._counts
    per_count = (sys.getsizeof(counts) + sum(sys.getsizeof(k) for k in counts)) / count
    assert per_count < 100


def test_seqs_may_leave_gaps_and_a_seq_beyond_four_bytes_changes_nothing() -> None:
    ids, targets = IdTable(), TargetTable()
    ids.put(entry_id(0), 0)
    ids.put(entry_id(5), 5)  # a gap, as a resumed or test state may have
    targets.put(5, ("award", "resident-1", 5, "V01", None, 1, "2026-03"))
    targets.put(2, ("redeem", "resident-2", 3, "", 7, 0, ""))
    assert dict(ids) == {entry_id(0): 0, entry_id(5): 5}
    assert list(targets.seqs()) == [2, 5] and len(targets) == 2
    assert targets.get(2) == ("redeem", "resident-2", 3, "", 7, 0, "")
    assert targets.get(3) is None
    with pytest.raises(OverflowError):
        ids.put(entry_id(9), 2**32 - 1)
    assert len(ids) == 2 and ids.get(entry_id(9)) is None


def test_a_free_slot_found_by_get_is_used_only_for_that_id() -> None:
    table = IdTable()
    first, second = entry_id(1), entry_id(2)
    assert table.get(first) is None  # remembers first's free slot
    table.put(second, 0)  # another id: the slot remembered may now be taken
    table.put(first, 1)
    assert (table.get(first), table.get(second)) == (1, 0)
    # The usual order: get, then put of the same id, through growth.
    for seq in range(3, 3000):
        item = entry_id(seq)
        assert table.get(item) is None
        table.put(item, seq)
    assert all(table.get(entry_id(seq)) == seq for seq in range(3, 3000))
    assert (table.get(first), table.get(second), len(table)) == (1, 0, 2999)


def test_reserving_room_keeps_every_id_and_is_bounded() -> None:
    table = IdTable()
    for seq in range(100):
        table.put(entry_id(seq), seq)
    table.reserve(50_000)
    assert len(table._slots) >= 75_000
    assert all(table.get(entry_id(seq)) == seq for seq in range(100))
    table.reserve(10)  # never shrinks
    assert len(table._slots) >= 75_000
    huge = IdTable()
    huge.reserve(2**40)  # a number from data: room stays bounded
    assert len(huge._slots) <= 2 * 2 * MAX_RESERVED


@pytest.mark.skipif(
    bool(native.compiled_modules()),
    reason="only the sources bind the tables' methods, and a compiled state is not copied; "
    "make test runs it again from the sources (docs/adr/0057)",
)
def test_a_copied_state_reads_and_writes_its_own_tables() -> None:
    """The state answers look-ups with its tables' own bound methods; a copy binds its
    copies' methods, never the original's."""
    state = MemoryState()
    state.put_key(KeyRecord(b"k" * 8, b"p" * 32, "wang", frozenset({"grid"}), 1))
    state.put_entry_id(b"i" * 16, 1)
    other = copy.deepcopy(state)
    other.put_key(KeyRecord(b"q" * 8, b"p" * 32, "li", frozenset({"grid"}), 2))
    other.put_rule(RuleRecord("V01", "Pond", "environment", 5, False, True, 3))
    other.put_entry_id(b"j" * 16, 2)
    other.put_target(4, TargetRecord("award", "a-1", 5, "V01", None, 1, "2026-03"))
    assert other.key(b"k" * 8) == state.key(b"k" * 8) and other.key(b"q" * 8) is not None
    assert other.rule("V01") is not None and other.entry_seq(b"j" * 16) == 2
    assert other.target(4) == TargetRecord("award", "a-1", 5, "V01", None, 1, "2026-03")
    assert state.key(b"q" * 8) is None and state.rule("V01") is None
    assert state.entry_seq(b"j" * 16) is None and state.target(4) is None
