"""``Log.verify_signatures_with``: a batch verifier (the node's worker processes) is fed
the batch's signatures in chunks while the writer goes on, and never decides a verdict
that verifying on the spot would not."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.builders import Town, corrupt_signature, create_log

from redlist.ledger import crypto
from redlist.ledger import log as log_module
from redlist.ledger.errors import BatchError, RuleViolation
from redlist.ledger.log import Log

Triples = list[tuple[bytes, bytes, bytes]]


@pytest.fixture
def town() -> Town:
    return Town.from_seed(b"batch-verifier")


@pytest.fixture
def log(tmp_path: Path, town: Town) -> Iterator[Log]:
    with create_log(tmp_path / "data", town, setup=True) as opened:
        yield opened


class Recording:
    """A batch verifier that verifies for real and remembers what it was given, where."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.threads: set[str] = set()

    def __call__(self, triples: Triples) -> list[bool]:
        self.calls.append(len(triples))
        self.threads.add(threading.current_thread().name)
        return [crypto.verify_entry(public, body, sig) for public, body, sig in triples]


def test_the_verifier_gets_every_signature_in_chunks(
    log: Log, town: Town, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_module, "_STREAM_CHUNK", 16)
    verifier = Recording()
    log.verify_signatures_with(verifier)
    start = log.size
    batch = [town.award(f"resident-{n}", "clean-pond") for n in range(50)]
    assert log.append(batch, now_ms=town.now_ms).seqs == tuple(range(start, start + 50))
    assert verifier.calls == [16, 16, 16, 2]
    assert threading.current_thread().name not in verifier.threads
    log.verify_signatures_with(None)
    assert log.append([town.award("resident-1", "clean-pond")], now_ms=town.now_ms).seqs
    assert sum(verifier.calls) == 50  # back on threads: the verifier is not asked again


@pytest.mark.parametrize("position", [0, 17, 49])
def test_a_forged_signature_is_refused_wherever_it_is(
    log: Log, town: Town, monkeypatch: pytest.MonkeyPatch, position: int
) -> None:
    monkeypatch.setattr(log_module, "_STREAM_CHUNK", 16)
    log.verify_signatures_with(Recording())
    size = log.size
    batch = [town.award(f"resident-{n}", "clean-pond") for n in range(50)]
    batch[position] = corrupt_signature(batch[position])
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


@pytest.mark.parametrize("verifier", [lying, failing], ids=["wrong-count", "error"])
def test_a_verifier_that_fails_leaves_the_verdicts_to_the_semantics(
    log: Log, town: Town, verifier: object
) -> None:
    log.verify_signatures_with(verifier)  # type: ignore[arg-type]
    good = [town.award(f"resident-{n}", "clean-pond") for n in range(8)]
    bad = [*good[:3], corrupt_signature(good[3]), *good[4:]]
    with pytest.raises(BatchError) as refused:
        log.append(bad, now_ms=town.now_ms)
    assert refused.value.index == 3
    size = log.size
    assert log.append(good, now_ms=town.now_ms).seqs == tuple(range(size, size + 8))


def test_concurrent_appends_share_one_verifier(log: Log, town: Town) -> None:
    verifier = Recording()
    log.verify_signatures_with(verifier)
    batches = [[town.award(f"r-{b}-{n}", "clean-pond") for n in range(40)] for b in range(4)]
    errors: list[BaseException] = []

    def append(batch: list[bytes]) -> None:
        try:
            log.append(batch, now_ms=town.now_ms)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=append, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sum(verifier.calls) == 160
    assert log.size == 11 + 160
