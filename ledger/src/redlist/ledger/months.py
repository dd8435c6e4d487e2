"""A log's months: which entries make up the calendar month ``YYYY-MM`` of a town. Pure.

Monthly publicity (DESIGN 9.3) publishes a month's entries as one bundle, and month
M's bundle must start exactly where M-1's ended. The rule (docs/adr/0027):

* An entry belongs to the month, in the log's time zone (the genesis ``tz``), in which
  its leaf ``time`` falls: the node's integration time, the moment the town recorded
  it. Not the author's ``at`` and not an award's deed ``date``: a deed may be recorded
  up to ``backdate_days`` later, and a board notice lists what was *recorded* in the
  month (with each deed's own date), so nothing recorded after a month was published
  can slip into it.
* Leaf times never decrease (DESIGN 3.3), so a month's entries are one contiguous range
  ``[start, end)``: ``start`` is the first seq whose time is at or after the month's
  first instant, ``end`` the first seq at or after the next month's first instant (the
  log's size when there is none). :func:`first_at_or_after` finds either by binary
  search over the leaves' times.
* Every leaf of one append batch carries the same time, so a boundary never falls
  inside a batch, and the node stores a signed checkpoint at every batch's size: the
  checkpoints at ``start`` and ``end`` exist without signing anything after the fact.

The first instant of a month is midnight of its first day in the zone (for
``Asia/Shanghai``, UTC+8: 1 December 2026 begins at 2026-11-30 16:00:00 UTC).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, tzinfo

from redlist.ledger.deeddate import day_of
from redlist.ledger.errors import FormatError

#: How a month is written: ``YYYY-MM``.
MONTH_PATTERN = re.compile(r"([0-9]{4})-([0-9]{2})")


def parse_month(text: str) -> tuple[int, int]:
    """The (year, month) of ``text``, strictly ``YYYY-MM``; ``FormatError`` otherwise."""
    match = MONTH_PATTERN.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise FormatError(f"{text!r} is not a month written YYYY-MM (for example 2026-11)")
    year, month = int(match.group(1)), int(match.group(2))
    if not 1 <= year <= 9998 or not 1 <= month <= 12:
        raise FormatError(f"{text!r} is not a month of the calendar")
    return year, month


def format_month(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


def next_month(text: str) -> str:
    """The month after ``text``."""
    year, month = parse_month(text)
    return format_month(year + 1, 1) if month == 12 else format_month(year, month + 1)


def previous_month(text: str) -> str:
    """The month before ``text``."""
    year, month = parse_month(text)
    return format_month(year - 1, 12) if month == 1 else format_month(year, month - 1)


def first_instant(text: str, zone: tzinfo) -> int:
    """The first millisecond (since 1970 UTC) of month ``text`` in ``zone``."""
    year, month = parse_month(text)
    midnight = datetime(year, month, 1, tzinfo=zone)
    return int(midnight.astimezone(UTC).timestamp()) * 1000


def month_bounds(text: str, zone: tzinfo) -> tuple[int, int]:
    """``[first, after)`` in ms: the instants of month ``text`` in ``zone``."""
    return first_instant(text, zone), first_instant(next_month(text), zone)


def month_of_time(time_ms: int, zone: tzinfo) -> str:
    """The month (``YYYY-MM``) in ``zone`` in which the instant ``time_ms`` falls."""
    return month_of_day(day_of(time_ms, zone))


def month_of_day(day: date) -> str:
    return format_month(day.year, day.month)


def last_day(text: str) -> date:
    """The last calendar day of month ``text``."""
    year, month = parse_month(next_month(text))
    return date.fromordinal(date(year, month, 1).toordinal() - 1)


def first_at_or_after(time_of: Callable[[int], int], size: int, instant_ms: int) -> int:
    """The first seq in ``[0, size)`` whose leaf time is at least ``instant_ms``, else
    ``size``. ``time_of(seq)`` reads leaf ``seq``'s time; times never decrease, so this
    reads about log2(size) leaves."""
    low, high = 0, size
    while low < high:
        middle = (low + high) // 2
        if time_of(middle) < instant_ms:
            low = middle + 1
        else:
            high = middle
    return low


__all__ = [
    "MONTH_PATTERN",
    "first_at_or_after",
    "first_instant",
    "format_month",
    "last_day",
    "month_bounds",
    "month_of_day",
    "month_of_time",
    "next_month",
    "parse_month",
    "previous_month",
]
