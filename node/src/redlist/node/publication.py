"""When each month was published: ``<data>/publicity/YYYY-MM.json``, beside the log.

The objection window of a month runs ``publicity_days`` from its publication (DESIGN
9.3), so the node remembers when that was: the first ``export --month`` of a month
records the time and the month's range of entries, and later exports of the same month
(another copy for the website, a reprint) keep that first time, so a window is never
reopened by exporting again. A record is small JSON::

    {"month": "2026-11", "start": 1207, "end": 1544, "published_ms": 1764812345678}

A later export that finds another range for the month is refused: the log's months never
change once over, unless a node's clock was set back behind a month that was already
published (then the clerk must look before anything is re-published).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redlist.ledger import months
from redlist.ledger.errors import FormatError, PublicityError
from redlist.ledger.i18n import _

PUBLICITY_DIR = "publicity"
_KEYS = ("month", "start", "end", "published_ms")


@dataclass(frozen=True)
class Publication:
    """Month ``month`` (entries ``[start, end)``) was first published at ``published_ms``."""

    month: str
    start: int
    end: int
    published_ms: int

    def to_bytes(self) -> bytes:
        value = {key: getattr(self, key) for key in _KEYS}
        return (json.dumps(value) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> Publication:
        try:
            value: Any = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise PublicityError(
                _("{where} is not a publication record (JSON)").format(where=where)
            ) from None
        if not isinstance(value, dict) or sorted(value) != sorted(_KEYS):
            raise PublicityError(
                _("{where} must have exactly the fields {join}").format(
                    where=where, join=", ".join(_KEYS)
                )
            )
        numbers = [value[key] for key in _KEYS[1:]]
        if any(type(number) is not int or number < 0 for number in numbers):
            raise PublicityError(
                _("{where}: start, end and published_ms must be whole numbers").format(where=where)
            )
        try:
            months.parse_month(value["month"])
        except FormatError as exc:
            raise PublicityError(f"{where}: {exc.diagnostics()}") from None
        return cls(value["month"], *numbers)


def path_of(data_dir: Path, month: str) -> Path:
    return data_dir / PUBLICITY_DIR / f"{month}.json"


def read_publication(data_dir: Path, month: str) -> Publication | None:
    """The record of ``month``'s publication, or None when it was never published."""
    path = path_of(data_dir, month)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PublicityError(
            _("cannot read {path}: {strerror}").format(path=path, strerror=exc.strerror)
        ) from None
    found = Publication.from_bytes(data, str(path))
    if found.month != month:
        raise PublicityError(
            _("{path} records month {month}, not {month2}").format(
                path=path, month=found.month, month2=month
            )
        )
    return found


def publish(data_dir: Path, new: Publication) -> Publication:
    """Record ``new`` unless its month was published before; the record that holds.

    ``PublicityError`` when the month was published with another range of entries.
    """
    earlier = read_publication(data_dir, new.month)
    if earlier is not None:
        if (earlier.start, earlier.end) != (new.start, new.end):
            raise PublicityError(
                _(
                    "{month} was published with entries {start} to {value}, but the log now puts "
                    "entries {start2} to {value2} in it: was the node's clock set back? Nothing "
                    "was "
                    "exported"
                ).format(
                    month=new.month,
                    start=earlier.start,
                    value=earlier.end - 1,
                    start2=new.start,
                    value2=new.end - 1,
                )
            )
        return earlier
    path = path_of(data_dir, new.month)
    try:
        path.parent.mkdir(mode=0o755, exist_ok=True)
        temporary = path.with_suffix(".json.tmp")
        with open(temporary, "wb") as handle:
            handle.write(new.to_bytes())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        raise PublicityError(
            _("cannot record the publication in {path}: {strerror}").format(
                path=path, strerror=exc.strerror
            )
        ) from None
    return new


def publications(data_dir: Path) -> list[Publication]:
    """Every recorded publication, oldest month first."""
    folder = data_dir / PUBLICITY_DIR
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.json")):
        if months.MONTH_PATTERN.fullmatch(path.stem):
            record = read_publication(data_dir, path.stem)
            if record is not None:
                found.append(record)
    return found


__all__ = ["PUBLICITY_DIR", "Publication", "path_of", "publications", "publish", "read_publication"]
