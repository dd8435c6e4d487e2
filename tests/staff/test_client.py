"""The staff gRPC client against stand-in servers: how every kind of failure comes out.

The real node is exercised end to end in test_commands_e2e.py; here a small servicer
answers exactly what each test needs (a refusal with metadata, silence, a wrong leaf).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from redlist.ledger import merkle
from redlist.ledger.bodies import Grade, TownConfig
from redlist.ledger.crypto import SigningKey
from redlist.ledger.entry import ZERO_HASH, Leaf
from redlist.ledger.errors import FormatError, SourceError, VerificationError
from redlist.ledger.note.checkpoint import Checkpoint, SignedCheckpoint, sign_checkpoint
from redlist.ledger.note.keys import NoteSigner
from redlist.proto.client import check_address
from redlist.proto.errors import NodeError
from redlist.staff import csvfiles
from redlist.staff.advice import IN_DOUBT, advice
from redlist.staff.client import LedgerClient
from redlist.staff.commands import submit
from redlist.staff.sheet import sheet_rows
from redlist.v1 import ledger_pb2 as pb
from redlist.v1 import ledger_pb2_grpc

ORIGIN = "wendeng.example/redlist"
LOG_SIGNER = NoteSigner.generate(ORIGIN)
LOG_KEY = LOG_SIGNER.verifier()


def audit_path(index: int, hashes: list[bytes]) -> list[bytes]:
    """RFC 6962 inclusion proof of leaf ``index`` among ``hashes``, written out plainly."""
    if len(hashes) <= 1:
        return []
    split = 1 << ((len(hashes) - 1).bit_length() - 1)
    if index < split:
        return [*audit_path(index, hashes[:split]), merkle.root_of(hashes[split:])]
    return [*audit_path(index - split, hashes[split:]), merkle.root_of(hashes[:split])]


class StandIn(ledger_pb2_grpc.LedgerServicer):
    """A tiny honest log that answers Submit with whatever ``refusal`` says, and lies on
    request: ``forger`` signs its checkpoints, ``swap`` replaces the envelope it serves
    at a seq, ``bad_proofs`` damages its proofs, ``seq_offset`` shifts the seqs it answers."""

    def __init__(self) -> None:
        self.reset()
        self.released = threading.Event()

    def reset(self) -> None:
        self.refusal: tuple[grpc.StatusCode, str, tuple[tuple[str, str], ...]] | None = None
        self.delay = 0.0
        self.leaf_seqs: list[int] | None = None
        self.leaves: list[bytes] = []
        self.forger: NoteSigner | None = None
        self.swap: dict[int, bytes] = {}
        self.bad_proofs = False
        self.seq_offset = 0
        self.proofs_asked = 0
        self.submit([b"genesis"])

    def submit(self, envelopes: list[bytes]) -> list[int]:
        seqs = []
        for envelope in envelopes:
            prev = merkle.leaf_hash(self.leaves[-1]) if self.leaves else ZERO_HASH
            seqs.append(len(self.leaves))
            self.leaves.append(Leaf(len(self.leaves), 0, prev, envelope).to_bytes())
        return seqs

    def checkpoint(self) -> SignedCheckpoint:
        hashes = [merkle.leaf_hash(leaf) for leaf in self.leaves]
        return sign_checkpoint(
            Checkpoint(ORIGIN, len(hashes), merkle.root_of(hashes)), self.forger or LOG_SIGNER
        )

    def Submit(self, request: pb.SubmitRequest, context: grpc.ServicerContext) -> pb.SubmitResponse:
        if self.delay:
            self.released.wait(self.delay)
        if self.refusal is not None:
            code, message, metadata = self.refusal
            context.set_trailing_metadata(metadata)
            context.abort(code, message)
        seqs = [seq + self.seq_offset for seq in self.submit(list(request.envelopes))]
        return pb.SubmitResponse(seqs=seqs, checkpoint=self.checkpoint().note)

    def GetCheckpoint(
        self, request: pb.GetCheckpointRequest, context: grpc.ServicerContext
    ) -> pb.GetCheckpointResponse:
        return pb.GetCheckpointResponse(checkpoint=self.checkpoint().note)

    def GetInclusionProof(
        self, request: pb.InclusionProofRequest, context: grpc.ServicerContext
    ) -> pb.Proof:
        self.proofs_asked += 1
        hashes = [merkle.leaf_hash(leaf) for leaf in self.leaves[: request.tree_size]]
        path = audit_path(request.seq, hashes)
        if self.bad_proofs and path:
            path[0] = bytes(32)
        return pb.Proof(hashes=path, tree_size=request.tree_size)

    def GetLeaves(
        self, request: pb.GetLeavesRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.LeafData]:
        if self.leaf_seqs is not None:
            for seq in self.leaf_seqs:
                yield pb.LeafData(seq=seq, leaf=b"")
            return
        for seq in range(request.start, request.end):
            leaf = self.leaves[seq]
            if seq in self.swap:
                original = Leaf.from_bytes(leaf)
                leaf = Leaf(seq, original.time, original.prev, self.swap[seq]).to_bytes()
            yield pb.LeafData(seq=seq, leaf=leaf)


@pytest.fixture(scope="module")
def stand_in() -> Iterator[tuple[StandIn, str]]:
    servicer = StandIn()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    ledger_pb2_grpc.add_LedgerServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, f"127.0.0.1:{port}"
    servicer.released.set()
    server.stop(grace=None)


@pytest.fixture
def node(stand_in: tuple[StandIn, str]) -> Iterator[tuple[StandIn, LedgerClient]]:
    servicer, address = stand_in
    servicer.reset()
    servicer.released.clear()
    with LedgerClient(address, log_key=LOG_KEY) as client:
        yield servicer, client
    servicer.released.set()


def test_submit_returns_seqs_and_checkpoint(node: tuple[StandIn, LedgerClient]) -> None:
    _, client = node
    result = client.submit([b"a", b"b"])
    assert result.seqs == (1, 2)
    assert result.tree_size == 3
    assert result.checkpoint.log_key == LOG_KEY
    assert client.latest().origin == "wendeng.example/redlist"


def test_refusal_carries_code_message_index_and_check(node: tuple[StandIn, LedgerClient]) -> None:
    servicer, client = node
    servicer.refusal = (
        grpc.StatusCode.FAILED_PRECONDITION,
        "envelope 3: rule 'V99' is not in the catalogue [rule-inactive]",
        (("redlist-index", "3"), ("redlist-check", "rule-inactive")),
    )
    with pytest.raises(NodeError) as refused:
        client.submit([b"x"] * 4, action="the award")
    error = refused.value
    assert (error.code, error.index, error.check) == ("FAILED_PRECONDITION", 3, "rule-inactive")
    assert error.message == "rule 'V99' is not in the catalogue"
    assert error.diagnostics() == (
        "the node refused the award: rule 'V99' is not in the catalogue "
        "[FAILED_PRECONDITION, check rule-inactive]"
    )


def test_refusal_without_metadata_keeps_the_whole_message(
    node: tuple[StandIn, LedgerClient],
) -> None:
    servicer, client = node
    servicer.refusal = (grpc.StatusCode.RESOURCE_EXHAUSTED, "the batch is too large", ())
    with pytest.raises(NodeError) as refused:
        client.submit([b"x"])
    assert refused.value.index is None and refused.value.check is None
    assert refused.value.diagnostics() == (
        "the node refused the request: the batch is too large [RESOURCE_EXHAUSTED]"
    )


def test_internal_error_says_the_node_failed(node: tuple[StandIn, LedgerClient]) -> None:
    servicer, client = node
    servicer.refusal = (grpc.StatusCode.INTERNAL, "disk on fire", ())
    with pytest.raises(NodeError) as failed:
        client.submit([b"x"], action="the award")
    assert failed.value.diagnostics() == (
        "the node failed while handling the award: disk on fire [INTERNAL]"
    )


def test_a_node_that_does_not_answer_in_time(stand_in: tuple[StandIn, str]) -> None:
    servicer, address = stand_in
    servicer.reset()
    servicer.delay = 5.0
    servicer.released.clear()
    started = time.monotonic()
    try:
        with (
            LedgerClient(address, log_key=LOG_KEY, submit_timeout=0.3) as client,
            pytest.raises(SourceError) as failed,
        ):
            client.submit([b"x"])
    finally:
        servicer.released.set()
    assert time.monotonic() - started < 4
    message = failed.value.diagnostics()
    assert message.startswith(f"cannot reach the node at {address}: it did not answer in time")
    # The batch may have been committed just before the answer was lost.
    assert "may or may not have been recorded" in message
    assert "[DEADLINE_EXCEEDED]" in message
    assert message.endswith(advice(IN_DOUBT, repeatable=False))


def test_a_repeatable_command_is_told_to_run_again_on_both_outputs(
    stand_in: tuple[StandIn, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A sheet's run that lost its answer: stderr (the error) and stdout (the run's
    summary, ``submit._report_stop``) give the same advice, word for word."""
    servicer, address = stand_in
    servicer.reset()
    servicer.delay = 5.0
    servicer.released.clear()
    try:
        with (
            LedgerClient(address, log_key=LOG_KEY, submit_timeout=0.3) as client,
            pytest.raises(SourceError) as failed,
        ):
            client.repeatable = True
            client.submit([b"x"])
    finally:
        servicer.released.set()
    said = advice(IN_DOUBT, repeatable=True)
    assert failed.value.diagnostics().endswith(said)
    rows = sheet_rows(
        (csvfiles.AwardRow(2, "dgc-2", "V01", 1, None),), "t.example/log", "2026-05-03"
    )
    config = TownConfig(1000, (Grade("A", None),), 2, 7, "Asia/Shanghai")
    plan = submit.Plan("sheet.csv", rows, {}, 0, "2026-05-03", config, {})
    submit._report_stop(plan, submit.Outcome(), refused=False)
    assert said in capsys.readouterr().out


def test_unreachable_node_is_a_source_error() -> None:
    with (
        LedgerClient("127.0.0.1:1", log_key=LOG_KEY) as client,
        pytest.raises(SourceError) as failed,
    ):
        client.latest()
    assert failed.value.diagnostics().startswith(
        "cannot reach the node at 127.0.0.1:1: is it running, and is the address right?"
    )
    assert failed.value.diagnostics().endswith("[UNAVAILABLE]")


def test_a_server_without_the_call_is_not_a_redlist_node(
    node: tuple[StandIn, LedgerClient],
) -> None:
    _, client = node
    with pytest.raises(SourceError, match="does not offer redlist's GetAccount call"):
        client.get_account("dgc-0001")  # the stand-in leaves GetAccount unimplemented


def test_leaves_out_of_order_are_refused(node: tuple[StandIn, LedgerClient]) -> None:
    servicer, client = node
    servicer.leaf_seqs = [0, 2]
    with pytest.raises(FormatError, match="sent leaf 2 where 1 was due"):
        list(client.get_leaves(0, 3))
    servicer.leaf_seqs = [0]
    with pytest.raises(FormatError, match="not to 2"):
        list(client.get_leaves(0, 3))


@pytest.mark.parametrize(
    "address", ["127.0.0.1:7420", "localhost:1", "node.town.example:65535", "[::1]:7420"]
)
def test_good_addresses(address: str) -> None:
    assert check_address(address) == address


@pytest.mark.parametrize(
    "address", ["", "127.0.0.1", ":7420", "127.0.0.1:0", "host:99999", "host:port", "a b:1"]
)
def test_bad_addresses(address: str) -> None:
    with pytest.raises(SourceError, match="is not HOST:PORT"):
        LedgerClient(address, log_key=LOG_KEY)


# ---------------------------------------------------------------------------
# What the node must prove


def test_a_run_of_entries_is_proved_recorded_by_its_first_and_last_proofs(
    node: tuple[StandIn, LedgerClient],
) -> None:
    servicer, client = node
    envelopes = [bytes([n]) * 3 for n in range(150)]
    result = client.submit(envelopes)
    client.prove_recorded(dict(zip(result.seqs, envelopes, strict=True)), result.checkpoint)
    assert servicer.proofs_asked == 2  # the run's ends; its leaves give the rest (ADR 0050)
    # Entries recorded earlier (seqs below the batch's) are proved with a proof each.
    later = client.submit([b"late"])
    servicer.proofs_asked = 0
    client.prove_recorded({1: envelopes[0], later.seqs[0]: b"late"}, later.checkpoint)
    assert servicer.proofs_asked == 2


def test_a_run_whose_proofs_fail_is_proved_entry_by_entry_and_the_first_named(
    node: tuple[StandIn, LedgerClient],
) -> None:
    servicer, client = node
    envelopes = [b"entry %d" % n for n in range(10)]
    result = client.submit(envelopes)
    servicer.bad_proofs = True
    with pytest.raises(VerificationError, match="does not place that entry") as refused:
        client.prove_recorded(dict(zip(result.seqs, envelopes, strict=True)), result.checkpoint)
    assert (refused.value.seq, refused.value.check) == (1, "inclusion")
    assert servicer.proofs_asked > 2  # the run's two, then each entry's own


def test_a_checkpoint_not_signed_by_the_log_key_is_refused(
    node: tuple[StandIn, LedgerClient],
) -> None:
    servicer, client = node
    servicer.forger = NoteSigner.generate(ORIGIN)
    with pytest.raises(VerificationError) as refused:
        client.latest()
    assert refused.value.check == "checkpoint"
    message = refused.value.diagnostics()
    assert f"does not verify with the log key {LOG_KEY.describe()}" in message
    assert "Nothing was recorded" in message
    with pytest.raises(VerificationError, match="Do not count it as recorded"):
        client.submit([b"x"])


def test_a_node_that_serves_another_entry_is_caught(node: tuple[StandIn, LedgerClient]) -> None:
    servicer, client = node
    result = client.submit([b"mine", b"also mine"])
    servicer.swap[2] = b"someone else's"
    with pytest.raises(VerificationError) as refused:
        client.prove_recorded({1: b"mine", 2: b"also mine"}, result.checkpoint)
    assert (refused.value.seq, refused.value.check) == (2, "inclusion")
    assert "is not the one sent" in refused.value.diagnostics()


def test_a_proof_that_does_not_verify_is_caught(node: tuple[StandIn, LedgerClient]) -> None:
    servicer, client = node
    result = client.submit([b"mine"])
    servicer.bad_proofs = True
    with pytest.raises(VerificationError, match="does not place that entry") as refused:
        client.prove_recorded({1: b"mine"}, result.checkpoint)
    assert (refused.value.seq, refused.value.check) == (1, "inclusion")


def test_a_seq_beyond_the_signed_checkpoint_is_caught(node: tuple[StandIn, LedgerClient]) -> None:
    servicer, client = node
    servicer.seq_offset = 5
    with pytest.raises(VerificationError, match="covers only 2 entries") as refused:
        client.submit([b"mine"])
    assert refused.value.check == "inclusion"


def test_an_older_node_without_the_account_check_stops_the_command(
    node: tuple[StandIn, LedgerClient],
) -> None:
    # The stand-in, like a node older than CheckAccounts, does not offer the call: the
    # sheet's accounts cannot be checked, and the client says so rather than skip it.
    _, client = node
    with pytest.raises(NodeError, match="runs an older redlist-node, without CheckAccounts") as old:
        client.check_accounts(["dgc-0001"], SigningKey.generate())
    assert old.value.code == "UNIMPLEMENTED"
    assert "nothing was sent" in old.value.diagnostics()
