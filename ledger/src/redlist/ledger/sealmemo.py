"""State records the writer has sealed or opened, remembered by their exact stored bytes.

Every append reads an award's balance, monthly count and entry-list head, and each
read checks the record's seal (a BLAKE2b tag) and decodes its payload
(``storestate``). Most of those records were written by an append a few batches
before, by this very process, which sealed them from the values it now decodes
again. ``SealedMemo`` keeps, per state table and key, the last stored bytes the
writer sealed or opened and what they decode to; a read whose stored bytes are
*exactly* those bytes takes the value from it, with no tag computed and nothing
decoded.

That is as strict as opening the record: opening is a pure function of the table,
the key and the stored bytes (the tag binds all three), and the remembered bytes
either carried a tag this process checked or were sealed by it. A record changed
in any way on disk (damage, an older sealed value put back) has other bytes, is
opened in full, and fails or passes exactly as it would without the memory. What
a transaction wrote and then aborted is remembered too, harmlessly: those bytes
were sealed correctly, and they are only ever matched against bytes read back.

Bounded: each table remembers at most ``capacity`` records, and forgets them all
when one more comes, so the node's memory does not grow with its log; a town with
more residents than that opens its records as before, more often. Only the store's
write transactions use it, and LMDB runs one of those at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

_T = TypeVar("_T", bound=tuple[object, ...])

#: Records remembered per table: a large town's residents, about 10 MB in all.
DEFAULT_CAPACITY = 1 << 15


class _Opened(Generic[_T]):
    """One table's memory: key -> ``(stored bytes, *value)``.

    A value is a tuple of plain fields (integers, text), kept flat beside its bytes:
    one tuple of untracked items a record, which the garbage collector stops tracking
    the first time it meets it (values kept for every account, as objects or nested
    tuples, made the collector's young passes walk them again and again).
    """

    __slots__ = ("_capacity", "_records")

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._records: dict[bytes, tuple[object, ...]] = {}

    def get(self, key: bytes, stored: bytes) -> _T | None:
        """The value of ``stored`` under ``key`` if those are the bytes remembered."""
        found = self._records.get(key)
        if found is not None and found[0] == stored:
            return found[1:]  # type: ignore[return-value]
        return None

    def recall(self, key: bytes, stored: bytes, open_record: Callable[[bytes, bytes], _T]) -> _T:
        """The value of ``stored`` under ``key``: the one remembered when those are the
        bytes remembered, else ``open_record(key, stored)`` (which checks the seal and
        raises when it fails), then remembered. The one place a state read checks the
        memory and fills it (``storestate``)."""
        records = self._records
        found = records.get(key)
        if found is not None and found[0] == stored:
            return found[1:]  # type: ignore[return-value]
        value = open_record(key, stored)
        records[key] = (stored, *value)
        if len(records) > self._capacity:
            records.clear()  # as ``put``
        return value

    def put(self, key: bytes, stored: bytes, value: _T) -> None:
        """Remember that ``stored`` (sealed for ``key``, its seal sound) holds ``value``."""
        records = self._records
        records[key] = (stored, *value)
        if len(records) > self._capacity:
            # Forget all and start again: evicting one at a time from the front makes
            # the dict scan its deleted slots, and a town this large gains little.
            records.clear()

    def clear(self) -> None:
        """Forget every record (what was remembered is of no more use)."""
        self._records.clear()

    def __len__(self) -> int:
        return len(self._records)


class SealedMemo:
    """The writer's memory of the records it reads for every entry (module docstring):
    balances (``(earned, redeemed, entries)``), monthly counts (``(rule, qty)``) and
    entry-list heads (``(seq, count)``), each kept as plain values the garbage
    collector stops tracking;
    and of the entry-id records it put (``(seq,)``), which making a run of level 0
    reads back (``idindex``)."""

    __slots__ = ("account_heads", "balances", "ids", "month_counts")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.balances: _Opened[tuple[int, int, int]] = _Opened(capacity)
        self.month_counts: _Opened[tuple[str, int]] = _Opened(capacity)
        self.account_heads: _Opened[tuple[int, int]] = _Opened(capacity)
        self.ids: _Opened[tuple[int]] = _Opened(capacity)


__all__ = ["DEFAULT_CAPACITY", "SealedMemo"]
