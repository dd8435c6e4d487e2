"""Shared commits: grouping, per-batch atomicity inside a group, bounds, shutdown, TreeWatch."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import pytest
from tests.builders import Town, create_log

from redlist.ledger.crypto import SigningKey
from redlist.ledger.errors import (
    BatchError,
    ConflictError,
    FormatError,
    IntegrityError,
    RuleViolation,
    StoreError,
)
from redlist.ledger.log import AppendResult, Log
from redlist.ledger.note.checkpoint import Checkpoint, sign_checkpoint
from redlist.ledger.note.keys import NoteSigner
from redlist.node.batcher import SHUTTING_DOWN, Batcher, CommitReport, TreeWatch, commit_group
from redlist.node.refusals import refusal_of


@pytest.fixture
def town() -> Town:
    return Town.generate()


@pytest.fixture
def log(tmp_path: Path, town: Town) -> Iterator[Log]:
    with create_log(tmp_path / "data", town, setup=True) as opened:
        yield opened


# ---------------------------------------------------------------------------
# commit_group on a real log


def test_good_batches_share_one_commit(log: Log, town: Town) -> None:
    batches = [[town.award(f"resident-{n}", "clean-pond") for _ in range(3)] for n in range(4)]
    size = log.size
    outcomes, reports = commit_group(log, batches, lambda: town.now_ms)
    assert [report.batches for report in reports] == [4]
    assert reports[0].envelopes == 12
    assert (reports[0].first_seq, reports[0].last_seq, reports[0].tree_size) == (
        size,
        size + 11,
        size + 12,
    )
    for number, outcome in enumerate(outcomes):
        assert isinstance(outcome, AppendResult)
        assert outcome.seqs == tuple(range(size + 3 * number, size + 3 * number + 3))
        assert outcome.checkpoint == log.checkpoint()


def test_a_refused_batch_fails_alone_and_the_others_are_committed(log: Log, town: Town) -> None:
    good_a = [town.award("resident-1", "clean-pond"), town.award("resident-1", "litter")]
    bad_rule = [town.award("resident-2", "clean-pond"), town.award("resident-2", "V99")]
    good_c = [town.award("resident-3", "clean-pond")]
    good_d = [town.award("resident-4", "clean-pond")]
    size = log.size
    outcomes, reports = commit_group(log, [good_a, bad_rule, good_c, good_d], lambda: town.now_ms)

    refusal = outcomes[1]
    assert isinstance(refusal, BatchError)
    assert refusal.index == 1  # its own index, not the group's
    assert isinstance(refusal.cause, RuleViolation)
    assert refusal.cause.check == "rule-inactive"
    # The batch before the refusal went first on its own, the rest together after it.
    assert [report.batches for report in reports] == [1, 2]
    assert isinstance(outcomes[0], AppendResult) and outcomes[0].seqs == (size, size + 1)
    assert isinstance(outcomes[2], AppendResult) and outcomes[2].seqs == (size + 2,)
    assert isinstance(outcomes[3], AppendResult) and outcomes[3].seqs == (size + 3,)
    assert log.size == size + 4
    assert log.account("resident-2").entries == ()


def test_malformed_and_refused_batches_in_one_group(log: Log, town: Town) -> None:
    good = [[town.award(f"resident-{n}", "clean-pond")] for n in range(3)]
    refused_first = [town.award("resident-9", "V99")]
    malformed = [town.award("resident-8", "clean-pond"), b"\x00"]
    size = log.size
    batches = [refused_first, good[0], malformed, good[1], good[2]]
    outcomes, reports = commit_group(log, batches, lambda: town.now_ms)

    assert isinstance(outcomes[0], BatchError) and outcomes[0].index == 0
    assert isinstance(outcomes[0].cause, RuleViolation)
    assert isinstance(outcomes[2], BatchError) and outcomes[2].index == 1
    assert isinstance(outcomes[2].cause, FormatError)
    committed = [outcome for outcome in outcomes if isinstance(outcome, AppendResult)]
    assert sorted(seq for result in committed for seq in result.seqs) == [size, size + 1, size + 2]
    assert len(reports) <= 3
    assert log.size == size + 3


def test_later_batches_of_a_group_see_the_earlier_ones(log: Log, town: Town) -> None:
    award = [town.award("resident-1", "epidemic-duty", 2)]
    redeem = [town.redeem("resident-1", 15)]
    outcomes, reports = commit_group(log, [award, redeem], lambda: town.now_ms)
    assert all(isinstance(outcome, AppendResult) for outcome in outcomes)
    assert len(reports) == 1
    assert log.account("resident-1").spendable == 5


def test_an_id_reused_across_batches_of_a_group_is_a_conflict(log: Log, town: Town) -> None:
    entry_id = bytes(16)
    first = [town.award("resident-1", "clean-pond", entry_id=entry_id)]
    second = [town.award("resident-2", "clean-pond", entry_id=entry_id)]
    again = [town.award("resident-1", "clean-pond", entry_id=entry_id)]  # same bytes: fine
    size = log.size
    outcomes, _ = commit_group(log, [first, second, again], lambda: town.now_ms)
    assert isinstance(outcomes[0], AppendResult) and outcomes[0].seqs == (size,)
    assert isinstance(outcomes[1], BatchError) and isinstance(outcomes[1].cause, ConflictError)
    assert isinstance(outcomes[2], AppendResult) and outcomes[2].seqs == (size,)
    assert log.size == size + 1


class FakeLog:
    """An appender that numbers envelopes, records its calls and can be held at a gate."""

    def __init__(self, failure: Exception | None = None) -> None:
        self.calls: list[list[bytes]] = []
        self.size = 0
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.failure = failure
        self._signer = NoteSigner("fake.example/log", SigningKey.from_seed(bytes(32)))

    def append(self, envelopes: Sequence[bytes], now_ms: int) -> AppendResult:
        self.entered.set()
        assert self.gate.wait(10)
        if self.failure is not None:
            raise self.failure
        self.calls.append(list(envelopes))
        seqs = tuple(range(self.size, self.size + len(envelopes)))
        self.size += len(envelopes)
        checkpoint = sign_checkpoint(
            Checkpoint("fake.example/log", self.size, bytes(32)), self._signer
        )
        return AppendResult(seqs, checkpoint)


def test_a_store_failure_answers_every_batch_of_the_group() -> None:
    failure = StoreError("the ledger's storage is full")
    outcomes, reports = commit_group(FakeLog(failure), [[b"a"], [b"b", b"c"]])
    assert outcomes == [failure, failure]
    assert reports == []


# ---------------------------------------------------------------------------
# The async queue


def test_batches_that_wait_meanwhile_are_committed_together() -> None:
    fake = FakeLog()
    reports: list[CommitReport] = []

    async def main() -> None:
        batcher = Batcher(fake, max_group=100, depth=1, on_commit=reports.append)
        batcher.start()
        fake.gate.clear()
        first = asyncio.create_task(batcher.submit([b"first"]))
        await asyncio.to_thread(fake.entered.wait, 10)  # the first commit is under way
        rest = [asyncio.create_task(batcher.submit([b"x%d" % n, b"y%d" % n])) for n in range(5)]
        await asyncio.sleep(0.05)
        fake.gate.set()
        assert (await first).seqs == (0,)
        results = await asyncio.gather(*rest)
        assert [result.seqs for result in results] == [(1 + 2 * n, 2 + 2 * n) for n in range(5)]
        await batcher.close()

    asyncio.run(main())
    assert [len(call) for call in fake.calls] == [1, 10]
    assert [report.batches for report in reports] == [1, 5]
    assert reports[-1].tree_size == 11


def test_a_group_never_exceeds_its_envelope_bound() -> None:
    fake = FakeLog()

    async def main() -> None:
        batcher = Batcher(fake, max_group=6, depth=1)
        batcher.start()
        fake.gate.clear()
        first = asyncio.create_task(batcher.submit([b"e"] * 4))
        await asyncio.to_thread(fake.entered.wait, 10)
        tasks = [first] + [
            asyncio.create_task(batcher.submit([b"e"] * size)) for size in (1, 1, 5, 9)
        ]
        await asyncio.sleep(0.05)
        fake.gate.set()
        await asyncio.gather(*tasks)
        await batcher.close()

    asyncio.run(main())
    # Whole batches only; a batch larger than the bound still goes, alone.
    assert [len(call) for call in fake.calls] == [4, 2, 5, 9]


def test_a_batch_whose_caller_left_before_its_commit_is_dropped() -> None:
    fake = FakeLog()

    async def main() -> None:
        batcher = Batcher(fake, max_group=100, depth=1)
        batcher.start()
        fake.gate.clear()
        first = asyncio.create_task(batcher.submit([b"first"]))
        await asyncio.to_thread(fake.entered.wait, 10)
        gone = asyncio.create_task(batcher.submit([b"gone"]))
        kept = asyncio.create_task(batcher.submit([b"kept"]))
        await asyncio.sleep(0.01)
        gone.cancel()
        fake.gate.set()
        await asyncio.gather(first, kept)
        await batcher.close()

    asyncio.run(main())
    assert fake.calls == [[b"first"], [b"kept"]]


def test_close_finishes_commits_in_flight_and_refuses_new_batches() -> None:
    fake = FakeLog()

    async def main() -> None:
        batcher = Batcher(fake, max_group=100, depth=2)
        batcher.start()
        fake.gate.clear()
        in_flight = asyncio.create_task(batcher.submit([b"a", b"b"]))
        await asyncio.to_thread(fake.entered.wait, 10)
        closing = asyncio.create_task(batcher.close())
        await asyncio.sleep(0.05)
        assert not closing.done()  # it waits for the commit under way
        with pytest.raises(StoreError, match="shutting down"):
            await batcher.submit([b"late"])
        fake.gate.set()
        assert (await in_flight).seqs == (0, 1)
        await closing

    asyncio.run(main())
    assert fake.calls == [[b"a", b"b"]]


def test_an_unexpected_failure_reaches_every_caller() -> None:
    fake = FakeLog(failure=RuntimeError("boom"))

    async def main() -> None:
        batcher = Batcher(fake, max_group=100, depth=1)
        batcher.start()
        results = await asyncio.gather(
            batcher.submit([b"a"]), batcher.submit([b"b"]), return_exceptions=True
        )
        assert all(isinstance(result, RuntimeError) for result in results)
        await batcher.close()

    asyncio.run(main())


# ---------------------------------------------------------------------------
# TreeWatch and the status mapping of errors that are not refusals


def test_tree_watch_wakes_waiters_on_growth_and_on_close() -> None:
    async def main() -> None:
        watch = TreeWatch(5)
        waiter = asyncio.create_task(watch.wait_beyond(5))
        await asyncio.sleep(0)
        watch.publish(5)  # not beyond 5
        await asyncio.sleep(0.01)
        assert not waiter.done()
        watch.publish(7)
        assert await waiter is True
        watch.publish(6)  # a late, smaller report changes nothing
        assert watch.size == 7
        assert await watch.wait_beyond(6) is True
        closed = asyncio.create_task(watch.wait_beyond(7))
        await asyncio.sleep(0)
        watch.close()
        assert await closed is False

    asyncio.run(main())


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (StoreError(SHUTTING_DOWN), grpc.StatusCode.UNAVAILABLE),
        (IntegrityError("leaf 3 is missing", 3), grpc.StatusCode.INTERNAL),
        (RuntimeError("a bug"), grpc.StatusCode.INTERNAL),
        (
            BatchError(ConflictError("entry id ab is already in the log"), index=4),
            grpc.StatusCode.ALREADY_EXISTS,
        ),
    ],
)
def test_errors_that_are_not_rule_refusals_map_to_statuses(
    error: Exception, code: grpc.StatusCode
) -> None:
    refusal = refusal_of(error)
    assert refusal.code == code
    assert refusal.message
    if isinstance(error, BatchError):
        assert dict(refusal.trailing_metadata()) == {
            "redlist-index": "4",
            "redlist-check": "duplicate-id",
        }
    else:
        assert refusal.trailing_metadata() == ()
        assert "a bug" not in refusal.message  # internals stay in the node's log
