"""Filters beside the entry-id index's larger runs, in memory: a lookup of an id that
is absent skips most runs without reading them (ADR 0056).

A lookup reads level 0, then every live run, newest first (``idindex``): 14 LMDB gets
for an absent id at 10M entries, each at some 1.5 µs, most of what grows in an
append's cost with the log. A run never changes once written (``idruns``), so a
filter of its ids, built once, stays true for as long as the run lives.

Each filter is a blocked Bloom filter: an id chooses one 64-bit word of the run's
filter and six bits in it (from Python's own hash of the id's bytes, seeded afresh
in every process unless ``PYTHONHASHSEED`` fixes it, so nobody outside can aim ids at
a word), about 12 bits an id.
A word that lacks one of the id's bits proves the id is not in the run; one that has
them all sends the lookup to the run, as before, which happens for some 1 to 2% of
absent ids. A filter can never hide an id its run holds: the run's records are what
they always were, and a filter only ever skips reading a run that cannot hold the id.

What is kept, and where:

* **Runs of tier 1 and above** (65,536 ids or more with the default shape) get a
  filter; tier 0's few runs are replaced every 16,384 entries and are read as before.
* **Only committed runs**: a filter is built by a read transaction, from the run as
  committed. A run's number is used once in a log's history (the run list's next
  number only grows), so a filter found under a number is the filter of that run,
  in every transaction that lists it, readers' and the writer's alike.
* **In memory, within a budget** (``BUDGET_BYTES``, 32 MiB: the filters of some 22M
  ids): the node's memory stays bounded whatever the log's length. A run whose filter
  would not fit is read as before. Filters of runs merged away are dropped when a
  reader first sees the newer run list.
* **One filter built per read transaction** at most: after a restart, the first
  batches of a long log build the filters one run each (about 0.4 s for a run of
  1,048,576 ids) rather than one batch building them all.
"""

from __future__ import annotations

import random
import threading
from array import array
from collections.abc import Collection, Iterable

#: Bits of filter an id is given (rounded up to whole 64-bit words).
BITS_PER_ID = 12
#: Runs of this tier and above get a filter.
MIN_TIER = 1
#: The memory all filters of one open store may take, at most.
BUDGET_BYTES = 32 << 20

#: The low bits of an id's hash choose its bits within the word, the rest the word.
MASK_BITS = 12
_BITS_SET = 6


def _masks() -> tuple[int, ...]:
    """The 4,096 words of six distinct bits an id's hash chooses from (fixed)."""
    chooser = random.Random(0x6964_6669_6C74)  # noqa: S311 - a fixed table, not a secret
    masks = []
    for _ in range(1 << MASK_BITS):
        word = 0
        for bit in chooser.sample(range(64), _BITS_SET):
            word |= 1 << bit
        masks.append(word)
    return tuple(masks)


#: An id's bits: ``MASKS[hash(id) & MASK_LOW]``; its word: ``(hash(id) >> MASK_BITS) % n``.
MASKS = _masks()
MASK_LOW = (1 << MASK_BITS) - 1


#: What a run without a filter has in its place (``IdIndex``: a length of 0).
NO_FILTER: array[int] = array("Q")


def build(ids: Iterable[bytes], count: int) -> array[int]:
    """The filter of a run of ``count`` ids (``ids`` may hold more or fewer: a damaged
    run's filter must still let every id it holds through)."""
    size = _words(count)
    words = [0] * size
    masks = MASKS
    for entry_id in ids:
        key = hash(entry_id)
        words[(key >> MASK_BITS) % size] |= masks[key & MASK_LOW]
    return array("Q", words)


def may_hold(words: array[int], entry_id: bytes) -> bool:
    """False only when the run ``words`` filters cannot hold ``entry_id``. (``IdIndex``
    makes the same test inline, with the id's hash taken once for all its runs.)"""
    key = hash(entry_id)
    mask = MASKS[key & MASK_LOW]
    return words[(key >> MASK_BITS) % len(words)] & mask == mask


class RunFilters:
    """The filters of one open store's runs, by run number, shared by its transactions.

    ``get`` and ``add`` are safe from any thread; filters are built outside the lock
    (two readers may build the same run's filter: the second is dropped).
    """

    def __init__(self, budget: int = BUDGET_BYTES) -> None:
        self.budget = budget
        self._lock = threading.Lock()
        self._filters: dict[int, array[int]] = {}
        self._bytes = 0
        self._version = -1

    @property
    def memory(self) -> int:
        """The bytes the filters take."""
        return self._bytes

    def get(self, number: int) -> array[int] | None:
        """The filter of run ``number``, if one is kept."""
        return self._filters.get(number)

    def fits(self, count: int) -> bool:
        """Whether the filter of a run of ``count`` ids fits within the budget."""
        return self._bytes + _words(count) * 8 <= self.budget

    def add(self, number: int, words: array[int]) -> None:
        """Keep ``words`` as run ``number``'s filter, unless one is kept or it does not fit."""
        size = _bytes_of(words)
        with self._lock:
            if number in self._filters or self._bytes + size > self.budget:
                return
            self._filters[number] = words
            self._bytes += size

    def keep_only(self, numbers: Collection[int], version: int) -> None:
        """Drop the filters of runs not in ``numbers``, the live runs of a run list whose
        next number is ``version``, unless a newer list was seen before."""
        with self._lock:
            if version <= self._version:
                return
            self._version = version
            for number in [number for number in self._filters if number not in numbers]:
                self._bytes -= _bytes_of(self._filters.pop(number))


def _words(count: int) -> int:
    """The 64-bit words of the filter of a run of ``count`` ids."""
    return max(1, (count * BITS_PER_ID + 63) // 64)


def _bytes_of(words: array[int]) -> int:
    return len(words) * words.itemsize


__all__ = ["BUDGET_BYTES", "MIN_TIER", "NO_FILTER", "RunFilters", "build", "may_hold"]
