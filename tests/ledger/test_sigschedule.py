"""The one signature scheduler: where triples are verified, the pipeline's order and bound,
and the loop that drives a checker over a stream of leaves."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.verifier.bundles import LogBuilder, standard_log

from redlist.ledger import codec
from redlist.ledger import sigschedule as schedule_module
from redlist.ledger.crypto import SigningKey, sign_entry
from redlist.ledger.errors import FormatError, VerificationError
from redlist.ledger.sigschedule import Pipeline, SignatureScheduler, check_leaves
from redlist.ledger.sigworkers import Pending, VerifyPool
from redlist.ledger.validator import LogValidator, Triple
from redlist.verifier.audit import Auditor
from redlist.verifier.results import AuditResult

KEY = SigningKey.from_seed(bytes(32))


def triples(count: int, forged: frozenset[int] | set[int] = frozenset()) -> list[Triple]:
    made: list[Triple] = []
    for number in range(count):
        body = b"body %d" % number
        made.append((KEY.public, body, sign_entry(KEY, b"x" if number in forged else body)))
    return made


def expected(count: int, forged: set[int]) -> list[bool]:
    return [number not in forged for number in range(count)]


@pytest.mark.parametrize("workers", [1, 2])
def test_threads_and_the_calling_thread_verify_in_order(workers: int) -> None:
    with SignatureScheduler(workers) as scheduler:
        assert not scheduler.uses_processes
        assert scheduler.verify(triples(9, {0, 4})) == [n not in {0, 4} for n in range(9)]
        assert scheduler.verify(triples(2, {1})) == [True, False]  # too few to hand over
        assert scheduler.submit([]).result() == []


def test_processes_verify_once_started_and_threads_before() -> None:
    with SignatureScheduler(2, processes=True) as scheduler:
        assert scheduler.uses_processes
        early = scheduler.submit(triples(8, {3}))  # threads, if the workers are not up yet
        assert scheduler.wait_started()
        late = scheduler.submit(triples(8, {5}))
        assert early.result() == [n != 3 for n in range(8)]
        assert late.result() == [n != 5 for n in range(8)]


def test_processes_are_chosen_for_long_logs_on_several_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(schedule_module, "PROCESS_MIN_ENTRIES", 100)
    with SignatureScheduler.for_entries(99, 2) as short:
        assert not short.uses_processes
    with SignatureScheduler.for_entries(100, 2) as long:
        assert long.uses_processes
    with SignatureScheduler.for_entries(100, 1) as single:
        assert not single.uses_processes


def test_the_pipeline_keeps_order_and_bounds_what_is_in_flight() -> None:
    batch = triples(10, {2, 7})
    with SignatureScheduler(2) as scheduler:
        pipeline: Pipeline[int] = Pipeline(scheduler, chunk_size=2, in_flight=2)
        due: list[int] = []
        for number, triple in enumerate(batch):
            for item, verdicts in pipeline.put(number, [triple]):
                assert verdicts(*batch[item]) == (item not in {2, 7})
                due.append(item)
            assert number + 1 - len(due) <= 2 * 3  # two chunks out, one open
        assert due == [0, 1, 2, 3, 4, 5]
        assert [item for item, _ in pipeline.drain()] == [6, 7, 8, 9]


def audit(log: LogBuilder, scheduler: SignatureScheduler, chunk_size: int = 4) -> AuditResult:
    text = log.checkpoint()
    auditor = Auditor(log.town.log_signer.verifier())
    auditor.check_checkpoint(text)
    check_leaves(auditor, log.leaves, scheduler, chunk_size=chunk_size)
    return auditor.finish(text)


def test_an_audit_on_processes_finds_what_one_on_threads_finds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shares: list[int] = []
    real_submit = VerifyPool.submit

    def counting(pool: VerifyPool, batch: list[Triple]) -> list[Pending]:
        shares.append(len(batch))
        return real_submit(pool, batch)

    monkeypatch.setattr(VerifyPool, "submit", counting)
    log = standard_log()
    with SignatureScheduler(2, processes=True) as scheduler:
        scheduler.wait_started()
        on_processes = audit(log, scheduler)
    with SignatureScheduler(2) as scheduler:
        on_threads = audit(log, scheduler)
    assert 0 < sum(shares) <= on_processes.signatures_checked  # small chunks stay inline
    assert on_processes.accounts == on_threads.accounts
    assert on_processes.signatures_checked == on_threads.signatures_checked > 0


@pytest.mark.parametrize("processes", [True, False])
def test_a_forged_signature_is_caught_wherever_it_is_verified(processes: bool) -> None:
    log = standard_log()
    town = log.town
    forged_body = codec.decode(codec.decode(town.award("res-009", "clean-pond"))[0])
    forged_body["qty"] = 99  # changed after signing: the signature no longer fits
    envelope = codec.decode(town.award("res-009", "clean-pond"))
    log.append(codec.encode([codec.encode(forged_body), envelope[1]]))
    with SignatureScheduler(2, processes=processes) as scheduler:
        deadline = time.monotonic() + 30
        while not scheduler.wait_started():
            assert time.monotonic() < deadline, "the worker processes did not start"
        with pytest.raises(VerificationError) as caught:
            audit(log, scheduler)
    assert (caught.value.seq, caught.value.check) == (len(log.leaves) - 1, "signature")


def test_a_stream_that_breaks_is_reported_after_the_leaves_before_it() -> None:
    log = standard_log()
    log.leaves[3] = log.leaves[3][:-1] + b"\x00"  # a defect the stream does not see

    def breaking() -> Iterator[bytes]:
        yield from log.leaves[:6]
        raise FormatError("the leaves file ends in the middle of a leaf")

    auditor = Auditor(log.town.log_signer.verifier())
    with SignatureScheduler(1) as scheduler, pytest.raises(VerificationError) as caught:
        check_leaves(auditor, breaking(), scheduler, chunk_size=4)
    assert caught.value.seq == 3  # named first: it comes before the break

    clean = standard_log()
    auditor = Auditor(clean.town.log_signer.verifier())

    def broken() -> Iterator[bytes]:
        yield from clean.leaves[:6]
        raise FormatError("cut")

    with SignatureScheduler(1) as scheduler, pytest.raises(FormatError):
        check_leaves(auditor, broken(), scheduler, chunk_size=4)
    assert auditor.next_seq == 6  # every leaf before the break was checked


def test_a_bare_validator_is_driven_the_same_way_as_a_mirror_would() -> None:
    log = standard_log()
    validator = LogValidator(log.town.origin)
    with SignatureScheduler(2) as scheduler:
        assert check_leaves(validator, log.leaves, scheduler, chunk_size=3) == len(log.leaves)
    assert (validator.size, validator.root()) == (len(log.leaves), log.root())
    assert validator.signatures_checked == 34


@given(
    count=st.integers(0, 3000),
    chunk_size=st.integers(1, 700),
    known=st.booleans(),
    chunk_bytes=st.sampled_from([10**9, 5000]),
)
@settings(max_examples=150, deadline=None)
def test_chunks_keep_every_leaf_in_order_and_ramp_at_both_ends(
    count: int, chunk_size: int, known: bool, chunk_bytes: int
) -> None:
    leaves = [b"%d" % number for number in range(count)]
    total = count if known else None
    chunks = list(schedule_module._chunks(iter(leaves), chunk_size, chunk_bytes, total))
    assert [leaf for chunk in chunks for leaf in chunk] == leaves
    assert all(chunks)
    sizes = [len(chunk) for chunk in chunks]
    assert all(size <= chunk_size for size in sizes)
    ramp = schedule_module.RAMP_CHUNK
    if chunks and chunk_bytes > 3 * count:  # only the count closes a chunk
        assert sizes[0] == min(chunk_size, ramp, count)  # the workers start soon
        for before, after in itertools.pairwise(sizes):
            # Doubling up to the full size, then, with the end known, shrinking.
            assert after <= 2 * before
        if known:  # what is left to apply after the last verdicts is one small chunk
            assert sizes[-1] <= ramp


def test_a_submit_that_meets_a_closed_pool_is_verified_when_asked() -> None:
    # A node that stops while a commit hands its signatures over: nothing is lost.
    with SignatureScheduler(2, processes=True) as scheduler:
        assert scheduler.wait_started()
        pool = scheduler._pool
        assert pool is not None
        pool.close()  # as if another thread closed it between the check and the hand-over
        batch = [
            (KEY.public, b"body %d" % n, sign_entry(KEY, b"body %d" % n if n != 3 else b"x"))
            for n in range(8)
        ]
        assert scheduler.submit(batch).result() == [n != 3 for n in range(8)]


@pytest.mark.parametrize("processes", [False, True])
def test_a_submit_after_close_starts_nothing_and_is_verified_when_asked(processes: bool) -> None:
    # A node's commit may submit while the node stops: nothing is started that no
    # one would stop again.
    scheduler = SignatureScheduler(2, processes=processes)
    assert scheduler.verify(triples(8, {1})) == expected(8, {1})
    scheduler.close()
    ticket = scheduler.submit(triples(9, {4}))
    assert scheduler._threads is None and scheduler._pool is None
    assert ticket.result() == expected(9, {4})
    assert scheduler.verify(triples(6, {0})) == expected(6, {0})
    assert scheduler._threads is None
    scheduler.close()
