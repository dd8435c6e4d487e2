"""Months of a log in its time zone (``redlist.ledger.months``), on a machine in UTC."""

from __future__ import annotations

import pytest

from redlist.ledger import months
from redlist.ledger.deeddate import log_zone
from redlist.ledger.errors import FormatError

SHANGHAI = log_zone("Asia/Shanghai")
#: 2026-01-31T16:00:00Z: midnight of 1 February 2026 in Shanghai (UTC+8).
FEBRUARY_BEGINS = 1_769_875_200_000


def test_a_month_begins_at_midnight_in_the_town_not_in_utc() -> None:
    first, after = months.month_bounds("2026-02", SHANGHAI)
    assert first == FEBRUARY_BEGINS
    assert after == 1_772_294_400_000  # 2026-02-28T16:00:00Z
    assert months.month_of_time(FEBRUARY_BEGINS - 1000, SHANGHAI) == "2026-01"
    assert months.month_of_time(FEBRUARY_BEGINS - 1, SHANGHAI) == "2026-01"
    assert months.month_of_time(FEBRUARY_BEGINS, SHANGHAI) == "2026-02"


def test_months_follow_one_another_across_years() -> None:
    assert months.next_month("2026-12") == "2027-01"
    assert months.previous_month("2026-01") == "2025-12"
    assert months.last_day("2024-02").isoformat() == "2024-02-29"
    assert months.month_bounds("2026-12", SHANGHAI)[1] == months.first_instant("2027-01", SHANGHAI)


@pytest.mark.parametrize(
    "text",
    ["2026-1", "2026-13", "2026-00", "26-01", "2026/01", "２０２６-01"],  # noqa: RUF001
)
def test_a_month_is_written_yyyy_mm(text: str) -> None:
    with pytest.raises(FormatError, match="month"):
        months.parse_month(text)


@pytest.mark.parametrize(
    ("instant", "expected"), [(0, 0), (10, 0), (11, 2), (20, 2), (21, 5), (31, 6), (99, 6)]
)
def test_first_at_or_after_finds_the_boundary_in_never_decreasing_times(
    instant: int, expected: int
) -> None:
    times = [10, 10, 20, 20, 20, 30]  # a batch shares one time
    reads: list[int] = []

    def time_of(seq: int) -> int:
        reads.append(seq)
        return times[seq]

    assert months.first_at_or_after(time_of, len(times), instant) == expected
    assert len(reads) <= 3  # a binary search: log2(6) rounded up


def test_first_at_or_after_an_empty_log() -> None:
    assert months.first_at_or_after(lambda seq: 0, 0, 5) == 0
