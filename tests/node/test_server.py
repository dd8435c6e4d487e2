"""The node's gRPC service on real servers: in-process on 127.0.0.1:0, and a real subprocess.

Every RPC, every refusal status (with nothing written), atomic and idempotent
batches, concurrent submitters, proofs checked against signed checkpoints, live
Follow, health and reflection, metrics, and a graceful SIGTERM under load.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped, unused-ignore]
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc  # type: ignore[import-untyped, unused-ignore]
from tests.builders import (
    SMALL_ID_INDEX,
    STANDARD_RULES,
    RuleSpec,
    Town,
    corrupt_signature,
    create_log,
    id_index_shape,
    leaf_at,
    send_with_texts,
    submit_request,
)
from tests.node.serving import Running, metadata_of, rpc_error, run_node

from redlist.ledger import merkle, native
from redlist.ledger.crypto import SigningKey
from redlist.ledger.entry import MAX_ENVELOPE_SIZE, Award, Leaf
from redlist.ledger.errors import IntegrityError, RedlistError, SourceError
from redlist.ledger.log import Log
from redlist.ledger.note.checkpoint import open_checkpoint
from redlist.ledger.textcommit import EntryText
from redlist.node import leafreads
from redlist.node.batcher import now_ms
from redlist.node.config import DEFAULT_MAX_MESSAGE_BYTES
from redlist.node.metrics import NodeMetrics
from redlist.node.server import LEDGER_SERVICE, NodeServer
from redlist.node.serveroptions import ServerOptions
from redlist.proto.client import NodeClient
from redlist.proto.contract import Limits
from redlist.proto.errors import NodeError
from redlist.staff.client import LedgerClient
from redlist.v1 import ledger_pb2 as pb
from redlist.v1 import ledger_pb2_grpc

#: Entries after ``create_log(..., setup=True)``: the genesis, 4 staff keys, 6 rules.
SETUP_SIZE = 1 + 4 + len(STANDARD_RULES)
KNOWN_ID = bytes(range(16))


@pytest.fixture
def town() -> Town:
    return Town.generate()


@pytest.fixture
def log(tmp_path: Path, town: Town) -> Iterator[Log]:
    with create_log(tmp_path / "data", town, setup=True) as opened:
        yield opened


def all_leaves(log: Log) -> list[bytes]:
    return [leaf for _, leaf in log.leaves(0, log.size)]


def award_ids(envelopes: list[bytes]) -> list[bytes]:
    from redlist.ledger.entry import Envelope, decode_body

    return [decode_body(Envelope.from_bytes(raw).body).id for raw in envelopes]


# ---------------------------------------------------------------------------
# Submit


def test_submit_appends_and_answers_with_a_covering_checkpoint(log: Log, town: Town) -> None:
    envelopes = [town.award("resident-1", "clean-pond"), town.award("resident-2", "litter")]

    async def body(running: Running) -> None:
        response = await running.submit(envelopes)
        assert list(response.seqs) == [SETUP_SIZE, SETUP_SIZE + 1]
        checkpoint = open_checkpoint(response.checkpoint, log.verifier_key)
        assert checkpoint.size == SETUP_SIZE + 2
        leaves = all_leaves(log)
        assert checkpoint.root == merkle.root_of([merkle.leaf_hash(leaf) for leaf in leaves])
        for seq, envelope in zip(response.seqs, envelopes, strict=True):
            assert Leaf.from_bytes(leaves[seq]).envelope == envelope
        assert await running.checkpoint() == response.checkpoint

    run_node(log, body)


def test_resubmitting_returns_the_existing_seqs_and_writes_nothing(log: Log, town: Town) -> None:
    first, second = town.award("resident-1", "clean-pond"), town.award("resident-1", "litter")
    third = town.award("resident-2", "clean-pond")

    async def body(running: Running) -> None:
        original = await running.submit([first, second])
        again = await running.submit([first, second])
        assert list(again.seqs) == list(original.seqs)
        assert again.checkpoint == original.checkpoint
        assert log.size == SETUP_SIZE + 2
        mixed = await running.submit([second, third, third])
        assert list(mixed.seqs) == [original.seqs[1], SETUP_SIZE + 2, SETUP_SIZE + 2]
        assert log.size == SETUP_SIZE + 3

    run_node(log, body)


@dataclass
class RefusalTown:
    """A town whose log also holds a revoked key, a known entry id and a reversed award."""

    town: Town
    retired: SigningKey
    reversed_seq: int


@pytest.fixture
def refusal_town(log: Log, town: Town) -> RefusalTown:
    retired = SigningKey.generate()
    log.append(
        [town.add_key(retired, "grid-old", ["grid"]), town.revoke_key(retired)], now_ms=town.now_ms
    )
    log.append([town.award("resident-9", "clean-pond", entry_id=KNOWN_ID)], now_ms=town.now_ms)
    (reversed_seq,) = log.append([town.award("resident-8", "litter")], now_ms=town.now_ms).seqs
    log.append([town.reverse(reversed_seq)], now_ms=town.now_ms)
    return RefusalTown(town, retired, reversed_seq)


def _other_log_award(setting: RefusalTown) -> bytes:
    town = setting.town
    body = Award(
        "elsewhere.example/log",
        town.next_id(),
        town.now_ms,
        "resident-1",
        "clean-pond",
        date=town.day(),
    )
    return town.sign(body, town.grid)


REFUSALS: dict[str, tuple[Callable[[RefusalTown], bytes], grpc.StatusCode, str]] = {
    "undecodable": (lambda s: b"\xc1 not msgpack", grpc.StatusCode.INVALID_ARGUMENT, "format"),
    "oversized": (
        lambda s: s.town.set_rule(RuleSpec("big", "x" * 70_000, "m", 5)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "format",
    ),
    "a note that does not match its commitment": (
        lambda s: send_with_texts(
            s.town.award("resident-1", "clean-pond", note="pond"),
            {"note": EntryText("litter", bytes(16))},
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "text",
    ),
    "a redemption sent without its item": (
        lambda s: send_with_texts(s.town.redeem("resident-1", 5), {}),
        grpc.StatusCode.INVALID_ARGUMENT,
        "text",
    ),
    "bidi override in a key name": (
        lambda s: s.town.add_key(SigningKey.generate(), "\u202enimda", ["grid"]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "format",
    ),
    "unknown signer": (
        lambda s: s.town.award("resident-1", "clean-pond", signers=[SigningKey.generate()]),
        grpc.StatusCode.PERMISSION_DENIED,
        "signer-unknown",
    ),
    "revoked signer": (
        lambda s: s.town.award("resident-1", "clean-pond", signers=[s.retired]),
        grpc.StatusCode.PERMISSION_DENIED,
        "signer-revoked",
    ),
    "bad signature": (
        lambda s: corrupt_signature(s.town.award("resident-1", "clean-pond")),
        grpc.StatusCode.PERMISSION_DENIED,
        "signature",
    ),
    "wrong role": (
        lambda s: s.town.award("resident-1", "clean-pond", signers=[s.town.cashier]),
        grpc.StatusCode.PERMISSION_DENIED,
        "signer-role",
    ),
    "no quorum": (
        lambda s: s.town.award("resident-1", "mediate-dispute", signers=[s.town.council[0]]),
        grpc.StatusCode.PERMISSION_DENIED,
        "quorum",
    ),
    "unknown rule": (
        lambda s: s.town.award("resident-1", "V99"),
        grpc.StatusCode.FAILED_PRECONDITION,
        "rule-inactive",
    ),
    "overdraw": (
        lambda s: s.town.redeem("resident-1", 1000),
        grpc.StatusCode.FAILED_PRECONDITION,
        "overdraw",
    ),
    "objection to the genesis": (
        lambda s: s.town.objection(0),
        grpc.StatusCode.FAILED_PRECONDITION,
        "target",
    ),
    "second reversal": (
        lambda s: s.town.reverse(s.reversed_seq),
        grpc.StatusCode.FAILED_PRECONDITION,
        "double-reverse",
    ),
    "author time in the future": (
        lambda s: s.town.award("resident-1", "clean-pond", at=now_ms() + 3_600_000),
        grpc.StatusCode.FAILED_PRECONDITION,
        "future",
    ),
    "meant for another log": (_other_log_award, grpc.StatusCode.FAILED_PRECONDITION, "log"),
    "id reused with other bytes": (
        lambda s: s.town.award("resident-2", "clean-pond", entry_id=KNOWN_ID),
        grpc.StatusCode.ALREADY_EXISTS,
        "duplicate-id",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_refused_envelope_fails_the_whole_batch_and_writes_nothing(
    log: Log, refusal_town: RefusalTown, case: str
) -> None:
    build, code, check = REFUSALS[case]
    town = refusal_town.town
    good = [town.award("resident-good", "clean-pond"), town.award("resident-good", "litter")]
    bad = build(refusal_town)

    async def body(running: Running) -> None:
        size_before, checkpoint_before = log.size, await running.checkpoint()
        error = await rpc_error(running.submit([*good, bad]))
        assert error.code() == code, error.details()
        details = error.details() or ""
        assert details.startswith("envelope 2: "), details
        assert details.endswith(f" [{check}]"), details
        assert metadata_of(error) == {"redlist-index": "2", "redlist-check": check}
        assert log.size == size_before
        assert await running.checkpoint() == checkpoint_before
        account = await running.stub.GetAccount(pb.GetAccountRequest(account="resident-good"))
        assert list(account.entries) == []
        # The good envelopes alone are accepted: the refusal was about the bad one.
        accepted = await running.submit(good)
        assert list(accepted.seqs) == [size_before, size_before + 1]

    run_node(log, body)


def test_the_refusal_message_is_in_plain_words(log: Log, town: Town) -> None:
    async def body(running: Running) -> None:
        envelopes = [town.award("resident-1", "clean-pond") for _ in range(3)]
        error = await rpc_error(running.submit([*envelopes, town.award("resident-1", "V99")]))
        assert error.details() == "envelope 3: rule 'V99' is not in the catalogue [rule-inactive]"

    run_node(log, body)


def test_an_empty_batch_is_an_invalid_argument(log: Log) -> None:
    async def body(running: Running) -> None:
        error = await rpc_error(running.submit([]))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "empty" in (error.details() or "")
        assert metadata_of(error) == {}
        assert log.size == SETUP_SIZE

    run_node(log, body)


def test_too_many_envelopes_exhaust_the_batch_limit(log: Log, town: Town) -> None:
    async def body(running: Running) -> None:
        envelopes = [town.award("resident-1", "clean-pond") for _ in range(4)]
        error = await rpc_error(running.submit(envelopes))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "at most 3" in (error.details() or "")
        # The limit travels as data: the check names it, redlist-limit gives its value.
        assert metadata_of(error) == {"redlist-check": "max-batch", "redlist-limit": "3"}
        assert log.size == SETUP_SIZE
        assert len((await running.submit(envelopes[:3])).seqs) == 3

    run_node(log, body, options=ServerOptions(max_batch=3, max_group=3))


def test_the_node_states_its_limits(log: Log) -> None:
    async def body(running: Running) -> None:
        limits = await running.stub.GetLimits(pb.GetLimitsRequest())
        assert (limits.max_batch, limits.max_envelope_bytes, limits.max_message_bytes) == (
            3,
            MAX_ENVELOPE_SIZE,
            200_000,
        )

    run_node(log, body, options=ServerOptions(max_batch=3, max_group=3, max_message_bytes=200_000))


def test_clients_read_a_refusal_and_the_limits_as_data(log: Log, town: Town) -> None:
    """The staff client and the auditor's client read the node through one definition."""
    envelopes = [town.award("resident-1", "clean-pond") for _ in range(4)]

    def as_clients(address: str) -> None:
        with LedgerClient(address, log_key=log.verifier_key) as staff:
            assert staff.get_limits() == Limits(3, MAX_ENVELOPE_SIZE, DEFAULT_MAX_MESSAGE_BYTES)
            with pytest.raises(NodeError) as refused:
                staff.submit(envelopes, action="the awards")
            error = refused.value
            assert (error.code, error.check, error.limit, error.index) == (
                "RESOURCE_EXHAUSTED",
                "max-batch",
                3,
                None,
            )
            assert error.message == (
                "the batch has 4 envelopes; this node takes at most 3 in one request, split it"
            )
            with pytest.raises(NodeError) as refused:
                staff.submit([*envelopes[:2], town.award("resident-1", "V99")])
            assert (refused.value.check, refused.value.index) == ("rule-inactive", 2)
            assert refused.value.message == "rule 'V99' is not in the catalogue"
        with NodeClient(address) as auditor:
            assert auditor.get_limits().max_batch == 3
            with pytest.raises(SourceError) as failed:
                auditor.get_inclusion_proof(SETUP_SIZE + 5, 0)
            assert "[INVALID_ARGUMENT]" in failed.value.diagnostics()

    async def body(running: Running) -> None:
        await asyncio.to_thread(as_clients, running.node.address)

    run_node(log, body, options=ServerOptions(max_batch=3, max_group=3))


def test_a_request_over_the_message_limit_is_refused(log: Log, town: Town) -> None:
    async def body(running: Running) -> None:
        # The texts beside the envelopes count towards the message, as the envelopes do.
        envelopes = [town.award("resident-1", "clean-pond", note="n" * 12_000) for _ in range(6)]
        error = await rpc_error(running.submit(envelopes))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert log.size == SETUP_SIZE
        assert len((await running.submit(envelopes[:1])).seqs) == 1

    run_node(log, body, options=ServerOptions(max_message_bytes=64 * 1024))


def test_a_full_store_is_unavailable_and_writes_nothing(tmp_path: Path, town: Town) -> None:
    small = create_log(tmp_path / "small", town, setup=True, map_size=256 << 10)

    async def body(running: Running) -> None:
        checkpoint_before = await running.checkpoint()
        big = [town.set_rule(RuleSpec(f"big-{n}", "x" * 20_000, "m", 5)) for n in range(20)]
        error = await rpc_error(running.submit(big))
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert "storage is full" in (error.details() or "")
        assert small.size == SETUP_SIZE
        assert await running.checkpoint() == checkpoint_before

    try:
        run_node(small, body)
    finally:
        small.close()


def test_concurrent_submitters_lose_and_duplicate_nothing(log: Log, town: Town) -> None:
    def batches(count: int) -> list[list[bytes]]:
        return [
            [town.award(f"resident-{n % 7}", "clean-pond") for _ in range(5)] for n in range(count)
        ]

    task_work = [batches(8) for _ in range(6)]
    thread_work = [batches(8) for _ in range(2)]
    acked: list[tuple[bytes, int]] = []
    checkpoints: list[tuple[str, int]] = []

    def record(envelopes: list[bytes], response: pb.SubmitResponse) -> None:
        acked.extend(zip(envelopes, response.seqs, strict=True))
        checkpoints.append((response.checkpoint, max(response.seqs)))

    def thread_client(address: str, work: list[list[bytes]]) -> None:
        with grpc.insecure_channel(address) as channel:
            stub = ledger_pb2_grpc.LedgerStub(channel)
            for envelopes in work:
                record(envelopes, stub.Submit(submit_request(envelopes), timeout=20))

    async def task_client(running: Running, work: list[list[bytes]]) -> None:
        for envelopes in work:
            record(envelopes, await running.submit(envelopes))

    async def body(running: Running) -> None:
        await asyncio.gather(
            *(task_client(running, work) for work in task_work),
            *(asyncio.to_thread(thread_client, running.node.address, work) for work in thread_work),
        )

    run_node(log, body)
    total = sum(len(batch) for work in task_work + thread_work for batch in work)
    seqs = [seq for _, seq in acked]
    assert sorted(seqs) == list(range(SETUP_SIZE, SETUP_SIZE + total))
    assert log.size == SETUP_SIZE + total
    for envelope, seq in acked:
        assert Leaf.from_bytes(leaf_at(log, seq)).envelope == envelope
    for checkpoint, highest in checkpoints:
        assert open_checkpoint(checkpoint, log.verifier_key).size > highest


# ---------------------------------------------------------------------------
# Reads


def test_get_leaves_streams_any_range_in_chunks(
    log: Log, town: Town, monkeypatch: pytest.MonkeyPatch
) -> None:
    log.append([town.award("resident-1", "clean-pond") for _ in range(9)], now_ms=town.now_ms)
    monkeypatch.setattr(leafreads, "CHUNK_LEAVES", 4)  # several chunks per stream
    leaves = all_leaves(log)

    async def body(running: Running) -> None:
        async def fetch(start: int, end: int) -> list[tuple[int, bytes]]:
            request = pb.GetLeavesRequest(start=start, end=end)
            return [
                (item.seq, item.leaf) for item in [x async for x in running.stub.GetLeaves(request)]
            ]

        assert await fetch(0, len(leaves)) == list(enumerate(leaves))
        assert await fetch(3, 14) == [(seq, leaves[seq]) for seq in range(3, 14)]
        assert await fetch(7, 7) == []
        assert await fetch(len(leaves), len(leaves)) == []
        error = await rpc_error(fetch(5, 4))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        error = await rpc_error(fetch(0, len(leaves) + 1))
        assert error.code() == grpc.StatusCode.OUT_OF_RANGE
        assert str(len(leaves)) in (error.details() or "")

    run_node(log, body)


def test_get_leaf_batches_sends_the_same_leaves_many_to_a_message(log: Log, town: Town) -> None:
    log.append([town.award("resident-1", "clean-pond") for _ in range(30)], now_ms=town.now_ms)
    leaves = all_leaves(log)

    async def body(running: Running) -> None:
        async def fetch(start: int, end: int) -> list[pb.LeafBatch]:
            request = pb.GetLeavesRequest(start=start, end=end)
            return [batch async for batch in running.stub.GetLeafBatches(request)]

        batches = await fetch(0, len(leaves))
        assert len(batches) == 1  # a few KiB: one message
        assert batches[0].start == 0 and list(batches[0].leaves) == leaves
        batches = await fetch(3, 14)
        assert [(b.start, list(b.leaves)) for b in batches] == [(3, leaves[3:14])]
        assert await fetch(7, 7) == []
        error = await rpc_error(fetch(5, 4))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        error = await rpc_error(fetch(0, len(leaves) + 1))
        assert error.code() == grpc.StatusCode.OUT_OF_RANGE

    run_node(log, body)


def test_a_leaf_batch_stays_within_the_nodes_message_size(log: Log, town: Town) -> None:
    log.append([town.award("resident-1", "clean-pond") for _ in range(200)], now_ms=town.now_ms)
    leaves = all_leaves(log)
    most = 8 * 1024  # a node that sends at most 8 KiB in one answer

    async def body(running: Running) -> None:
        request = pb.GetLeavesRequest(start=0, end=len(leaves))
        batches = [batch async for batch in running.stub.GetLeafBatches(request)]
        assert len(batches) > 5
        assert all(batch.ByteSize() <= most for batch in batches)
        assert [leaf for batch in batches for leaf in batch.leaves] == leaves
        assert [batch.start for batch in batches] == [
            sum(len(earlier.leaves) for earlier in batches[:number])
            for number in range(len(batches))
        ]

    run_node(log, body, options=ServerOptions(max_message_bytes=most))


def test_a_batch_stops_before_its_byte_bound_but_holds_at_least_one_leaf(log: Log) -> None:
    leaves = all_leaves(log)
    framed = [len(leaf) + 8 for leaf in leaves]
    assert leafreads.read_batch(log, 0, log.size, 100, 1) == leaves[:1]
    assert leafreads.read_batch(log, 0, log.size, 100, framed[0] + framed[1]) == leaves[:2]
    bound = framed[0] + framed[1] - 1
    assert leafreads.read_batch(log, 0, log.size, 100, bound) == leaves[:1]
    assert leafreads.read_batch(log, 2, log.size, 3, 1 << 20) == leaves[2:5]


def test_a_store_failure_on_a_read_is_an_internal_error_in_words(log: Log) -> None:
    class Damaged:
        """The log, but its checkpoint cannot be read (a compiled ``Log`` takes no
        patched methods: docs/adr/0057)."""

        def __getattr__(self, name: str) -> object:
            return getattr(log, name)

        def checkpoint(self) -> str:
            raise IntegrityError("the ledger's metadata lacks 'checkpoint'")

    async def body(running: Running) -> None:
        error = await rpc_error(running.checkpoint())
        assert error.code() == grpc.StatusCode.INTERNAL
        assert "lacks 'checkpoint'" in (error.details() or "")

    run_node(Damaged(), body)  # type: ignore[arg-type]


def test_a_chunk_stops_at_its_byte_bound(log: Log) -> None:
    assert len(leafreads.read_chunk(log, 0, log.size, 100, 1)) == 1
    assert len(leafreads.read_chunk(log, 2, log.size, 3, 1 << 20)) == 3
    assert [seq for seq, _ in leafreads.read_chunk(log, 9, log.size)] == [9, 10]


@pytest.fixture
def forty(log: Log, town: Town) -> Log:
    """The log grown to 40 entries one append at a time: a checkpoint at 1 and at 11..40."""
    for number in range(40 - SETUP_SIZE):
        log.append([town.award(f"resident-{number % 3}", "clean-pond")], now_ms=town.now_ms)
    return log


def _root(log: Log, size: int) -> bytes:
    checkpoint = log.checkpoint_at(size)
    assert checkpoint is not None
    return checkpoint.root


def test_inclusion_proofs_verify_against_signed_checkpoints(forty: Log) -> None:
    leaves = all_leaves(forty)

    async def body(running: Running) -> None:
        for size in (1, 11, 12, 16, 17, 32, 33, 40):
            for seq in sorted({0, size // 2, size - 1}):
                proof = await running.stub.GetInclusionProof(
                    pb.InclusionProofRequest(seq=seq, tree_size=size)
                )
                assert proof.tree_size == size
                merkle.verify_inclusion(
                    merkle.leaf_hash(leaves[seq]), seq, size, list(proof.hashes), _root(forty, size)
                )
        current = await running.stub.GetInclusionProof(pb.InclusionProofRequest(seq=5))
        assert current.tree_size == 40
        checkpoint = open_checkpoint(await running.checkpoint(), forty.verifier_key)
        merkle.verify_inclusion(
            merkle.leaf_hash(leaves[5]), 5, checkpoint.size, list(current.hashes), checkpoint.root
        )
        for request, code in (
            (pb.InclusionProofRequest(seq=12, tree_size=12), grpc.StatusCode.INVALID_ARGUMENT),
            (pb.InclusionProofRequest(seq=40), grpc.StatusCode.INVALID_ARGUMENT),
            (pb.InclusionProofRequest(seq=1, tree_size=41), grpc.StatusCode.OUT_OF_RANGE),
        ):
            error = await rpc_error(running.stub.GetInclusionProof(request))
            assert error.code() == code, request

    run_node(forty, body)


def test_consistency_proofs_verify_against_signed_checkpoints(forty: Log) -> None:
    async def body(running: Running) -> None:
        for first, second in ((1, 11), (1, 40), (11, 12), (13, 32), (16, 40), (33, 40), (40, 40)):
            proof = await running.stub.GetConsistencyProof(
                pb.ConsistencyProofRequest(first=first, second=second)
            )
            assert proof.tree_size == second
            merkle.verify_consistency(
                first, second, list(proof.hashes), _root(forty, first), _root(forty, second)
            )
        empty = await running.stub.GetConsistencyProof(pb.ConsistencyProofRequest(second=40))
        assert list(empty.hashes) == []
        for request, code in (
            (pb.ConsistencyProofRequest(first=12, second=11), grpc.StatusCode.INVALID_ARGUMENT),
            (pb.ConsistencyProofRequest(first=1, second=41), grpc.StatusCode.OUT_OF_RANGE),
        ):
            error = await rpc_error(running.stub.GetConsistencyProof(request))
            assert error.code() == code, request

    run_node(forty, body)


def test_get_account_gives_balances_entries_and_their_checkpoint(log: Log, town: Town) -> None:
    base = SETUP_SIZE
    log.append(
        [
            town.award("resident-1", "epidemic-duty", 3),  # base: +30
            town.award("resident-1", "clean-pond", note="weekend"),  # +1: +5
            town.award("resident-1", "litter"),  # +2: -5, reversed below
            town.redeem("resident-1", 10),  # +3
            town.objection(base + 2),  # +4
            town.reverse(base + 2),  # +5
            town.award("resident-2", "clean-pond"),  # +6
        ],
        now_ms=town.now_ms,
    )
    # The rule's points change later; the earlier award keeps the points it was made with.
    log.append(
        [town.set_rule(RuleSpec("clean-pond", "Pond", "environment", 7))], now_ms=town.now_ms
    )

    async def body(running: Running) -> None:
        account = await running.stub.GetAccount(pb.GetAccountRequest(account="resident-1"))
        assert (account.account, account.earned, account.redeemed) == ("resident-1", 35, 10)
        assert (account.spendable, account.score, account.grade) == (25, 1035, "AA")
        entries = [
            (e.seq, e.kind, e.rule, e.points, e.qty, e.has_text, e.reversed, e.reversed_by)
            for e in account.entries
        ]
        assert entries == [
            (base, "award", "epidemic-duty", 30, 3, False, False, 0),
            (base + 1, "award", "clean-pond", 5, 1, True, False, 0),
            (base + 2, "award", "litter", -5, 1, False, True, base + 5),
            (base + 3, "redeem", "", 10, 0, True, False, 0),
        ]
        # An anonymous reader gets no free text (tests/node/test_texts.py: who does).
        assert account.texts_withheld
        assert all(not entry.note and not entry.item for entry in account.entries)
        assert all(entry.at == town.now_ms for entry in account.entries)
        times = [Leaf.from_bytes(leaf_at(log, entry.seq)).time for entry in account.entries]
        assert [entry.time for entry in account.entries] == times
        checkpoint = open_checkpoint(account.checkpoint, log.verifier_key)
        assert checkpoint.size == log.size

        nobody = await running.stub.GetAccount(pb.GetAccountRequest(account="nobody"))
        assert (nobody.score, nobody.spendable, nobody.grade, list(nobody.entries)) == (
            1000,
            0,
            "A",
            [],
        )
        for invalid in ("", "bad id!", "-leading-dash", "x" * 65):
            error = await rpc_error(running.stub.GetAccount(pb.GetAccountRequest(account=invalid)))
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, invalid
            assert "not valid" in (error.details() or "")

    run_node(log, body)


# ---------------------------------------------------------------------------
# Follow


async def _next(stream: aio.UnaryStreamCall[pb.FollowRequest, pb.FollowEvent]) -> pb.FollowEvent:
    event = await asyncio.wait_for(stream.read(), 10)
    assert event is not aio.EOF
    assert isinstance(event, pb.FollowEvent)
    return event


async def _until_checkpoint(
    stream: aio.UnaryStreamCall[pb.FollowRequest, pb.FollowEvent],
) -> tuple[list[int], str]:
    seqs: list[int] = []
    while True:
        event = await _next(stream)
        if event.WhichOneof("event") == "checkpoint":
            return seqs, event.checkpoint
        seqs.append(event.leaf.seq)


def test_follow_sends_the_backlog_then_live_leaves_and_checkpoints(log: Log, town: Town) -> None:
    async def body(running: Running) -> None:
        stream = running.stub.Follow(pb.FollowRequest(start=4))
        seqs, checkpoint = await _until_checkpoint(stream)
        assert seqs == list(range(4, SETUP_SIZE))
        assert open_checkpoint(checkpoint, log.verifier_key).size == SETUP_SIZE

        await running.submit([town.award("resident-1", "clean-pond") for _ in range(2)])
        seqs, checkpoint = await _until_checkpoint(stream)
        assert seqs == [SETUP_SIZE, SETUP_SIZE + 1]
        opened = open_checkpoint(checkpoint, log.verifier_key)
        assert opened.size == SETUP_SIZE + 2
        assert opened.root == merkle.root_of([merkle.leaf_hash(leaf) for leaf in all_leaves(log)])

        await running.submit([town.award("resident-2", "clean-pond")])
        seqs, checkpoint = await _until_checkpoint(stream)
        assert seqs == [SETUP_SIZE + 2]
        assert open_checkpoint(checkpoint, log.verifier_key).size == SETUP_SIZE + 3

        # A resubmission appends nothing: the next event is the next new leaf.
        repeated = town.award("resident-3", "clean-pond")
        await running.submit([repeated])
        await running.submit([repeated])
        await running.submit([town.award("resident-4", "clean-pond")])
        seqs, _ = await _until_checkpoint(stream)
        if seqs == [SETUP_SIZE + 3]:  # the two commits may reach the stream apart
            seqs, _ = await _until_checkpoint(stream)
            seqs.insert(0, SETUP_SIZE + 3)
        assert seqs == [SETUP_SIZE + 3, SETUP_SIZE + 4]

        # Shutting down ends the stream cleanly, with status OK.
        await running.node.stop(grace=1.0)
        assert await asyncio.wait_for(stream.read(), 10) is aio.EOF
        assert await stream.code() == grpc.StatusCode.OK

    run_node(log, body)


def test_follow_in_batches_sends_leaf_batches_then_each_checkpoint(log: Log, town: Town) -> None:
    async def body(running: Running) -> None:
        stream = running.stub.Follow(pb.FollowRequest(start=4, batches=True))
        event = await _next(stream)
        assert event.WhichOneof("event") == "leaves"
        assert event.leaves.start == 4
        assert list(event.leaves.leaves) == all_leaves(log)[4:]
        event = await _next(stream)
        assert open_checkpoint(event.checkpoint, log.verifier_key).size == SETUP_SIZE

        await running.submit([town.award("resident-1", "clean-pond") for _ in range(3)])
        event = await _next(stream)
        assert event.WhichOneof("event") == "leaves"
        assert event.leaves.start == SETUP_SIZE
        assert list(event.leaves.leaves) == all_leaves(log)[SETUP_SIZE:]
        event = await _next(stream)
        assert open_checkpoint(event.checkpoint, log.verifier_key).size == SETUP_SIZE + 3
        stream.cancel()

    run_node(log, body)


def test_follow_from_the_end_starts_with_the_checkpoint(log: Log) -> None:
    async def body(running: Running) -> None:
        stream = running.stub.Follow(pb.FollowRequest(start=SETUP_SIZE))
        event = await _next(stream)
        assert event.WhichOneof("event") == "checkpoint"
        assert event.checkpoint == log.checkpoint().note
        stream.cancel()
        error = await rpc_error(_next(running.stub.Follow(pb.FollowRequest(start=SETUP_SIZE + 1))))
        assert error.code() == grpc.StatusCode.OUT_OF_RANGE

    run_node(log, body)


# ---------------------------------------------------------------------------
# Health, reflection, metrics


def test_health_serves_and_turns_not_serving_on_shutdown(log: Log) -> None:
    async def body(running: Running) -> None:
        health = health_pb2_grpc.HealthStub(running.channel)
        serving = health_pb2.HealthCheckResponse.SERVING
        for service in ("", LEDGER_SERVICE):
            response = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert response.status == serving
        watch = health.Watch(health_pb2.HealthCheckRequest(service=LEDGER_SERVICE))
        assert (await watch.read()).status == serving
        stopping = asyncio.create_task(running.node.stop(grace=0.5))
        status = (await asyncio.wait_for(watch.read(), 10)).status
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
        await stopping

    run_node(log, body)


def test_reflection_lists_and_describes_the_services(log: Log) -> None:
    async def body(running: Running) -> None:
        reflection = reflection_pb2_grpc.ServerReflectionStub(running.channel)
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol=LEDGER_SERVICE),
        ]
        responses = [response async for response in reflection.ServerReflectionInfo(iter(requests))]
        listed = {service.name for service in responses[0].list_services_response.service}
        assert {LEDGER_SERVICE, "grpc.health.v1.Health"} <= listed
        files = responses[1].file_descriptor_response.file_descriptor_proto
        assert files and b"redlist.v1" in files[0]

    run_node(log, body)


def test_metrics_count_commits_refusals_and_size(log: Log, town: Town) -> None:
    metrics = NodeMetrics()
    port = metrics.serve_http("127.0.0.1", 0)

    async def body(running: Running) -> None:
        await running.submit([town.award("resident-1", "clean-pond") for _ in range(3)])
        await rpc_error(running.submit([town.award("resident-1", "V99")]))

    try:
        run_node(log, body, metrics=metrics)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        metrics.stop_http()
    assert f"redlist_tree_size {float(SETUP_SIZE + 3)}" in text
    assert "redlist_entries_appended_total 3.0" in text
    assert "redlist_commits_total 1.0" in text
    assert 'redlist_refusals_total{check="rule-inactive",code="FAILED_PRECONDITION"} 1.0' in text
    assert "redlist_commit_seconds_count 1.0" in text


def test_metrics_show_the_memory_of_the_entry_id_filters(tmp_path: Path, town: Town) -> None:
    """``redlist_id_filter_bytes`` follows the filters readers build (ADR 0056): with a
    small index shape, a few batches make runs of tier 1, whose filters the next
    batches' lookups build."""
    with id_index_shape(SMALL_ID_INDEX):
        log = create_log(tmp_path / "small-index", town, setup=True)
    metrics = NodeMetrics()
    port = metrics.serve_http("127.0.0.1", 0)

    def scraped() -> float:
        url = f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        found = re.search(r"^redlist_id_filter_bytes (\S+)$", text, re.MULTILINE)
        assert found is not None, text
        return float(found.group(1))

    async def body(running: Running) -> None:
        assert scraped() == 0.0
        for n in range(4):
            await running.submit([town.award(f"resident-{n}", "clean-pond") for _ in range(5)])
        assert scraped() == log.id_filter_bytes > 0

    try:
        run_node(log, body, metrics=metrics)
    finally:
        metrics.stop_http()
        log.close()


def test_a_second_node_cannot_take_a_port_in_use(log: Log, tmp_path: Path, town: Town) -> None:
    other = create_log(tmp_path / "other", town)

    async def body(running: Running) -> None:
        with pytest.raises(RedlistError, match=f"cannot listen on 127.0.0.1:{running.node.port}"):
            await NodeServer.start(other, f"127.0.0.1:{running.node.port}")

    try:
        run_node(log, body)
    finally:
        other.close()


# ---------------------------------------------------------------------------
# A real `redlist-node serve` process


def test_sigterm_under_load_exits_cleanly_keeping_every_acknowledged_entry(
    tmp_path: Path, town: Town
) -> None:
    data = tmp_path / "data"
    create_log(data, town, setup=True).close()
    work = iter(
        [[town.award(f"resident-{n % 30}", "clean-pond") for _ in range(20)] for n in range(300)]
    )
    work_lock, acked_lock = threading.Lock(), threading.Lock()
    acked: dict[bytes, int] = {}
    failures: list[grpc.StatusCode] = []

    with (tmp_path / "stderr.log").open("w") as stderr:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "redlist.node.cli", "serve"),
                *("--data", str(data), "--listen", "127.0.0.1:0", "--grace", "10"),
            ],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.fullmatch(r"serving log (\S+) \((\d+) entries\) on (127\.0\.0\.1:\d+)\n", line)
        assert match, line
        assert (match[1], int(match[2])) == (town.origin, SETUP_SIZE)
        address = match[3]

        def client() -> None:
            with grpc.insecure_channel(address) as channel:
                stub = ledger_pb2_grpc.LedgerStub(channel)
                while True:
                    with work_lock:
                        envelopes = next(work, None)
                    if envelopes is None:
                        return
                    try:
                        response = stub.Submit(submit_request(envelopes), timeout=20)
                    except grpc.RpcError as error:
                        failures.append(error.code())
                        return  # the node has stopped taking calls
                    with acked_lock:
                        acked.update(zip(envelopes, response.seqs, strict=True))

        threads = [threading.Thread(target=client) for _ in range(2)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 20
        while len(acked) < 400 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(acked) >= 400, "the node took too long to acknowledge the first batches"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        for thread in threads:
            thread.join(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert next(work, None) is not None, "the load ended before the signal"
    assert set(failures) <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}
    with Log.open(data, readonly=True) as reopened:
        checkpoint = reopened.checkpoint()
        leaves = all_leaves(reopened)
        assert checkpoint.size == len(leaves) >= SETUP_SIZE + len(acked)
        assert checkpoint.root == merkle.root_of([merkle.leaf_hash(leaf) for leaf in leaves])
        for envelope, seq in acked.items():
            assert Leaf.from_bytes(leaves[seq]).envelope == envelope
    log_text = (tmp_path / "stderr.log").read_text()
    assert "commit batches=" in log_text
    assert "stopped" in log_text


def test_the_start_up_line_says_which_copy_of_the_core_runs(
    log: Log, caplog: pytest.LogCaptureFixture
) -> None:
    """An operator reads whether the core runs compiled (docs/adr/0057) in the log."""

    async def body(running: Running) -> None:
        await running.checkpoint()

    with caplog.at_level("INFO", logger="redlist.node.server"):
        run_node(log, body)
    serving = [r.getMessage() for r in caplog.records if r.getMessage().startswith("serving ")]
    expected = "compiled" if native.compiled_modules() else "sources"
    assert len(serving) == 1 and serving[0].endswith(f" core={expected}")
