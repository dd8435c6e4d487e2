"""Deed dates: the strict ``YYYY-MM-DD`` codec, and days and months in a log's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redlist.ledger.deeddate import (
    date_window,
    day_of,
    format_date,
    instant_text,
    is_valid_date,
    log_zone,
    month_of,
    parse_date,
)
from redlist.ledger.errors import FormatError

SHANGHAI = ZoneInfo("Asia/Shanghai")


@given(st.dates())
def test_every_date_round_trips(day: date) -> None:
    text = format_date(day)
    assert parse_date(text) == day
    assert is_valid_date(text)
    assert month_of(text) == f"{day.year:04d}-{day.month:02d}"


@given(st.text(alphabet="0123456789-/ \uff12年月日x", max_size=12))
def test_a_date_has_exactly_one_spelling(text: str) -> None:
    """Whatever parses is the one form ``format_date`` writes back."""
    try:
        day = parse_date(text)
    except FormatError:
        assert not is_valid_date(text)
        return
    assert format_date(day) == text


@given(st.dates().map(format_date), st.integers(0, 9), st.integers(0, 9))
def test_any_changed_digit_is_the_same_day_or_refused_or_another_day(
    text: str, position: int, digit: int
) -> None:
    index = [0, 1, 2, 3, 5, 6, 8, 9][position % 8]
    changed = text[:index] + str(digit) + text[index + 1 :]
    if is_valid_date(changed):
        assert (parse_date(changed) == parse_date(text)) == (changed == text)


@pytest.mark.parametrize(
    "text",
    [
        "2026-5-3",
        "2026-05-3",
        "26-05-03",
        "2026/05/03",
        "2026-05-03 ",
        " 2026-05-03",
        "+2026-05-03",
        "20260503",
        "2026-02-29",
        "2026-13-01",
        "2026-00-10",
        "2026-01-00",
        "2026-04-31",
        "0000-01-01",
        "\uff12\uff10\uff12\uff16-05-03",  # full-width digits
        "٢٠٢٦-05-03",  # Arabic-Indic digits
        "",
    ],
)
def test_refused_spellings(text: str) -> None:
    with pytest.raises(FormatError):
        parse_date(text)
    assert not is_valid_date(text)


def test_leap_days_and_the_calendar_ends() -> None:
    assert parse_date("2024-02-29") == date(2024, 2, 29)
    assert parse_date("2000-02-29") == date(2000, 2, 29)
    assert not is_valid_date("1900-02-29")
    assert parse_date("0001-01-01") == date.min
    assert parse_date("9999-12-31") == date.max


@given(st.integers(0, 253_402_185_600_000))  # up to 9999-12-30, whatever the zone
def test_the_day_of_at_is_the_local_day(at: int) -> None:
    instant = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=at)
    assert day_of(at, SHANGHAI) == instant.astimezone(SHANGHAI).date()
    assert day_of(at, ZoneInfo("UTC")) == instant.date()
    assert abs(day_of(at, SHANGHAI) - instant.date()) <= timedelta(days=1)


def test_shanghai_days_turn_at_16_utc() -> None:
    midnight = int(datetime(2026, 3, 10, 16, tzinfo=UTC).timestamp() * 1000)
    assert day_of(midnight - 1, SHANGHAI) == date(2026, 3, 10)
    assert day_of(midnight, SHANGHAI) == date(2026, 3, 11)
    assert day_of(midnight, ZoneInfo("UTC")) == date(2026, 3, 10)


def test_an_instant_past_the_calendar_is_its_last_day() -> None:
    assert day_of(2**64 - 1, SHANGHAI) == date.max
    assert day_of(253_402_272_000_000, SHANGHAI) == date.max  # 10000-01-01 there


@given(st.integers(0, 4_102_444_800_000), st.integers(0, 11_000))
def test_the_window_holds_backdate_days_plus_one_days(at: int, backdate_days: int) -> None:
    first, last = date_window(at, SHANGHAI, backdate_days)
    assert last == day_of(at, SHANGHAI)
    assert (last - first).days == backdate_days


def test_unknown_zones_are_refused_in_words() -> None:
    assert log_zone("Asia/Shanghai") == SHANGHAI
    for name in ("Mars/Olympus_Mons", "", "../etc/passwd", "Asia/Shanghai\x00"):
        with pytest.raises(FormatError, match="not a known IANA time zone"):
            log_zone(name)


def test_an_instant_reads_as_utc_to_the_millisecond() -> None:
    assert instant_text(0) == "1970-01-01 00:00:00.000 UTC"
    assert instant_text(1_767_225_600_250) == "2026-01-01 00:00:00.250 UTC"
    assert instant_text(-5) == "1969-12-31 23:59:59.995 UTC"
    assert instant_text(2**64 - 1) == f"{2**64 - 1} ms since 1970"  # beyond the calendar
