"""The entry-id index's runs: its shape, the list of live runs, and how appends change it.

Pure: no I/O. ``idindex`` keeps the index in LMDB by these rules; ``fullcheck`` plans
the list a log of a given size must hold and compares it with the stored one
(ADR 0044).

The index leads from an entry's 16-byte id to its seq. Ids are random, so a B-tree
keyed by them alone takes each new id on a random leaf page: at 10M entries every
entry of a batch dirtied its own page of a 125k-page tree, and the commit wrote and
synced them all. The index is therefore log-structured:

* **Level 0** holds the newest ids (at most ``level0_max``), keyed by id: a batch
  dirties at most its few hundred pages, as the whole index did at 10k entries.
* **Runs.** When level 0 reaches ``level0_max`` ids, inside the append that put the
  last of them, its ids become a new run of tier 0, written once in key order under
  a run number larger than any before (so LMDB's append mode fills its pages densely
  and in order), and level 0 is emptied. When ``fanout`` runs of one tier exist they
  are merged, in key order, into one run of the next tier, in the same transaction;
  runs of ``top_tier`` (``level0_max × fanout^top_tier`` ids) are never merged again,
  which bounds what one transaction writes and what a merge holds. A run is never
  modified: it is written whole and deleted whole once merged.

Every entry puts exactly one id, in seq order, so each run holds the ids of a
contiguous range of seqs (``Run.first``, ``Run.count``), level 0 those from
``RunList.level0_first`` to the log's end, and the whole layout is a function of the
log's size and the shape (``plan``), which the full check compares with the store.
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass

from redlist.ledger.errors import FormatError

#: Level 0's largest number of ids: some 200 to 300 pages of LMDB.
LEVEL0_MAX = 16_384
#: How many runs of one tier are merged into one of the next.
FANOUT = 4
#: The tier whose runs are never merged: runs of 16,384 × 4³ = 1,048,576 ids
#: (some 15,000 pages written by the merge that makes one).
TOP_TIER = 3

_HEADER = struct.Struct(">IBBQ")  # level0_max, fanout, top_tier, next run number
_RUN = struct.Struct(">QBQQ")  # number, tier, first seq, count


@dataclass(frozen=True)
class IndexShape:
    """How large level 0 grows, how many runs are merged at once, and the top tier.

    Fixed when a log is created and kept in its run list: a store is read with the
    shape it was written with.
    """

    level0_max: int = LEVEL0_MAX
    fanout: int = FANOUT
    top_tier: int = TOP_TIER

    def __post_init__(self) -> None:
        if not (1 <= self.level0_max < 1 << 32 and 2 <= self.fanout < 256):
            raise FormatError(
                f"an entry-id index needs level 0 of at least 1 id and a fan-out of at "
                f"least 2, not {self.level0_max} and {self.fanout}"
            )
        if not 0 <= self.top_tier < 256:
            raise FormatError(f"the entry-id index's top tier {self.top_tier} is out of range")

    def run_size(self, tier: int) -> int:
        """The number of ids of a run of ``tier``."""
        return self.level0_max * int(self.fanout**tier)


#: The shape of every new log.
DEFAULT_SHAPE = IndexShape()


@dataclass(frozen=True)
class Run:
    """A live run: its number (its key prefix), tier, and the seqs whose ids it holds."""

    number: int
    tier: int
    first: int
    count: int


@dataclass(frozen=True)
class Merge:
    """Runs merged into one: ``inputs`` (oldest first) become ``output``."""

    inputs: tuple[Run, ...]
    output: Run


@dataclass(frozen=True)
class Flush:
    """What level 0 becoming a run does: the new run, the merges that follow it (in
    order) and the run list after them."""

    run: Run
    merges: tuple[Merge, ...]
    after: RunList


@dataclass(frozen=True)
class RunList:
    """The live runs, oldest first, and the number the next run takes.

    Stored (sealed) as ``level0_max`` (4 bytes), ``fanout``, ``top_tier`` (1 byte
    each), the next number (8 bytes), then per run its number (8), tier (1), first seq
    (8) and count (8), all big-endian.
    """

    shape: IndexShape
    next_number: int = 0
    runs: tuple[Run, ...] = ()

    @property
    def level0_first(self) -> int:
        """The seq of the first entry whose id is in level 0."""
        if not self.runs:
            return 0
        last = self.runs[-1]
        return last.first + last.count

    def newest_first(self) -> tuple[int, ...]:
        """The run numbers in the order a lookup tries them."""
        return tuple(run.number for run in reversed(self.runs))

    def run_of(self, seq: int) -> Run | None:
        """The run holding the id of entry ``seq``; None for level 0."""
        if seq >= self.level0_first:
            return None
        index = bisect.bisect_right([run.first for run in self.runs], seq) - 1
        return self.runs[index]

    def flush(self, count: int) -> Flush:
        """Level 0's ``count`` ids become run ``next_number`` of tier 0; then every tier
        holding ``fanout`` runs, from tier 0 up to below the top, is merged into one run
        of the next tier."""
        shape = self.shape
        new = Run(self.next_number, 0, self.level0_first, count)
        runs = [*self.runs, new]
        number = self.next_number + 1
        merges: list[Merge] = []
        tier = 0
        while (
            tier < shape.top_tier
            and len(runs) >= shape.fanout
            and all(run.tier == tier for run in runs[-shape.fanout :])
        ):
            inputs = tuple(runs[-shape.fanout :])
            output = Run(number, tier + 1, inputs[0].first, sum(run.count for run in inputs))
            runs[-shape.fanout :] = [output]
            merges.append(Merge(inputs, output))
            number += 1
            tier += 1
        return Flush(new, tuple(merges), RunList(shape, number, tuple(runs)))

    def to_bytes(self) -> bytes:
        shape = self.shape
        parts = [_HEADER.pack(shape.level0_max, shape.fanout, shape.top_tier, self.next_number)]
        parts.extend(_RUN.pack(run.number, run.tier, run.first, run.count) for run in self.runs)
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> RunList:
        """Decode a stored run list; ``FormatError`` unless it is well-formed: runs in
        increasing number below the next one, each of a tier up to the top and covering
        the seqs right after the one before, from 0."""
        if len(data) < _HEADER.size or (len(data) - _HEADER.size) % _RUN.size:
            raise FormatError(f"a run list of {len(data)} bytes")
        level0_max, fanout, top_tier, next_number = _HEADER.unpack_from(data)
        shape = IndexShape(level0_max, fanout, top_tier)
        runs: list[Run] = []
        first = 0
        for offset in range(_HEADER.size, len(data), _RUN.size):
            run = Run(*_RUN.unpack_from(data, offset))
            if (runs and run.number <= runs[-1].number) or run.tier > top_tier:
                raise FormatError(f"run {run.number} is out of order or of no tier")
            if run.first != first or run.count < 1:
                raise FormatError(f"run {run.number} does not follow the run before it")
            runs.append(run)
            first += run.count
        if runs and runs[-1].number >= next_number:
            raise FormatError(f"the next run number {next_number} is already taken")
        return cls(shape, next_number, tuple(runs))


def plan(shape: IndexShape, size: int) -> tuple[RunList, int]:
    """The run list of a log of ``size`` entries, and the seq of the entry whose append
    last changed it (0 when none did: the list is made by the genesis).

    Computed, not replayed: what ``RunList.flush`` makes, flush after flush, is a
    counter in base ``fanout`` whose top digit grows without bound. After ``k``
    flushes of level 0 the live runs are ``k // fanout^top`` runs of the top tier, then
    per tier below, from the top down, the next digit of ``k``; the run of tier ``t``
    made by flush ``j`` (from 1) is numbered after the runs of the ``j - 1`` flushes
    before it and the ``t`` merges below it in flush ``j``. The cost is that of the
    runs listed (``run_count``), however long the log: replaying a shape that makes one
    run per entry and never merges cost the square of the log's length.
    """
    steps = _flushes_per_run(shape)
    flushes = size // shape.level0_max

    def made(done: int) -> int:
        """The runs the first ``done`` flushes made: one each, and the merges."""
        return done + sum(done // step for step in steps[1:])

    runs: list[Run] = []
    done = 0
    for tier in reversed(range(len(steps))):
        step = steps[tier]
        for _ in range((flushes - done) // step):
            runs.append(
                Run(
                    made(done + step - 1) + tier,
                    tier,
                    done * shape.level0_max,
                    shape.run_size(tier),
                )
            )
            done += step
    changed = flushes * shape.level0_max - 1 if flushes else 0
    return RunList(shape, made(flushes), tuple(runs)), changed


def run_count(shape: IndexShape, size: int) -> int:
    """The number of runs ``plan(shape, size)`` lists, without listing them."""
    count, flushes = 0, size // shape.level0_max
    for step in reversed(_flushes_per_run(shape)):
        count += flushes // step
        flushes %= step
    return count


def _flushes_per_run(shape: IndexShape) -> tuple[int, ...]:
    """The flushes of level 0 that make one run of each tier, from tier 0 to the top."""
    return tuple(int(shape.fanout**tier) for tier in range(shape.top_tier + 1))


__all__ = [
    "DEFAULT_SHAPE",
    "FANOUT",
    "LEVEL0_MAX",
    "TOP_TIER",
    "Flush",
    "IndexShape",
    "Merge",
    "Run",
    "RunList",
    "plan",
    "run_count",
]
