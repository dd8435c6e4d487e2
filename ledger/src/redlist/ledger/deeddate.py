"""Deed dates of format v1 (DESIGN 3.4): their text form, the log's days and months. Pure.

An award's ``date`` is the day the deed was done, as ``YYYY-MM-DD`` (a real date of the
proleptic Gregorian calendar, four-digit year from 0001, month and day zero-padded: the
one form ``datetime.date.isoformat`` writes). Which day an entry's ``at`` falls on is
decided in the log's time zone (the genesis ``tz``), so the window an award's date must
lie in is counted in the town's own days, as a clerk counts them:

    day(at) - backdate_days  <=  date  <=  day(at)

The monthly cap (``max_per_month``) counts by the deed date's month, ``YYYY-MM``: the
deed date is already a day of the town, so no time zone is involved there.

Time zones come from the IANA database through ``zoneinfo`` (the system's copy, else the
``tzdata`` package the ledger depends on). Reading a zone is the one read the pure core
makes: a zone's rules are data, the same on every machine with the same database, and
each zone is read once per process (``log_zone``).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from redlist.ledger.errors import FormatError

#: The shape of a deed date; ``parse_date`` also requires a real calendar day.
DATE_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
#: How many days before the day of ``at`` a deed date may lie when genesis says nothing.
DEFAULT_BACKDATE_DAYS = 92
#: The largest ``backdate_days`` a genesis may set: about 30 years. A bigger window
#: means no window, and keeps date arithmetic far from the calendar's ends.
MAX_BACKDATE_DAYS = 11_000


def parse_date(text: str) -> date:
    """The calendar day ``text`` names, strictly ``YYYY-MM-DD``; ``FormatError`` otherwise.

    Refused: other separators or widths (``2026-5-3``, ``2026/05/03``), signs, spaces,
    non-ASCII digits, and days the calendar does not have (``2026-02-30``, year 0000).
    """
    if type(text) is not str or DATE_PATTERN.fullmatch(text) is None:
        raise FormatError(f"{text!r} is not a date written YYYY-MM-DD (for example 2026-05-03)")
    try:
        return date(int(text[0:4]), int(text[5:7]), int(text[8:10]))
    except ValueError:
        raise FormatError(f"{text!r} is not a day of the calendar") from None


def is_valid_date(text: str) -> bool:
    """True when ``text`` is a deed date ``parse_date`` accepts."""
    try:
        parse_date(text)
    except FormatError:
        return False
    return True


def format_date(day: date) -> str:
    """The deed-date text of ``day`` (the inverse of ``parse_date``)."""
    return day.isoformat()


def month_of(text: str) -> str:
    """The ``YYYY-MM`` month of a valid deed date (the monthly cap's period)."""
    return text[:7]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=64)
def log_zone(name: str) -> tzinfo:
    """The IANA time zone ``name``; ``FormatError`` for a name the database lacks."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise FormatError(
            f"{name!r} is not a known IANA time zone (for example Asia/Shanghai)"
        ) from None


def known_zone(name: str) -> tzinfo | None:
    """The IANA time zone ``name`` to show times in, or None where this computer does not
    know it (its caller shows UTC instead, and says so where it can)."""
    try:
        return log_zone(name)
    except FormatError:
        return None


def day_of(at_ms: int, zone: tzinfo) -> date:
    """The day in ``zone`` on which the instant ``at_ms`` (ms since 1970 UTC) falls.

    An instant past the calendar's end (year 9999, which no honest clock shows) is its
    last day, so a bizarre ``at`` gets a refusal rather than a crash.
    """
    try:
        instant = _EPOCH + timedelta(milliseconds=at_ms)
        return instant.astimezone(zone).date()
    except OverflowError:
        return date.max


def instant_text(at_ms: int) -> str:
    """The instant ``at_ms`` (ms since 1970 UTC) as people read it, in UTC to the
    millisecond (``2026-12-05 08:30:00.250 UTC``); the number itself beyond the calendar."""
    try:
        instant = _EPOCH + timedelta(milliseconds=at_ms)
    except OverflowError:
        return f"{at_ms} ms since 1970"
    return instant.strftime("%Y-%m-%d %H:%M:%S.") + f"{instant.microsecond // 1000:03d} UTC"


def date_window(at_ms: int, zone: tzinfo, backdate_days: int) -> tuple[date, date]:
    """The first and last deed day allowed for an entry whose author's time is ``at_ms``."""
    last = day_of(at_ms, zone)
    try:
        first = last - timedelta(days=backdate_days)
    except OverflowError:
        first = date.min
    return first, last


__all__ = [
    "DATE_PATTERN",
    "DEFAULT_BACKDATE_DAYS",
    "MAX_BACKDATE_DAYS",
    "date_window",
    "day_of",
    "format_date",
    "is_valid_date",
    "log_zone",
    "month_of",
    "parse_date",
]
