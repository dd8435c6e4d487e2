"""Where and when entry signatures are verified: the one scheduler beside the validator.

The validator (``validator.LogValidator``) decides one entry at a time and only
asks whether a signature verifies. Ed25519 verification is what limits ingest and
audit (DESIGN 6), so whoever drives a validator (the node's append, the auditor,
a mirror) verifies the signatures of the entries ahead in parallel and hands the
validator the verdicts. This module is the only place that does so:

* ``SignatureScheduler`` verifies lists of ``(public key, body, signature)``
  triples elsewhere and never waits in ``submit``: on worker processes
  (``sigworkers.VerifyPool``, whose workers take a chunk's jobs from one queue as
  each finishes its last), on a
  thread per core while no worker process is ready (they are starting, or none
  is left), on a caller's
  executor, or, with one core, in the calling thread when the verdicts are asked
  for. ``Ticket.result`` waits for them.
* ``Pipeline`` keeps a driver's entries in order: each goes in with the triples it
  will need (``validator.KeyLookahead``); chunks of entries go out to the
  scheduler; they come back in the same order with a ``validator.Verdicts`` that
  holds their chunk's outcomes. With ``in_flight`` set, at most that many chunks
  are out, so memory stays bounded on a stream of any length.
* ``check_leaves`` is the loop every reader of a log runs, a chunk at a time: read
  a chunk of leaves, send its signatures, apply the chunk sent ``in_flight`` chunks
  before, and at the end (or when the stream breaks) apply the rest, so an earlier
  defect is always named first. (``Pipeline`` does the same an entry at a time,
  for the writers, whose entries come one by one.)

A verdict computed here never decides on its own terms: a chunk whose
verification fails (an exception, a worker that died or answered out of step, a
wrong count) gives no verdicts, and the validator verifies those signatures on
the spot.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from redlist.ledger.cores import available_cores
from redlist.ledger.sigworkers import Stopped, VerifyPool, take_early, verify_here
from redlist.ledger.validator import Triple, Verdicts

#: Entries per chunk: big enough that handing a chunk over costs little beside
#: verifying it, small enough that the first verdicts come soon.
CHUNK_SIZE = 256
#: A chunk also closes once its entries hold this many bytes: with 64 KiB entries the
#: chunks in flight then hold tens of MiB, not hundreds.
CHUNK_BYTES = 8 * 1024 * 1024
#: Chunks out for verification at once when a driver bounds it: with two, the
#: workers find the next chunk waiting when one is done.
IN_FLIGHT = 2
#: ``check_leaves``' first chunk, and its smallest towards a known end: small enough
#: that the workers start soon and finish nearly together with the reader.
RAMP_CHUNK = 128
#: Entries from which a driver that may choose verifies on processes: starting a
#: worker process costs a few tenths of a second; below this, threads.
PROCESS_MIN_ENTRIES = 20_000
# Below this many signatures a hand-off costs more than it saves.
_PARALLEL_THRESHOLD = 4

_Item = TypeVar("_Item")
_Reading = TypeVar("_Reading")


class _Part(Protocol):
    """A part of a ticket's triples on its way: a thread's ``Future`` or a worker's
    ``sigworkers.Pending``."""

    def result(self) -> list[bool]: ...


class Ticket:
    """Verdicts on their way for one ``submit``; ``result`` waits for them."""

    __slots__ = ("_count", "_parts", "_triples")

    def __init__(self, triples: Sequence[Triple], parts: Sequence[_Part] | None) -> None:
        self._triples = triples
        self._parts = parts
        self._count = len(triples)

    def result(self) -> list[bool] | None:
        """Whether each triple verified, in order; None when that could not be learned
        (the validator then verifies on the spot)."""
        if self._parts is None:  # nothing handed over: verified here, now
            return verify_here(self._triples)
        outcomes: list[bool] = []
        try:
            for part in self._parts:
                outcomes.extend(part.result())
        except Exception:
            return None
        return outcomes if len(outcomes) == self._count else None


@dataclass(frozen=True)
class WorkerFigures:
    """A scheduler's worker processes: how many run now, how many replaced others."""

    running: int
    replaced: int


class SignatureScheduler:
    """Verifies triples in parallel; see the module docstring. Safe to share between
    threads (the node's commits do). Use as a context manager, or call ``close``.

    ``workers`` is the parallelism (default: one per available core). ``processes``
    starts that many worker processes now (they ready themselves while the caller
    goes on; threads verify until then); ``wait_started`` waits for them. With
    ``niceness``, they run that many steps nicer than the caller, so the caller's
    own threads have the cores first (a node's serial writer, ADR 0055). A caller's
    ``executor`` is used instead of threads, and left running.
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        processes: bool = False,
        executor: Executor | None = None,
        niceness: int = 0,
    ) -> None:
        self.workers = max(1, workers or available_cores())
        self._executor = executor
        self._threads: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()  # the node's commits submit from several threads
        self._closed = False
        self._pool: VerifyPool | None = None
        if processes and executor is None and self.workers >= 2:
            # The pool started early (``start_early``) runs at the caller's priority.
            early = take_early(self.workers) if niceness == 0 else None
            self._pool = early or VerifyPool(self.workers, niceness=niceness)

    @classmethod
    def for_entries(cls, entries: int, workers: int | None = None) -> SignatureScheduler:
        """A scheduler for about ``entries`` entries to check: on processes from
        ``PROCESS_MIN_ENTRIES`` on when there are several cores, else on threads."""
        count = max(1, workers or available_cores())
        return cls(count, processes=count >= 2 and entries >= PROCESS_MIN_ENTRIES)

    @property
    def uses_processes(self) -> bool:
        """Whether worker processes were started (they may still be starting)."""
        return self._pool is not None

    def wait_started(self) -> bool:
        """Wait (a fraction of a second) until the worker processes can verify."""
        return self._pool is None or self._pool.wait_started()

    def worker_processes(self) -> WorkerFigures | None:
        """How many worker processes run now and how many were started in place of
        ones that stopped; None without worker processes (``uses_processes``)."""
        pool = self._pool
        return None if pool is None else WorkerFigures(pool.running(), pool.replaced)

    def on_worker_replaced(self, report: Callable[[Stopped], None]) -> None:
        """Call ``report`` with each worker process that stopped, once a new one has
        taken its place (``sigworkers``)."""
        if self._pool is not None:
            self._pool.on_replace = report

    def submit(self, triples: Sequence[Triple]) -> Ticket:
        """Start verifying ``triples``; never waits for the verdicts."""
        if not triples:
            return Ticket(triples, [])
        if len(triples) < _PARALLEL_THRESHOLD:
            return Ticket(triples, None)
        pool = self._pool
        if pool is not None and pool.ready():
            try:
                return Ticket(triples, pool.submit(triples))
            except ValueError:  # closed meanwhile (a node stopping): verified when asked
                return Ticket(triples, None)
        executor = self._executor
        if executor is None:
            executor = self._thread_pool() if self.workers > 1 else None
            if executor is None:  # one core, or closed: verified when asked
                return Ticket(triples, None)
        share = -(-len(triples) // self.workers)
        return Ticket(
            triples,
            [
                executor.submit(verify_here, triples[begin : begin + share])
                for begin in range(0, len(triples), share)
            ],
        )

    def verify(self, triples: Sequence[Triple]) -> list[bool]:
        """Whether each triple verified, in order; waits for all of them."""
        outcomes = self.submit(triples).result()
        return verify_here(triples) if outcomes is None else outcomes

    def close(self) -> None:
        """Stop the threads and processes (a share still in flight is then verified by
        the thread that waits for it). May be repeated; what is submitted afterwards
        (a node's commit while it stops) is verified when its verdicts are asked for."""
        with self._lock:
            self._closed = True
            threads, self._threads = self._threads, None
        if threads is not None:
            threads.shutdown(wait=True, cancel_futures=True)
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self) -> SignatureScheduler:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _thread_pool(self) -> ThreadPoolExecutor | None:
        """The scheduler's threads, started on first use; None once it is closed."""
        with self._lock:
            if self._closed:
                return None
            if self._threads is None:
                self._threads = ThreadPoolExecutor(
                    max_workers=self.workers, thread_name_prefix="redlist-verify"
                )
            return self._threads


class _Chunk(Generic[_Item]):
    """The entries of one chunk, the triples they need, and the ticket of its verdicts."""

    def __init__(self) -> None:
        self.items: list[_Item] = []
        self.triples: list[Triple] = []
        self.ticket: Ticket | None = None
        self.size = 0


class Pipeline(Generic[_Item]):
    """Entries in, the same entries out in order, each with its chunk's verdicts.

    ``put`` takes an entry and the triples it needs, and returns the entries whose
    chunk left the in-flight window (waiting for its verdicts); ``flush`` sends the
    open chunk; ``drain`` returns everything still held, in order, waiting for each
    chunk only when its first entry is reached. ``in_flight`` None sends every chunk
    at once (a node's batch, whose size is bounded anyway).
    """

    def __init__(
        self,
        scheduler: SignatureScheduler,
        *,
        chunk_size: int = CHUNK_SIZE,
        chunk_bytes: int = CHUNK_BYTES,
        in_flight: int | None = IN_FLIGHT,
    ) -> None:
        if chunk_size < 1 or (in_flight is not None and in_flight < 1):
            raise ValueError("a pipeline needs chunks of at least one entry, one in flight")
        self._scheduler = scheduler
        self._chunk_size = chunk_size
        self._chunk_bytes = chunk_bytes
        self._in_flight = in_flight
        self._open: _Chunk[_Item] = _Chunk()
        self._sent: deque[_Chunk[_Item]] = deque()

    def put(
        self, item: _Item, triples: Sequence[Triple], size: int = 0
    ) -> list[tuple[_Item, Verdicts]]:
        """Queue ``item`` (``size``: its bytes); the entries now due, in order (mostly none)."""
        chunk = self._open
        chunk.items.append(item)
        chunk.size += size
        if triples:
            chunk.triples.extend(triples)
        if len(chunk.items) < self._chunk_size and chunk.size < self._chunk_bytes:
            return []
        self.flush()
        if self._in_flight is None or len(self._sent) <= self._in_flight:
            return []
        return self._collect(self._sent.popleft())

    def flush(self) -> None:
        """Send the open chunk for verification now."""
        chunk = self._open
        if chunk.items:
            chunk.ticket = self._scheduler.submit(chunk.triples)
            self._sent.append(chunk)
            self._open = _Chunk()

    def drain(self) -> Iterable[tuple[_Item, Verdicts]]:
        """Every entry still held, in order, each once its chunk's verdicts are in."""
        self.flush()
        while self._sent:
            yield from self._collect(self._sent.popleft())

    @staticmethod
    def _collect(chunk: _Chunk[_Item]) -> list[tuple[_Item, Verdicts]]:
        verdicts = Verdicts()
        if chunk.ticket is not None and chunk.triples:
            verdicts.add(chunk.triples, chunk.ticket.result())
        return [(item, verdicts) for item in chunk.items]


class LeafChecker(Protocol[_Reading]):
    """What ``check_leaves`` drives: a ``LogValidator``, or a checker built on one."""

    def read_all(self, raws: list[bytes]) -> list[_Reading]: ...
    def signatures_of(self, readings: list[_Reading]) -> list[Triple]: ...
    def apply(self, reading: _Reading, verdicts: Callable[[bytes, bytes, bytes], bool]) -> object:
        """Check the next reading, ``verdicts`` (a ``Verdicts``' ``__call__``) deciding
        its signatures."""
        ...


def check_leaves(
    checker: LeafChecker[_Reading],
    leaves: Iterable[bytes],
    scheduler: SignatureScheduler,
    *,
    chunk_size: int = CHUNK_SIZE,
    in_flight: int = IN_FLIGHT,
    chunk_bytes: int = CHUNK_BYTES,
    total: int | None = None,
) -> int:
    """Run every leaf of ``leaves`` through ``checker``, verifying signatures ahead on
    ``scheduler``; the number of leaves read.

    Leaves go in chunks of ``chunk_size`` (or ``chunk_bytes``): a chunk is read, its
    signatures sent for verification, and it is applied once ``in_flight`` chunks
    after it have been sent, so the per-leaf work is a few list operations. An
    exception the stream raises (a leaves file that cannot be split, a node that stops
    answering) is raised after every leaf read before it was applied, so a defect in
    those is reported first. One the checker raises is raised at once.

    The first chunks are smaller (from ``RAMP_CHUNK``, doubling), so the workers
    start soon; with ``total`` (the leaves expected) the last ones are too, so little
    is left to apply once the last verdicts are in, while the workers stand idle.
    """
    if chunk_size < 1 or in_flight < 1:
        raise ValueError("leaves are checked in chunks of at least one, one in flight")
    read_all, signatures_of, apply = checker.read_all, checker.signatures_of, checker.apply
    sent: deque[tuple[list[_Reading], list[Triple], Ticket]] = deque()

    def settle(chunk: tuple[list[_Reading], list[Triple], Ticket]) -> None:
        readings, triples, ticket = chunk
        verdicts = Verdicts()
        if triples:
            verdicts.add(triples, ticket.result())
        check = verdicts.__call__  # called for every signature: a bound method is quicker
        for reading in readings:
            apply(reading, check)

    chunks = _chunks(leaves, chunk_size, chunk_bytes, total)
    count = 0
    while True:
        try:
            batch = next(chunks)
        except StopIteration:
            break
        except Exception:
            while sent:
                settle(sent.popleft())
            raise
        count += len(batch)
        readings = read_all(batch)
        triples = signatures_of(readings)
        sent.append((readings, triples, scheduler.submit(triples)))
        if len(sent) > in_flight:
            settle(sent.popleft())
    while sent:
        settle(sent.popleft())
    return count


def _chunks(
    leaves: Iterable[bytes], chunk_size: int, chunk_bytes: int, total: int | None = None
) -> Iterator[list[bytes]]:
    """``leaves`` in lists of at most ``chunk_size`` leaves (fewer once they hold
    ``chunk_bytes``), smaller at the start and, with ``total``, towards the end (see
    ``check_leaves``). An exception the stream raises comes after a list of the
    leaves read before it."""
    batch: list[bytes] = []
    size = 0
    read = 0
    limit = min(chunk_size, RAMP_CHUNK)
    try:
        for raw in leaves:
            batch.append(raw)
            size += len(raw)
            if len(batch) >= limit or size >= chunk_bytes:
                read += len(batch)
                yield batch
                batch, size = [], 0
                limit = min(chunk_size, 2 * limit)
                if total is not None:  # a quarter of what is left, at least a ramp chunk
                    limit = min(limit, max(RAMP_CHUNK, (total - read) // 4))
    except Exception:
        if batch:
            yield batch
        raise
    if batch:
        yield batch


__all__ = [
    "CHUNK_BYTES",
    "CHUNK_SIZE",
    "IN_FLIGHT",
    "PROCESS_MIN_ENTRIES",
    "RAMP_CHUNK",
    "LeafChecker",
    "Pipeline",
    "SignatureScheduler",
    "Ticket",
    "WorkerFigures",
    "check_leaves",
]
