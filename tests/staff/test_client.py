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

from redlist.ledger.errors import FormatError, SourceError
from redlist.proto.client import check_address
from redlist.proto.errors import NodeError
from redlist.staff.client import LedgerClient, read_checkpoint
from redlist.v1 import ledger_pb2 as pb
from redlist.v1 import ledger_pb2_grpc

CHECKPOINT = (
    "wendeng.example/redlist\n5\n"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n"
    # Structure only: the client reads checkpoints without checking their signatures.
    f"— wendeng.example/redlist {'A' * 84}\n"
)


class StandIn(ledger_pb2_grpc.LedgerServicer):
    """Answers Submit with whatever ``refusal`` says; other calls as configured."""

    def __init__(self) -> None:
        self.refusal: tuple[grpc.StatusCode, str, tuple[tuple[str, str], ...]] | None = None
        self.delay = 0.0
        self.leaf_seqs: list[int] = []
        self.released = threading.Event()

    def Submit(self, request: pb.SubmitRequest, context: grpc.ServicerContext) -> pb.SubmitResponse:
        if self.delay:
            self.released.wait(self.delay)
        if self.refusal is not None:
            code, message, metadata = self.refusal
            context.set_trailing_metadata(metadata)
            context.abort(code, message)
        return pb.SubmitResponse(seqs=range(7, 7 + len(request.envelopes)), checkpoint=CHECKPOINT)

    def GetCheckpoint(
        self, request: pb.GetCheckpointRequest, context: grpc.ServicerContext
    ) -> pb.GetCheckpointResponse:
        return pb.GetCheckpointResponse(checkpoint=CHECKPOINT)

    def GetLeaves(
        self, request: pb.GetLeavesRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.LeafData]:
        for seq in self.leaf_seqs:
            yield pb.LeafData(seq=seq, leaf=b"")


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
    servicer.refusal, servicer.delay, servicer.leaf_seqs = None, 0.0, []
    servicer.released.clear()
    with LedgerClient(address) as client:
        yield servicer, client
    servicer.released.set()


def test_submit_returns_seqs_and_checkpoint(node: tuple[StandIn, LedgerClient]) -> None:
    _, client = node
    result = client.submit([b"a", b"b"])
    assert result.seqs == (7, 8)
    assert result.tree_size == 5
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
    servicer.refusal, servicer.delay = None, 5.0
    servicer.released.clear()
    started = time.monotonic()
    try:
        with (
            LedgerClient(address, submit_timeout=0.3) as client,
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


def test_unreachable_node_is_a_source_error() -> None:
    with LedgerClient("127.0.0.1:1") as client, pytest.raises(SourceError) as failed:
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
        LedgerClient(address)


def test_checkpoint_is_read_without_its_signature_being_checked() -> None:
    checkpoint = read_checkpoint(CHECKPOINT)
    assert (checkpoint.origin, checkpoint.size) == ("wendeng.example/redlist", 5)
