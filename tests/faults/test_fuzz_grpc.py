"""Hostile calls to a real node: each is refused with its precise status, and nothing changes.

One node serves a real LMDB log on 127.0.0.1:0 for the whole module (its event loop
runs in a thread; the tests call it with the blocking client, as staff tools do).
Every call below is one the node must refuse or answer without writing: Submit
with malformed msgpack, damaged or non-canonical envelopes, entries meant for
another log, author times far in the future, envelopes over 64 KiB, too many
envelopes, empty batches and batches with one bad envelope among good ones; reads
with absurd ranges (huge, reversed, past the end); junk account ids; Follow from
beyond the end; and request bytes that are not protobuf at all.

For each call the expected status code comes from an oracle written from the
proto's contract, not from the server's code. After every refused call the tree
size and checkpoint are checked unchanged, and at the end the node still reports
SERVING, answers, and takes a valid entry.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc
import msgpack
import pytest
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped, unused-ignore]
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from tests.builders import (
    ORIGIN,
    STANDARD_RULES,
    RuleSpec,
    Town,
    corrupt_signature,
    create_log,
    leaf_at,
    root_from_leaves,
    send_with_texts,
    submit_request,
    texts_of,
)
from tests.faults.test_fuzz_decoders import loose_pack, mutate

from redlist.ledger import codec, merkle
from redlist.ledger.crypto import SigningKey
from redlist.ledger.entry import (
    ACCOUNT_PATTERN,
    MAX_ENVELOPE_SIZE,
    MAX_FUTURE_MS,
    Award,
    Envelope,
    Genesis,
    decode_body,
)
from redlist.ledger.errors import FormatError, TextError
from redlist.ledger.log import Log
from redlist.ledger.note.checkpoint import open_checkpoint
from redlist.ledger.text import text_problem
from redlist.ledger.textcommit import EntryText, check_texts
from redlist.node.batcher import now_ms
from redlist.node.config import DEFAULT_MAX_BATCH
from redlist.node.refusals import MAX_STATUS_MESSAGE_BYTES, PERMISSION_CHECKS
from redlist.node.server import LEDGER_SERVICE, NodeServer
from redlist.node.serveroptions import ServerOptions
from redlist.v1 import ledger_pb2 as pb
from redlist.v1 import ledger_pb2_grpc

Code = grpc.StatusCode
U64 = 2**64 - 1
#: The node's request limit here: small, so that an over-limit request is cheap to send.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
#: The default envelopes-per-Submit limit (the proto says 1,000 unless configured).
MAX_BATCH = DEFAULT_MAX_BATCH

#: ``make soak`` (REDLIST_SOAK=1) tries every property this many times more examples.
SOAK_SCALE = 40 if os.environ.get("REDLIST_SOAK") == "1" else 1
CALLS = settings(
    max_examples=200 * SOAK_SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
FEW = settings(
    max_examples=60 * SOAK_SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@dataclass
class Served:
    """The node under test, a client of it, and what its log looked like before the calls."""

    town: Town
    log: Log
    node: NodeServer
    channel: grpc.Channel
    stub: ledger_pb2_grpc.LedgerStub
    checkpoint: str
    size: int
    #: Envelopes stored by the fixture, by seq (awards to ``stored-N`` accounts).
    stored: dict[int, bytes]

    def assert_unchanged(self) -> None:
        """Nothing was written: same tree size and the very same signed checkpoint."""
        assert self.log.size == self.size
        answer = self.stub.GetCheckpoint(pb.GetCheckpointRequest(), timeout=10)
        assert answer.checkpoint == self.checkpoint


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    town = Town.generate()
    town.now_ms = now_ms()  # the node checks authors' times against its own clock
    log = create_log(tmp_path_factory.mktemp("fuzz-grpc") / "data", town, setup=True)
    awards = [town.award(f"stored-{n}", "clean-pond") for n in range(5)]
    seqs = log.append(awards, now_ms=town.now_ms).seqs
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fuzz-node", daemon=True)
    thread.start()
    options = ServerOptions(max_message_bytes=MAX_MESSAGE_BYTES)
    node = asyncio.run_coroutine_threadsafe(
        NodeServer.start(log, "127.0.0.1:0", options), loop
    ).result(timeout=30)
    channel = grpc.insecure_channel(node.address)
    try:
        grpc.channel_ready_future(channel).result(timeout=10)
        stub = ledger_pb2_grpc.LedgerStub(channel)
        checkpoint = stub.GetCheckpoint(pb.GetCheckpointRequest()).checkpoint
        yield Served(
            town,
            log,
            node,
            channel,
            stub,
            checkpoint,
            log.size,
            dict(zip(seqs, awards, strict=True)),
        )
    finally:
        channel.close()
        asyncio.run_coroutine_threadsafe(node.stop(grace=1.0), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        log.close()


def refusal(call: Callable[[], object]) -> grpc.RpcError:
    """The error ``call`` fails with; the test fails if it succeeds."""
    try:
        call()
    except grpc.RpcError as error:
        return error
    raise AssertionError("the call succeeded, but it should have been refused")


def code_of(error: grpc.RpcError) -> Code:
    code: Code = error.code()
    return code


def details_of(error: grpc.RpcError) -> str:
    details: str = error.details() or ""
    return details


def metadata_of(error: grpc.RpcError) -> dict[str, str]:
    # At run time each item is a (key, value) pair, whatever the type stubs say.
    trailing: Any = error.trailing_metadata() or ()
    return {str(key): str(value) for key, value in trailing}


def assert_refused(
    served: Served,
    call: Callable[[], object],
    code: Code,
    *,
    index: int | None = None,
    check: str | None = None,
    words: str | None = None,
) -> grpc.RpcError:
    """``call`` is refused with ``code`` and a message, and the log is unchanged."""
    error = refusal(call)
    assert code_of(error) == code, f"{code_of(error)} ({details_of(error)}), expected {code}"
    message = details_of(error)
    assert message.strip(), "a refusal must say why"
    assert len(message.encode()) <= MAX_STATUS_MESSAGE_BYTES
    if words is not None:
        assert words in message
    metadata = metadata_of(error)
    if index is not None:
        assert metadata.get("redlist-index") == str(index)
        assert message.startswith(f"envelope {index}: ")
    if check is not None:
        assert metadata.get("redlist-check") == check
        assert message.endswith(f"[{check}]")
    served.assert_unchanged()
    return error


def submit(served: Served, envelopes: list[bytes]) -> Callable[[], object]:
    return lambda: served.stub.Submit(submit_request(envelopes), timeout=30)


# ---------------------------------------------------------------------------
# The oracle for one envelope: what the proto's Submit contract says about it


@dataclass(frozen=True)
class Expected:
    code: Code
    check: str


FORMAT = Expected(Code.INVALID_ARGUMENT, "format")


def expected_for(
    served: Served, envelope: bytes, texts: Mapping[str, EntryText] | None = None
) -> Expected | None:
    """The status the node must give ``envelope`` alone, sent with ``texts`` (by default
    its own); None when it must accept it.

    Written for envelopes whose signatures are damaged or whose signed bytes were
    changed after signing (so only the checks *before* the signature check can fire
    differently), and for well-formed envelopes that break one stated rule. The free
    texts are checked first, before the log sees the envelope.
    """
    try:
        parsed = Envelope.from_bytes(envelope)
        body = decode_body(parsed.body)
    except FormatError:
        return FORMAT
    given = texts_of(envelope) if texts is None else texts
    try:
        check_texts(body, given)
    except TextError:
        return Expected(Code.INVALID_ARGUMENT, "text")
    stored_ids = {
        decode_body(Envelope.from_bytes(raw).body).id: raw for raw in served.stored.values()
    }
    if body.id in stored_ids:  # the id is taken: the same bytes are a resubmission
        return (
            None
            if stored_ids[body.id] == envelope
            else Expected(Code.ALREADY_EXISTS, "duplicate-id")
        )
    if body.log != served.town.origin:
        return Expected(Code.FAILED_PRECONDITION, "log")
    if isinstance(body, Genesis):
        return Expected(Code.FAILED_PRECONDITION, "genesis")
    if body.at > now_ms() + MAX_FUTURE_MS:
        return Expected(Code.FAILED_PRECONDITION, "future")
    return Expected(Code.PERMISSION_DENIED, "signature/signer")


def assert_submit_refused(
    served: Served, envelopes: list[bytes], index: int, expected: Expected
) -> None:
    error = assert_refused(served, submit(served, envelopes), expected.code, index=index)
    check = metadata_of(error).get("redlist-check")
    if expected.check == "signature/signer":
        assert check in PERMISSION_CHECKS
    else:
        assert check == expected.check
    assert details_of(error).endswith(f"[{check}]")


# ---------------------------------------------------------------------------
# Submit


@CALLS
@given(st.lists(st.binary(max_size=200), min_size=1, max_size=4))
def test_submit_of_malformed_msgpack_is_invalid_argument(
    served: Served, envelopes: list[bytes]
) -> None:
    assert_refused(
        served, submit(served, envelopes), Code.INVALID_ARGUMENT, index=0, check="format"
    )


@CALLS
@given(st.data())
def test_submit_of_a_damaged_envelope_gets_the_status_its_damage_earns(
    served: Served, data: st.DataObject
) -> None:
    town = served.town
    original = data.draw(
        st.sampled_from(
            [
                town.award("damaged-1", "clean-pond", note="the pond by the school"),
                town.award("damaged-2", "mediate-dispute"),  # two council signatures
                town.redeem("stored-0", 1),
                next(iter(served.stored.values())),
            ]
        )
    )
    damaged = mutate(data.draw, original)
    assume(damaged != original)
    # Sent with the original's texts, as a clerk's tool would have sent them.
    send_with_texts(damaged, texts_of(original))
    expected = expected_for(served, damaged)
    if expected is None:  # the damage left a stored envelope's exact bytes: a resubmission
        served.stub.Submit(submit_request([damaged]), timeout=30)
        served.assert_unchanged()
        return
    assert_submit_refused(served, [damaged], 0, expected)


@CALLS
@given(st.data())
def test_submit_of_a_non_canonical_body_is_invalid_argument(
    served: Served, data: st.DataObject
) -> None:
    town = served.town
    body = Award(
        town.origin,
        town.next_id(),
        town.now_ms,
        "resident-9",
        "clean-pond",
        note="n",
        date=town.day(),
    )
    canonical = body.to_bytes()
    loose = loose_pack(body.to_value(), data.draw)
    assume(loose != canonical)
    envelope = town.sign(loose, town.grid)  # correctly signed: only the encoding is wrong
    assert_refused(
        served, submit(served, [envelope]), Code.INVALID_ARGUMENT, index=0, check="format"
    )


@FEW
@given(st.data())
def test_submit_of_a_non_canonical_envelope_is_invalid_argument(
    served: Served, data: st.DataObject
) -> None:
    envelope = served.town.award("resident-9", "clean-pond")
    loose = loose_pack(codec.decode(envelope), data.draw)
    assume(loose != envelope)
    assert_refused(served, submit(served, [loose]), Code.INVALID_ARGUMENT, index=0, check="format")


# Origins the format allows as text (docs/format.md, "Text"): the refusal must be the log's.
other_origins = st.text(min_size=1, max_size=40).filter(
    lambda text: text != ORIGIN and text_problem(text) is None
)


@FEW
@given(other_origins)
def test_a_valid_envelope_re_signed_for_another_log_is_refused(served: Served, origin: str) -> None:
    town = served.town
    fresh = Award(
        town.origin, town.next_id(), town.now_ms, "resident-1", "clean-pond", date=town.day()
    )
    stored = codec.decode(Envelope.from_bytes(next(iter(served.stored.values()))).body)
    for value, expected in (
        (fresh.to_value(), Expected(Code.FAILED_PRECONDITION, "log")),
        # A stored entry's id is taken whatever else the copy says.
        (stored, Expected(Code.ALREADY_EXISTS, "duplicate-id")),
    ):
        value["log"] = origin
        replay = town.sign(codec.encode(value), town.grid)
        assert expected_for(served, replay) == expected
        assert_submit_refused(served, [replay], 0, expected)


def test_an_entry_of_another_town_is_refused(served: Served) -> None:
    other = Town.generate("neighbour.redlist.example/log")
    for envelope in (other.setup()[0], other.award("resident-1", "clean-pond")):
        assert_submit_refused(served, [envelope], 0, Expected(Code.FAILED_PRECONDITION, "log"))
    # Its own keys claiming to write to this log: they are not registered here.
    other.origin = served.town.origin
    envelope = other.award("resident-1", "clean-pond", entry_id=bytes(range(16)))
    assert_submit_refused(served, [envelope], 0, Expected(Code.PERMISSION_DENIED, "signer-unknown"))


@FEW
@given(st.integers(min_value=MAX_FUTURE_MS + 60_000, max_value=U64))
def test_an_author_time_far_in_the_future_is_refused(served: Served, ahead: int) -> None:
    at = min(U64, now_ms() + ahead)
    envelope = served.town.award("resident-1", "clean-pond", at=at)
    assert_refused(
        served, submit(served, [envelope]), Code.FAILED_PRECONDITION, index=0, check="future"
    )


def padded_envelope(town: Town, size: int) -> bytes:
    """A signed rule envelope of ``size`` bytes, its title padding it (free texts travel
    beside the envelope, so a note no longer can), or of the next size an envelope can
    have: where a length header grows (msgpack's str and bin headers go from 3 to 5
    bytes at 64 KiB) no envelope has the one or two sizes in between."""
    entry_id = town.next_id()
    for reachable in range(size, size + 3):
        length = 0
        for _ in range(8):
            rule = RuleSpec("padded", "x" * length, "m", 5)
            envelope = town.set_rule(rule, entry_id=entry_id)
            if len(envelope) == reachable:
                return envelope
            length += reachable - len(envelope)
    raise AssertionError(f"no envelope of {size} to {size + 2} bytes")


@FEW
@given(st.integers(min_value=MAX_ENVELOPE_SIZE + 1, max_value=MAX_ENVELOPE_SIZE * 5))
# Sizes no envelope has, where a length header grows (see padded_envelope).
@example(size=65772)
@example(size=65773)
@example(size=65907)
@example(size=65908)
def test_an_envelope_over_64_kib_is_refused_not_truncated(served: Served, size: int) -> None:
    envelope = padded_envelope(served.town, size)
    size = len(envelope)
    assert_refused(
        served,
        submit(served, [envelope]),
        Code.INVALID_ARGUMENT,
        index=0,
        check="format",
        words=f"{size} bytes is larger than the {MAX_ENVELOPE_SIZE}-byte limit",
    )


def test_too_many_envelopes_and_too_large_requests_are_resource_exhausted(served: Served) -> None:
    error = assert_refused(
        served,
        submit(served, [b"\xc0"] * (MAX_BATCH + 1)),
        Code.RESOURCE_EXHAUSTED,
        check="max-batch",
        words=f"at most {MAX_BATCH}",
    )
    assert metadata_of(error)["redlist-limit"] == str(MAX_BATCH)
    big = [b"\x00" * (MAX_MESSAGE_BYTES // 2)] * 3
    assert_refused(served, submit(served, big), Code.RESOURCE_EXHAUSTED)


def test_an_empty_batch_is_invalid_argument(served: Served) -> None:
    assert_refused(served, submit(served, []), Code.INVALID_ARGUMENT, words="empty")


BAD_KINDS = (
    "malformed",
    "non-canonical",
    "oversized",
    "signature",
    "unknown-key",
    "role",
    "quorum",
    "other-log",
    "future",
    "genesis",
    "rule",
    "overdraw",
    "target",
    "conflict",
)


def bad_envelope(served: Served, kind: str) -> tuple[bytes, Expected]:
    """One envelope that breaks exactly one rule, and the status the proto gives it."""
    town = served.town
    fail = Code.FAILED_PRECONDITION
    if kind == "malformed":
        return b"\x92\xc4\x01", FORMAT
    if kind == "non-canonical":
        body = Award(
            town.origin, town.next_id(), town.now_ms, "resident-1", "clean-pond", date=town.day()
        )
        wide = msgpack.packb(dict(reversed(list(body.to_value().items()))))
        return town.sign(wide, town.grid), FORMAT
    if kind == "oversized":
        return padded_envelope(town, MAX_ENVELOPE_SIZE + 1), FORMAT
    if kind == "signature":
        return corrupt_signature(town.award("resident-1", "clean-pond")), Expected(
            Code.PERMISSION_DENIED, "signature"
        )
    if kind == "unknown-key":
        stranger = SigningKey.generate()
        return town.award("resident-1", "clean-pond", signers=[stranger]), Expected(
            Code.PERMISSION_DENIED, "signer-unknown"
        )
    if kind == "role":
        return town.award("resident-1", "clean-pond", signers=[town.cashier]), Expected(
            Code.PERMISSION_DENIED, "signer-role"
        )
    if kind == "quorum":
        return town.award("resident-1", "mediate-dispute", signers=[town.council[0]]), Expected(
            Code.PERMISSION_DENIED, "quorum"
        )
    if kind == "other-log":
        return Town.generate("elsewhere.example/log").award("r-1", "clean-pond"), Expected(
            fail, "log"
        )
    if kind == "future":
        at = now_ms() + MAX_FUTURE_MS + 3_600_000
        return town.award("resident-1", "clean-pond", at=at), Expected(fail, "future")
    if kind == "genesis":
        return town.genesis(), Expected(fail, "genesis")
    if kind == "rule":
        return town.award("resident-1", "no-such-rule"), Expected(fail, "rule-inactive")
    if kind == "overdraw":
        return town.redeem("never-awarded", 1), Expected(fail, "overdraw")
    if kind == "target":
        return town.objection(0), Expected(fail, "target")  # seq 0 is the genesis
    if kind == "conflict":
        stored = next(iter(served.stored.values()))
        entry_id = decode_body(Envelope.from_bytes(stored).body).id
        return town.award("stored-0", "litter", entry_id=entry_id), Expected(
            Code.ALREADY_EXISTS, "duplicate-id"
        )
    raise AssertionError(kind)


@CALLS
@given(st.sampled_from(BAD_KINDS), st.integers(0, 6), st.integers(0, 6))
def test_one_bad_envelope_refuses_the_whole_batch(
    served: Served, kind: str, before: int, after: int
) -> None:
    town = served.town
    good = [town.award(f"good-{n}", "clean-pond") for n in range(before + after)]
    bad, expected = bad_envelope(served, kind)
    batch = [*good[:before], bad, *good[before:]]
    error = assert_refused(served, submit(served, batch), expected.code, index=before)
    assert metadata_of(error)["redlist-check"] == expected.check


def test_resubmitting_stored_envelopes_writes_nothing(served: Served) -> None:
    seqs = list(served.stored)
    answer = served.stub.Submit(submit_request(list(served.stored.values())))
    assert list(answer.seqs) == seqs
    assert answer.checkpoint == served.checkpoint
    served.assert_unchanged()


# ---------------------------------------------------------------------------
# Reads with absurd arguments


def sizes(served_size: int) -> st.SearchStrategy[int]:
    """Tree positions: near the log's size, and absurd ones up to 2^64 - 1."""
    return st.one_of(
        st.integers(0, served_size + 3),
        st.integers(0, U64),
        st.sampled_from([U64, U64 - 1, 2**63, 2**63 - 1, 2**32, 2**32 - 1]),
    )


# The served log's size is fixed by the fixture: genesis, setup, five awards.
SIZE = 1 + 4 + len(STANDARD_RULES) + 5


@CALLS
@given(sizes(SIZE), sizes(SIZE))
def test_get_leaves_with_any_range(served: Served, start: int, end: int) -> None:
    assert served.size == SIZE

    def call() -> list[pb.LeafData]:
        return list(served.stub.GetLeaves(pb.GetLeavesRequest(start=start, end=end), timeout=10))

    if start > end:
        assert_refused(
            served, call, Code.INVALID_ARGUMENT, words=f"start {start} is after end {end}"
        )
    elif end > SIZE:
        assert_refused(served, call, Code.OUT_OF_RANGE, words=f"end {end} is beyond the log")
    else:
        leaves = call()
        assert [leaf.seq for leaf in leaves] == list(range(start, end))


@CALLS
@given(sizes(SIZE), sizes(SIZE))
def test_get_inclusion_proof_with_any_position(served: Served, seq: int, tree_size: int) -> None:
    request = pb.InclusionProofRequest(seq=seq, tree_size=tree_size)

    def call() -> pb.Proof:
        return served.stub.GetInclusionProof(request, timeout=10)

    effective = tree_size or SIZE
    if effective > SIZE:
        assert_refused(served, call, Code.OUT_OF_RANGE, words=f"tree size {effective} is beyond")
    elif seq >= effective:
        assert_refused(served, call, Code.INVALID_ARGUMENT, words=f"entry {seq} is not in the tree")
    else:
        proof = call()
        assert proof.tree_size == effective
        leaf = leaf_at(served.log, seq)
        root = root_from_leaves(served.log, effective)
        merkle.verify_inclusion(merkle.leaf_hash(leaf), seq, effective, list(proof.hashes), root)


@CALLS
@given(sizes(SIZE), sizes(SIZE))
def test_get_consistency_proof_with_any_sizes(served: Served, first: int, second: int) -> None:
    request = pb.ConsistencyProofRequest(first=first, second=second)

    def call() -> pb.Proof:
        return served.stub.GetConsistencyProof(request, timeout=10)

    if first > second:
        assert_refused(served, call, Code.INVALID_ARGUMENT, words="a log never shrinks")
    elif second > SIZE:
        assert_refused(served, call, Code.OUT_OF_RANGE, words=f"tree size {second} is beyond")
    else:
        proof = call()
        assert proof.tree_size == second
        roots = root_from_leaves(served.log, first), root_from_leaves(served.log, second)
        merkle.verify_consistency(first, second, list(proof.hashes), *roots)


account_ids = st.one_of(
    st.text(max_size=80),
    st.from_regex(ACCOUNT_PATTERN, fullmatch=True),
    st.from_regex(ACCOUNT_PATTERN, fullmatch=True).map(lambda account: account + "\n"),
    st.text(min_size=65, max_size=70, alphabet="ab"),
    st.sampled_from(["", "-lead", ".", "a b", "张三", "a" * 65, "a" * 1_000_000, "x\x00"]),
)


@CALLS
@given(account_ids)
def test_get_account_with_any_id(served: Served, account: str) -> None:
    def call() -> pb.Account:
        return served.stub.GetAccount(pb.GetAccountRequest(account=account), timeout=10)

    if ACCOUNT_PATTERN.fullmatch(account):
        answer = call()
        assert answer.account == account
        assert answer.score >= 0
    else:
        assert_refused(served, call, Code.INVALID_ARGUMENT, words="is not valid")


def test_refusals_quoting_20_kb_of_the_callers_text_keep_their_status(served: Served) -> None:
    """A status message past ~8 KiB would reach the client as RESOURCE_EXHAUSTED."""
    town, long = served.town, "x" * 20_000
    assert_refused(
        served,
        lambda: served.stub.GetAccount(pb.GetAccountRequest(account=long + "!"), timeout=10),
        Code.INVALID_ARGUMENT,
        words="is not valid",
    )
    award = Award(
        town.origin, town.next_id(), town.now_ms, "resident-1", "clean-pond", date=town.day()
    )
    for field, value, expected in (
        ("account", long + "!", FORMAT),
        (long, 1, FORMAT),  # an unknown field, named in the message
        ("log", long, Expected(Code.FAILED_PRECONDITION, "log")),
        ("rule", long, Expected(Code.FAILED_PRECONDITION, "rule-inactive")),
    ):
        body = {**award.to_value(), field: value}
        envelope = town.sign(codec.encode(body), town.grid)
        assert_submit_refused(served, [envelope], 0, expected)


@FEW
@given(st.one_of(st.integers(SIZE + 1, U64), st.just(U64), st.integers(0, SIZE)))
def test_follow_from_any_start(served: Served, start: int) -> None:
    stream = served.stub.Follow(pb.FollowRequest(start=start), timeout=10)
    if start > SIZE:
        assert_refused(
            served, lambda: next(iter(stream)), Code.OUT_OF_RANGE, words="beyond the log"
        )
        return
    first = next(iter(stream))
    stream.cancel()
    if start < SIZE:
        assert first.WhichOneof("event") == "leaf"
        assert first.leaf.seq == start
    else:
        assert first.WhichOneof("event") == "checkpoint"
        assert first.checkpoint == served.checkpoint
    served.assert_unchanged()


# ---------------------------------------------------------------------------
# Request bytes that are not protobuf


METHODS: dict[str, tuple[type[Any], bool]] = {
    "Submit": (pb.SubmitRequest, False),
    "GetCheckpoint": (pb.GetCheckpointRequest, False),
    "GetLimits": (pb.GetLimitsRequest, False),
    "GetLeaves": (pb.GetLeavesRequest, True),
    "GetLeafBatches": (pb.GetLeavesRequest, True),
    "GetInclusionProof": (pb.InclusionProofRequest, False),
    "GetConsistencyProof": (pb.ConsistencyProofRequest, False),
    "GetAccount": (pb.GetAccountRequest, False),
    "Follow": (pb.FollowRequest, True),
}


def _identity(data: bytes) -> bytes:
    return data


def raw_call(served: Served, method: str, data: bytes) -> object:
    """Send ``data`` as the request bytes of ``method``; the first answer (raw bytes)."""
    path = f"/{LEDGER_SERVICE}/{method}"
    if METHODS[method][1]:
        stream = served.channel.unary_stream(
            path, request_serializer=_identity, response_deserializer=_identity
        )(data, timeout=10)
        try:
            return next(iter(stream), None)
        finally:
            stream.cancel()
    return served.channel.unary_unary(
        path, request_serializer=_identity, response_deserializer=_identity
    )(data, timeout=10)


@CALLS
@given(st.sampled_from(sorted(METHODS)), st.binary(max_size=64))
def test_request_bytes_that_are_not_protobuf_are_invalid_argument(
    served: Served, method: str, data: bytes
) -> None:
    message_type, _ = METHODS[method]
    try:
        message_type.FromString(data)
    except DecodeError:
        assert_refused(
            served,
            lambda: raw_call(served, method, data),
            Code.INVALID_ARGUMENT,
            words=f"the {method} request is not a valid protobuf message",
        )
        return
    # Bytes that happen to parse: the node must answer as for that request, never
    # with a status that blames itself.
    try:
        raw_call(served, method, data)
    except grpc.RpcError as error:
        assert code_of(error) in (
            Code.INVALID_ARGUMENT,
            Code.OUT_OF_RANGE,
            Code.RESOURCE_EXHAUSTED,
        ), details_of(error)
    served.assert_unchanged()


@pytest.mark.parametrize(
    "data",
    [b"\x0a\x03\xff\xfe\xfd", b"\x0a\xff\xff\xff\xff\x0f", b"\xff\xff", b"\x0b"],
    ids=["bad-utf8", "huge-length", "bad-tag", "group"],
)
def test_get_account_request_with_bad_utf8_or_wire_format(served: Served, data: bytes) -> None:
    assert_refused(
        served,
        lambda: raw_call(served, "GetAccount", data),
        Code.INVALID_ARGUMENT,
        words="not a valid protobuf message",
    )


# ---------------------------------------------------------------------------
# After all of it


def one_bad_call(stub: ledger_pb2_grpc.LedgerStub, which: int, bad: list[bytes]) -> Code:
    """One of four refused calls (``which`` modulo 4); the status code it got."""
    calls: list[Callable[[], object]] = [
        lambda: stub.Submit(submit_request(bad), timeout=30),
        lambda: list(stub.GetLeaves(pb.GetLeavesRequest(start=U64, end=1), timeout=10)),
        lambda: stub.GetAccount(pb.GetAccountRequest(account="\u00e9" * 500), timeout=10),
        lambda: stub.GetInclusionProof(
            pb.InclusionProofRequest(seq=U64, tree_size=U64), timeout=10
        ),
    ]
    return code_of(refusal(calls[which % len(calls)]))


def test_a_barrage_of_bad_calls_from_many_clients_leaves_the_node_serving(served: Served) -> None:
    batches = [[b"\x92\xc4\x01"], [padded_envelope(served.town, MAX_ENVELOPE_SIZE + 1)]]

    def client(number: int) -> list[Code]:
        with grpc.insecure_channel(served.node.address) as channel:
            stub = ledger_pb2_grpc.LedgerStub(channel)
            return [
                one_bad_call(stub, number + round_, batches[round_ % 2]) for round_ in range(25)
            ]

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = [code for result in pool.map(client, range(8)) for code in result]
    assert len(codes) == 200
    assert set(codes) <= {Code.INVALID_ARGUMENT, Code.OUT_OF_RANGE}
    assert time.monotonic() - started < 60
    served.assert_unchanged()


def test_the_node_still_serves_and_takes_a_valid_entry_after_all_of_it(served: Served) -> None:
    served.assert_unchanged()
    health: Any = health_pb2_grpc.HealthStub(served.channel)  # stubs lack its methods
    for service in ("", LEDGER_SERVICE):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    envelope = served.town.award("after-it-all", "clean-pond")
    answer = served.stub.Submit(submit_request([envelope]), timeout=30)
    assert list(answer.seqs) == [served.size]
    checkpoint = open_checkpoint(answer.checkpoint, served.log.verifier_key)
    assert checkpoint.size == served.size + 1
    assert leaf_at(served.log, served.size).endswith(envelope)
