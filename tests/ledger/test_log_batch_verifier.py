"""``Log.verify_signatures_with``: a batch's signatures go to the given scheduler in chunks
while the writer goes on, and a scheduler never decides a verdict that verifying on the
spot would not."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from tests.builders import Town, corrupt_signature, create_log

from redlist.ledger import append as append_module
from redlist.ledger.errors import BatchError, RuleViolation
from redlist.ledger.log import Log
from redlist.ledger.sigschedule import SignatureScheduler

Triples = list[tuple[bytes, bytes, bytes]]


@pytest.fixture
def town() -> Town:
    return Town.from_seed(b"batch-verifier")


@pytest.fixture
def log(tmp_path: Path, town: Town) -> Iterator[Log]:
    with create_log(tmp_path / "data", town, setup=True) as opened:
        yield opened


class Recording(ThreadPoolExecutor):
    """A caller's executor that remembers how many signatures each hand-over held."""

    def __init__(self) -> None:
        super().__init__(max_workers=2, thread_name_prefix="recording")
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self.lock:
            self.calls.append(len(args[0]))
        return super().submit(fn, *args, **kwargs)


class Answering(ThreadPoolExecutor):
    """An executor whose every answer is ``answer(triples)``."""

    def __init__(self, answer: Callable[[Triples], list[bool]]) -> None:
        super().__init__(max_workers=1)
        self.answer = answer

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return super().submit(self.answer, args[0])


def test_the_scheduler_gets_every_signature_in_chunks(
    log: Log, town: Town, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(append_module, "CHUNK_SIZE", 16)
    with Recording() as executor, SignatureScheduler(1, executor=executor) as scheduler:
        log.verify_signatures_with(scheduler)
        start = log.size
        batch = [town.award(f"resident-{n}", "clean-pond") for n in range(50)]
        assert log.append(batch, now_ms=town.now_ms).seqs == tuple(range(start, start + 50))
        assert executor.calls == [16, 16, 16]  # the last 2 are verified where they are needed
        log.verify_signatures_with(None)
        assert log.append([town.award("resident-1", "clean-pond")], now_ms=town.now_ms).seqs
        assert sum(executor.calls) == 48  # back on the log's own threads


@pytest.mark.parametrize("position", [0, 17, 49])
def test_a_forged_signature_is_refused_wherever_it_is(
    log: Log, town: Town, monkeypatch: pytest.MonkeyPatch, position: int
) -> None:
    monkeypatch.setattr(append_module, "CHUNK_SIZE", 16)
    size = log.size
    batch = [town.award(f"resident-{n}", "clean-pond") for n in range(50)]
    batch[position] = corrupt_signature(batch[position])
    with Recording() as executor, SignatureScheduler(2, executor=executor) as scheduler:
        log.verify_signatures_with(scheduler)
        with pytest.raises(BatchError) as refused:
            log.append(batch, now_ms=town.now_ms)
    assert refused.value.index == position
    assert isinstance(refused.value.cause, RuleViolation)
    assert refused.value.cause.check == "signature"
    assert log.size == size


def lying(triples: Triples) -> list[bool]:
    return [True] * (len(triples) + 1)  # one verdict too many: not to be believed


def failing(triples: Triples) -> list[bool]:
    raise OSError("the worker went away")


@pytest.mark.parametrize("answer", [lying, failing], ids=["wrong-count", "error"])
def test_a_scheduler_that_fails_leaves_the_verdicts_to_the_validator(
    log: Log, town: Town, answer: Callable[[Triples], list[bool]]
) -> None:
    good = [town.award(f"resident-{n}", "clean-pond") for n in range(8)]
    bad = [*good[:3], corrupt_signature(good[3]), *good[4:]]
    with Answering(answer) as executor, SignatureScheduler(1, executor=executor) as scheduler:
        log.verify_signatures_with(scheduler)
        with pytest.raises(BatchError) as refused:
            log.append(bad, now_ms=town.now_ms)
        assert refused.value.index == 3
        size = log.size
        assert log.append(good, now_ms=town.now_ms).seqs == tuple(range(size, size + 8))


def test_concurrent_appends_share_one_scheduler(log: Log, town: Town) -> None:
    batches = [[town.award(f"r-{b}-{n}", "clean-pond") for n in range(40)] for b in range(4)]
    errors: list[BaseException] = []

    def append(batch: list[bytes]) -> None:
        try:
            log.append(batch, now_ms=town.now_ms)
        except BaseException as error:
            errors.append(error)

    with Recording() as executor, SignatureScheduler(1, executor=executor) as scheduler:
        log.verify_signatures_with(scheduler)
        threads = [threading.Thread(target=append, args=(batch,)) for batch in batches]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors
    assert sum(executor.calls) == 160
    assert log.size == 11 + 160
