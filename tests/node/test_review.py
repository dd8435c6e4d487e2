"""The node's review queue (``redlist.node.review``): decided by the points semantics,
bounded, expiring, surviving a restart; and two approvals at once append once."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

import grpc
import pytest
from tests.builders import RuleSpec, Town, create_log
from tests.node.serving import rpc_error, run_node

from redlist.ledger.crypto import SigningKey, sign_entry
from redlist.ledger.entry import Award, Envelope, Leaf, decode_body
from redlist.ledger.errors import RuleViolation
from redlist.ledger.governance import Alternative
from redlist.ledger.log import Log
from redlist.ledger.registerstore import RegisterStore
from redlist.ledger.residents import Resident
from redlist.ledger.review import (
    APPENDED,
    COUNCIL_QUORUM,
    EXPIRED,
    GOVERNANCE_QUORUM,
    PENDING,
    Needs,
)
from redlist.node.metrics import NodeMetrics
from redlist.node.review import DAY_MS, ReviewLimits, ReviewQueue, ReviewRefusal
from redlist.node.serveroptions import ServerOptions
from redlist.v1 import ledger_pb2 as pb


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def town() -> Town:
    return Town.generate()


@pytest.fixture
def log(tmp_path: Path, town: Town) -> Log:
    log = create_log(tmp_path / "data", town, setup=True)
    yield log
    log.close()


def _proposal(town: Town, account: str, *, declared: bool = False) -> tuple[bytes, bytes]:
    """A council award signed by the grid worker alone: (body, envelope)."""
    body = Award(
        town.origin, town.next_id(), town.now_ms, account, "mediate-dispute", 1,
        date=town.day(), declared=declared,
    )  # fmt: skip
    data = body.to_bytes()
    return data, town.sign(data, town.grid)


def _approve(queue: ReviewQueue, number: int, body: bytes, key: SigningKey):  # type: ignore[no-untyped-def]
    return queue.approve(number, hashlib.sha256(body).digest(), key.key_id, sign_entry(key, body))


def _envelope_at(log: Log, seq: int) -> Envelope:
    ((_, leaf),) = log.leaves(seq, seq + 1)
    return Envelope.from_bytes(Leaf.from_bytes(leaf).envelope)


def test_a_proposal_waits_then_two_approvals_make_it_appendable(
    tmp_path: Path, town: Town, log: Log
) -> None:
    clock = Clock(town.now_ms)
    queue = ReviewQueue(log.data_dir, log, clock=clock)
    body, envelope = _proposal(town, "q-1")
    decision = queue.propose(envelope, {})
    assert decision.append is None and decision.item.state == PENDING
    number = decision.item.number
    [view] = queue.listing()
    assert view.needs == "rule 'mediate-dispute' needs 2 council signatures, it has 0"
    # The same as data, for the staff tool to word in its reader's language.
    assert view.still_needs == Needs(COUNCIL_QUORUM, (Alternative(0, 2),), 0, 0)
    assert view.rule_title == "Mediated a neighbourhood dispute" and view.points == 20
    first = _approve(queue, number, body, town.council[0])
    assert first.append is None
    queue.close()
    queue = ReviewQueue(log.data_dir, log, clock=clock)  # a restart keeps the queue
    again = _approve(queue, number, body, town.council[0])
    assert again.repeated and again.append is None  # the same reviewer counts once
    [view] = queue.listing()
    assert view.needs.endswith("it has 1")
    assert view.still_needs == Needs(COUNCIL_QUORUM, (Alternative(0, 2),), 0, 1)
    second = _approve(queue, number, body, town.council[1])
    assert second.append is not None
    seq = log.append([second.append], now_ms=clock.now).seqs[0]
    queue.appended(second.item, seq)
    assert len(_envelope_at(log, seq).signatures) == 3
    [closed] = queue.listing(closed=True)
    assert closed.item.state == APPENDED and closed.item.seq == seq
    with pytest.raises(ReviewRefusal, match="approved already"):
        _approve(queue, number, body, town.council[1])
    queue.close()


def test_a_revoked_members_approval_is_not_counted(town: Town, log: Log) -> None:
    clock = Clock(town.now_ms)
    queue = ReviewQueue(log.data_dir, log, clock=clock)
    body, envelope = _proposal(town, "q-2")
    number = queue.propose(envelope, {}).item.number
    _approve(queue, number, body, town.council[0])
    third = SigningKey.generate()
    with pytest.raises(RuleViolation, match="not registered"):
        _approve(queue, number, body, third)
    # Staff changes need the governance quorum, so they are made while it can be met.
    grid = SigningKey.generate()  # may sign awards, but is no council member
    log.append([town.add_key(third, "council-qian", ["council"])], now_ms=clock.now)
    log.append([town.revoke_key(third)], now_ms=clock.now)
    log.append([town.add_key(grid, "grid-liu", ["grid"])], now_ms=clock.now)
    log.append([town.revoke_key(town.council[0])], now_ms=clock.now)
    [view] = queue.listing()
    assert view.needs.endswith("it has 0")  # the revoked member's signature drops out
    assert view.still_needs == Needs(COUNCIL_QUORUM, (Alternative(0, 2),), 0, 0)
    assert [counts for *_, counts in view.signers].count(False) == 1
    decision = _approve(queue, number, body, town.council[1])
    assert decision.append is None  # one council signature counts: not enough
    with pytest.raises(RuleViolation, match="revoked"):
        _approve(queue, number, body, third)
    with pytest.raises(RuleViolation, match="needs the council or grid role"):
        _approve(queue, number, body, town.cashier)
    with pytest.raises(ReviewRefusal, match="would not count") as refused:
        _approve(queue, number, body, grid)
    assert refused.value.check == "signer-role"
    queue.close()


def test_pending_items_expire(town: Town, log: Log) -> None:
    clock = Clock(town.now_ms)
    queue = ReviewQueue(log.data_dir, log, ReviewLimits(days=3), clock=clock)
    body, envelope = _proposal(town, "q-3")
    number = queue.propose(envelope, {}).item.number
    clock.now += 3 * DAY_MS
    assert queue.listing() == []
    [expired] = queue.listing(closed=True)
    assert expired.item.state == EXPIRED
    with pytest.raises(ReviewRefusal, match="expired"):
        _approve(queue, number, body, town.council[0])
    clock.now += 3 * DAY_MS  # closed items are kept as long, then forgotten
    assert queue.listing(closed=True) == []
    queue.close()


def test_a_proposal_the_rules_refuse_is_not_queued(town: Town, log: Log) -> None:
    queue = ReviewQueue(log.data_dir, log, clock=Clock(town.now_ms))
    body = Award(
        town.origin, town.next_id(), town.now_ms, "q-4", "mediate-dispute", 1,
        date=town.day(at=town.now_ms + 5 * DAY_MS),
    )  # fmt: skip
    with pytest.raises(RuleViolation) as refused:
        queue.propose(town.sign(body, town.grid), {})
    assert refused.value.check == "deed-date"
    assert queue.listing(closed=True) == []
    queue.close()


def test_bounds_refuse_a_flood(town: Town, log: Log) -> None:
    queue = ReviewQueue(
        log.data_dir, log, ReviewLimits(max_pending=3, max_per_proposer=2), clock=Clock(town.now_ms)
    )
    for account in ("f-1", "f-2"):
        queue.propose(_proposal(town, account)[1], {})
    with pytest.raises(ReviewRefusal) as mine:
        queue.propose(_proposal(town, "f-3")[1], {})
    assert mine.value.check == "review-proposer-full" and mine.value.limit == 2
    body = Award(
        town.origin, town.next_id(), town.now_ms, "f-4", "mediate-dispute", 1, date=town.day()
    ).to_bytes()
    queue.propose(town.sign(body, town.council[0]), {})
    body = Award(
        town.origin, town.next_id(), town.now_ms, "f-5", "mediate-dispute", 1, date=town.day()
    ).to_bytes()
    with pytest.raises(ReviewRefusal) as full:
        queue.propose(town.sign(body, town.council[1]), {})
    assert full.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert full.value.check == "review-queue-full"
    assert len(queue.listing()) == 3
    queue.close()


def test_two_approvals_arriving_together_append_once(town: Town, log: Log) -> None:
    third = SigningKey.generate()
    log.append([town.add_key(third, "council-qian", ["council"])], now_ms=town.now_ms)
    body, envelope = _proposal(town, "q-5", declared=True)
    metrics = NodeMetrics()

    async def check(running) -> None:  # type: ignore[no-untyped-def]
        stub = running.stub
        item = await stub.Propose(pb.ProposeRequest(envelope=envelope))
        assert item.state == PENDING and "needs 2 council signatures" in item.needs
        assert metrics.review_pending._value.get() == 1
        await stub.Approve(_request(item, body, town.council[0]))
        size = running.log.size
        answers = await asyncio.gather(
            stub.Approve(_request(item, body, town.council[1])),
            stub.Approve(_request(item, body, third)),
            return_exceptions=True,
        )
        assert running.log.size == size + 1
        done = [answer for answer in answers if isinstance(answer, pb.ReviewItem)]
        refused = [answer for answer in answers if not isinstance(answer, pb.ReviewItem)]
        assert len(done) == 1 and done[0].state == APPENDED and done[0].seq == size
        assert len(refused) == 1 and "approved already" in refused[0].details()
        assert metrics.review_pending._value.get() == 0
        listed = await stub.ListPending(pb.ListPendingRequest(closed=True))
        assert [(i.state, i.seq) for i in listed.items] == [(APPENDED, size)]
        wrong = await rpc_error(
            stub.Approve(pb.ApproveRequest(number=item.number, body_hash=bytes(32)))
        )
        assert wrong.code() == grpc.StatusCode.FAILED_PRECONDITION

    town.now_ms = _now()
    run_node(log, check, options=ServerOptions(), metrics=metrics)


def _now() -> int:
    return time.time_ns() // 1_000_000


def _request(item: pb.ReviewItem, body: bytes, key: SigningKey) -> pb.ApproveRequest:
    return pb.ApproveRequest(
        number=item.number,
        body_hash=hashlib.sha256(body).digest(),
        key_id=key.key_id,
        signature=sign_entry(key, body),
    )


def test_the_listing_names_the_resident_masked_and_filters_by_village(town: Town, log: Log) -> None:
    with RegisterStore.open(log.data_dir, write=True) as register:
        register.add(
            [
                Resident("q-6", "欧阳娜娜", "", "", "东村", "12", "consent", "2026-01-05", 0),
                Resident("q-7", "张三", "", "", "西村", "3", "consent", "2026-01-05", 0),
                Resident("q-9", "李四光", "", "", "东村", "4", "", "", 0),  # no legal basis
            ]
        )
    queue = ReviewQueue(log.data_dir, log, clock=Clock(town.now_ms))
    for account in ("q-6", "q-7", "q-8", "q-9"):
        queue.propose(_proposal(town, account)[1], {})
    east = queue.listing(village="东村")
    assert [(view.masked_name, view.village) for view in east] == [("欧**娜", "东村"), ("", "东村")]
    everyone = {decode_body(view.item.body).account: view.masked_name for view in queue.listing()}
    assert everyone == {"q-6": "欧**娜", "q-7": "张*", "q-8": "", "q-9": ""}
    queue.close()


def test_an_append_the_queue_did_not_hear_of_is_found_in_the_log(town: Town, log: Log) -> None:
    """A crash between the append and the queue's note of it: the next look finds the
    entry in the log and closes the item with its seq."""
    clock = Clock(town.now_ms)
    queue = ReviewQueue(log.data_dir, log, clock=clock)
    body, envelope = _proposal(town, "q-10")
    number = queue.propose(envelope, {}).item.number
    _approve(queue, number, body, town.council[0])
    whole = town.sign(body, town.grid, *town.council)
    seq = log.append([whole], now_ms=clock.now).seqs[0]
    queue.close()
    queue = ReviewQueue(log.data_dir, log, clock=clock)
    [view] = queue.listing(closed=True)
    assert view.item.state == APPENDED and view.item.seq == seq
    with pytest.raises(ReviewRefusal, match=f"it is entry {seq}"):
        _approve(queue, number, body, town.council[1])
    queue.close()


def test_a_catalogue_change_waits_for_the_council_too(town: Town, log: Log) -> None:
    """A rule entry signed by the admin alone waits for the governance quorum (1 admin and
    2 council members by default) and is appended once the council approved it."""
    clock = Clock(town.now_ms)
    queue = ReviewQueue(log.data_dir, log, clock=clock)
    envelope = town.set_rule(
        RuleSpec("pond-clean", "Cleaned the village pond", "environment", 10_000, False),
        signers=[town.admin],
    )
    body = Envelope.from_bytes(envelope).body
    decision = queue.propose(envelope, {})
    assert decision.append is None and decision.item.state == PENDING
    [view] = queue.listing()
    assert "town governance" in view.needs
    # One admin of the one alternative has signed; the council's two are missing.
    assert view.still_needs == Needs(GOVERNANCE_QUORUM, (Alternative(1, 2),), 1, 0)
    assert _approve(queue, decision.item.number, body, town.council[0]).append is None
    done = _approve(queue, decision.item.number, body, town.council[1])
    assert done.append is not None
    seq = log.append([done.append], now_ms=clock.now).seqs[0]
    assert len(_envelope_at(log, seq).signatures) == 3
    queue.close()
