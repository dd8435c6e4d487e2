"""The runs' filters (``idfilter``): never a false "absent", few false "maybe", and a
budget that bounds their memory."""

from __future__ import annotations

import random
from array import array

from hypothesis import given
from hypothesis import strategies as st

from redlist.ledger import idfilter
from redlist.ledger.idfilter import RunFilters, build, may_hold

IDS = st.lists(st.binary(min_size=16, max_size=16), unique=True, max_size=300)


@given(ids=IDS, extra=st.integers(-50, 50))
def test_a_filter_lets_every_id_of_its_run_through(ids: list[bytes], extra: int) -> None:
    """Whatever the count it is sized for (a damaged run may hold more or fewer ids)."""
    words = build(ids, max(0, len(ids) + extra))
    assert all(may_hold(words, entry_id) for entry_id in ids)


def test_a_filter_turns_away_nearly_every_id_its_run_lacks() -> None:
    chooser = random.Random(12)  # noqa: S311 - replayable ids
    held = [chooser.randbytes(16) for _ in range(20_000)]
    words = build(held, len(held))
    assert len(words) * 64 == len(held) * idfilter.BITS_PER_ID
    others = [chooser.randbytes(16) for _ in range(20_000)]
    let_through = sum(may_hold(words, entry_id) for entry_id in others)
    assert let_through < 0.04 * len(others)  # about 1.5%
    assert not may_hold(array("Q", bytes(8 * len(words))), held[0])  # an empty filter


def test_each_id_sets_its_bits_in_one_word() -> None:
    assert all(bin(mask).count("1") == 6 for mask in idfilter.MASKS)
    assert len(set(idfilter.MASKS)) > 4000
    words = build([b"\x07" * 16], 1_000)
    assert sum(1 for word in words if word) == 1


def test_the_filters_stay_within_their_budget() -> None:
    filters = RunFilters(budget=3 * 8 * 16)  # three filters of 16 words
    small = build([b"a" * 16], 80)  # 80 ids × 12 bits: 15 words; 85 ids: 16
    assert len(small) == 15
    for number in range(4):
        assert filters.fits(85) == (number < 3)
        filters.add(number, build([b"a" * 16], 85))
    assert [filters.get(number) is not None for number in range(4)] == [True] * 3 + [False]
    assert filters.memory == 3 * 16 * 8
    filters.add(0, small)  # one is kept already: not replaced
    assert filters.get(0) is not small


def test_filters_of_runs_merged_away_are_dropped_once_a_newer_list_is_seen() -> None:
    filters = RunFilters()
    for number in range(3):
        filters.add(number, build([bytes([number]) * 16], 100))
    filters.keep_only({1, 2}, version=5)
    assert filters.get(0) is None and filters.get(1) is not None
    assert filters.memory == 2 * len(build([], 100)) * 8
    filters.keep_only({2}, version=4)  # an older reader's list: nothing dropped
    assert filters.get(1) is not None
    filters.keep_only(set(), version=6)
    assert filters.memory == 0
