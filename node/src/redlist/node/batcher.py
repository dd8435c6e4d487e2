"""Shared commits: concurrent Submit batches grouped into few durable write transactions.

Every commit costs an fsync, and a batch's signatures are checked in parallel, so
one commit of many batches is much cheaper than many commits of one. Submit calls
put their batch in a queue; a committer takes every whole batch that is waiting
(up to ``max_group`` envelopes) and appends them as one group. Up to ``depth``
groups are in flight at once, so one group's signatures are checked while the
previous one is written.

Each batch stays atomic on its own. ``Log.append`` commits a sequence all or
nothing, so a group is first tried as one append; when it is refused, the refused
batch is found from the envelope index and decided alone, and the others are
committed without it (see :func:`commit_group`). A batch is answered only after
the commit that holds it is durable.

:class:`TreeWatch` tells ``Follow`` streams that the log grew.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from redlist.ledger.append import Incoming
from redlist.ledger.errors import BatchError, FormatError, RedlistError, StoreError
from redlist.ledger.log import AppendResult
from redlist.node.detach import without_frames

logger = logging.getLogger(__name__)

SHUTTING_DOWN = (
    "the node is shutting down and takes no new entries; nothing of this batch was "
    "stored, send it again once the node is back"
)


class Appender(Protocol):
    """What the batcher needs of a log (``redlist.ledger.log.Log`` provides it)."""

    def append(self, envelopes: Sequence[Incoming], now_ms: int) -> AppendResult: ...


@dataclass(frozen=True)
class CommitReport:
    """One durable commit: how many batches and envelopes it held and where they went."""

    batches: int
    envelopes: int
    first_seq: int
    last_seq: int
    tree_size: int
    seconds: float


#: What became of one batch of a group: its result, or why it was refused.
Outcome = AppendResult | Exception


def now_ms() -> int:
    """The node's clock: milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


def commit_group(
    log: Appender, batches: Sequence[Sequence[Incoming]], clock: Callable[[], int] = now_ms
) -> tuple[list[Outcome], list[CommitReport]]:
    """Commit ``batches``, each atomically, in as few appends as possible. Blocking.

    Returns each batch's outcome (in order) and a report of every commit made.

    1. All batches are appended together. Usually that is all.
    2. When the append is refused (``BatchError``), the envelope index gives the
       refused batch. A malformed envelope is refused whatever the log holds, so
       that batch is answered at once. For a rule refusal, the batches before it
       passed every check in the same transaction, so they are committed together
       first; the refusal then stands as computed (the log is now exactly what it
       was checked against).
    3. The batches after it are tried together once more, and if that is refused
       too, one by one. The work is therefore bounded: at most three group
       appends, then one append per batch.
    """
    group = _GroupCommit(log, batches, clock)
    group.run()
    return group.outcomes(), group.reports


class _GroupCommit:
    def __init__(
        self, log: Appender, batches: Sequence[Sequence[Incoming]], clock: Callable[[], int]
    ) -> None:
        self._log = log
        self._batches = batches
        self._clock = clock
        self._outcomes: list[Outcome | None] = [None] * len(batches)
        self.reports: list[CommitReport] = []

    def outcomes(self) -> list[Outcome]:
        missing = StoreError("internal error: a batch was left undecided; nothing was stored")
        return [missing if outcome is None else outcome for outcome in self._outcomes]

    def run(self) -> None:
        everything = list(range(len(self._batches)))
        refusal = self._attempt(everything)
        if refusal is None:
            return
        rest = self._settle_first_refusal(everything, refusal)
        if len(rest) > 1:
            refusal = self._attempt(rest)
            if refusal is None:
                return
        self._one_by_one(rest)

    def _attempt(self, members: list[int]) -> BatchError | None:
        """Append the batches ``members`` as one; None when they are settled.

        A refusal is returned (nothing settled); a store failure settles them all.
        """
        envelopes = [envelope for member in members for envelope in self._batches[member]]
        started = time.perf_counter()
        try:
            result = self._log.append(envelopes, self._clock())
        except BatchError as refusal:
            without_frames(refusal)  # kept beside the group (self): no frames, no cycle
            if len(members) == 1:
                self._outcomes[members[0]] = refusal
                return None
            return refusal
        except RedlistError as error:  # the store could not take it: nothing was written
            for member in members:
                self._outcomes[member] = without_frames(error)
            return None
        seconds = time.perf_counter() - started
        offset = 0
        for member in members:
            count = len(self._batches[member])
            seqs = result.seqs[offset : offset + count]
            self._outcomes[member] = AppendResult(seqs, result.checkpoint)
            offset += count
        if not result.seqs:
            return None  # empty batches: nothing was committed, nothing to report
        self.reports.append(
            CommitReport(
                batches=len(members),
                envelopes=len(envelopes),
                first_seq=min(result.seqs),
                last_seq=max(result.seqs),
                tree_size=result.checkpoint.size,
                seconds=seconds,
            )
        )
        return None

    def _locate(self, members: list[int], index: int) -> tuple[int, int]:
        """Which of ``members`` holds envelope ``index`` of the group, and its index there."""
        for position, member in enumerate(members):
            count = len(self._batches[member])
            if index < count:
                return position, index
            index -= count
        raise StoreError(f"internal error: envelope {index} lies beyond the group")

    def _settle_first_refusal(self, members: list[int], refusal: BatchError) -> list[int]:
        """Answer the refused batch; return the batches still to be decided."""
        position, local_index = self._locate(members, refusal.index)
        refused = members[position]
        own_refusal = BatchError(refusal.cause, index=local_index)
        if isinstance(refusal.cause, FormatError) or position == 0:
            self._outcomes[refused] = own_refusal
            return members[:position] + members[position + 1 :]
        before = members[:position]
        if self._attempt(before) is None and all(
            isinstance(self._outcomes[member], AppendResult) for member in before
        ):
            self._outcomes[refused] = own_refusal
            return members[position + 1 :]
        # The log changed under us (another commit), or could not store: decide anew.
        return [member for member in members if self._outcomes[member] is None]

    def _one_by_one(self, members: list[int]) -> None:
        for member in members:
            if self._outcomes[member] is None:
                self._attempt([member])


@dataclass(eq=False)
class _Request:
    envelopes: tuple[Incoming, ...]
    future: asyncio.Future[AppendResult]


class Batcher:
    """The Submit queue and its committer. Create, :meth:`start` on the loop, :meth:`close`.

    ``max_group`` bounds the envelopes of one shared commit (a batch larger than
    that still goes alone); ``depth`` is how many commits may be in flight.
    ``on_commit`` is called on the event loop after every durable commit.
    """

    def __init__(
        self,
        log: Appender,
        *,
        max_group: int,
        depth: int,
        on_commit: Callable[[CommitReport], None] | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        if max_group < 1 or depth < 1:
            raise StoreError("the group size and commit depth must be at least 1")
        self._log = log
        self._max_group = max_group
        self._on_commit = on_commit
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=depth, thread_name_prefix="redlist-commit")
        self._waiting: deque[_Request] = deque()
        self._arrived = asyncio.Event()
        self._slots = asyncio.Semaphore(depth)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        """Start the committer on the running event loop."""
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name="redlist-committer")

    async def submit(self, envelopes: Sequence[Incoming]) -> AppendResult:
        """Commit ``envelopes`` atomically and durably, possibly with other batches.

        ``envelopes`` are bytes, or decoded already (``append.decode_each``).
        Raises ``BatchError`` (this batch refused, nothing of it written) or
        ``StoreError`` (nothing could be stored, or the node is shutting down).
        """
        if self._closing:
            raise StoreError(SHUTTING_DOWN)
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Request(tuple(envelopes), future))
        self._arrived.set()
        try:
            return await future
        finally:
            # A refusal raised here keeps this frame in its traceback, and the future
            # keeps the refusal: without this the two (and the batch) form a cycle.
            del future

    async def close(self) -> None:
        """Take no more batches; commit what is queued, wait for what is in flight.

        A batch whose caller has gone (its call was cancelled) before its commit
        started is dropped, never half done.
        """
        self._closing = True
        self._arrived.set()
        if self._runner is not None:
            await self._runner
        while self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        for request in self._waiting:  # only when the committer never ran
            if not request.future.done():
                request.future.set_exception(StoreError(SHUTTING_DOWN))
        self._waiting.clear()
        await asyncio.to_thread(self._executor.shutdown, True)

    async def _run(self) -> None:
        while True:
            await self._slots.acquire()
            group = await self._next_group()
            if group is None:
                self._slots.release()
                return
            task = asyncio.create_task(self._commit(group))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _next_group(self) -> list[_Request] | None:
        """The waiting batches for one commit, oldest first; None once closed and empty."""
        while True:
            while self._waiting and self._waiting[0].future.done():
                self._waiting.popleft()  # its caller has gone
            if self._waiting:
                break
            if self._closing:
                return None
            self._arrived.clear()
            await self._arrived.wait()
        first = self._waiting.popleft()
        group, envelopes = [first], len(first.envelopes)
        while self._waiting:
            request = self._waiting[0]
            if request.future.done():
                self._waiting.popleft()
                continue
            if envelopes + len(request.envelopes) > self._max_group:
                break
            group.append(self._waiting.popleft())
            envelopes += len(request.envelopes)
        return group

    async def _commit(self, group: list[_Request]) -> None:
        loop = asyncio.get_running_loop()
        outcomes: Sequence[Outcome]
        try:
            outcomes, reports = await loop.run_in_executor(
                self._executor,
                commit_group,
                self._log,
                [request.envelopes for request in group],
                self._clock,
            )
        except Exception as error:  # a bug, not a refusal: answer every caller with it
            logger.exception("commit failed unexpectedly")
            outcomes, reports = [without_frames(error)] * len(group), []
        finally:
            self._slots.release()
        for request, outcome in zip(group, outcomes, strict=True):
            if request.future.done():
                continue  # its caller has gone; the entries stay committed
            if isinstance(outcome, AppendResult):
                request.future.set_result(outcome)
            else:
                request.future.set_exception(outcome)
        for report in reports:
            logger.info(
                "commit batches=%d envelopes=%d seqs=%d-%d tree_size=%d ms=%.1f",
                report.batches,
                report.envelopes,
                report.first_seq,
                report.last_seq,
                report.tree_size,
                report.seconds * 1000,
            )
            if self._on_commit is not None:
                try:
                    self._on_commit(report)
                except Exception:  # a metrics or watch failure must not stop the committer
                    logger.exception("handling a commit report failed")


class TreeWatch:
    """The latest committed tree size, and a way to wait for it to grow (for Follow).

    ``touch`` says that what is served beside the tree changed at the same size (new
    cosignature lines on the latest checkpoint): ``wait_change`` wakes for it too, so
    a ``Follow`` stream sends the checkpoint again with its new lines.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._version = 0
        self._grown = asyncio.Event()
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def version(self) -> int:
        """Counts ``touch`` calls; read it before the size, then ``wait_change``."""
        return self._version

    def publish(self, size: int) -> None:
        """The log now has ``size`` entries (smaller, late reports are ignored)."""
        if size > self._size:
            self._size = size
            self._wake()

    def touch(self) -> None:
        """The checkpoint served at the current size changed (it gained cosignatures)."""
        self._version += 1
        self._wake()

    def _wake(self) -> None:
        grown, self._grown = self._grown, asyncio.Event()
        grown.set()

    def close(self) -> None:
        """Wake every waiter for good: the node is shutting down."""
        self._closed = True
        self._grown.set()

    async def wait_beyond(self, size: int) -> bool:
        """Wait until the tree is larger than ``size``; False when the watch was closed."""
        while self._size <= size and not self._closed:
            await self._grown.wait()
        return not self._closed

    async def wait_change(self, size: int, version: int) -> bool:
        """Wait until the tree is larger than ``size`` or touched since ``version``.

        False when the watch was closed.
        """
        while self._size <= size and self._version == version and not self._closed:
            await self._grown.wait()
        return not self._closed
