"""The ``redlist.v1.Ledger`` service: each call goes to the log, errors become statuses.

Handlers stay thin. Submit hands its batch to the :class:`~redlist.node.batcher.Batcher`;
reads run on a thread pool (the log blocks on LMDB, never on the event loop);
messages are built in :mod:`redlist.node.serde`; refusals are mapped to gRPC
status codes in exactly one place, :func:`refusal_of`. Requests that are not
protobuf at all are refused by :class:`UndecodableRequestInterceptor`, and every
status message is cut to :data:`MAX_STATUS_MESSAGE_BYTES` (it may quote the caller).

A refused Submit carries its envelope index and broken check twice: in the
status message, in words ("envelope 3: rule 'V99' is not in the catalogue
[rule-inactive]"), and as trailing metadata for programs (the keys of
:mod:`redlist.proto.contract`, which every client reads them with). A batch over
the node's limit names the limit as its check and carries its value; ``GetLimits``
states the limits before anything is sent.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf.message import DecodeError
from grpc import aio

from redlist.ledger.entry import is_valid_account
from redlist.ledger.errors import (
    CONFLICT_CHECK,
    FORMAT_CHECK,
    BatchError,
    IntegrityError,
    PageTokenError,
    RedlistError,
    StoreError,
)
from redlist.ledger.log import Log
from redlist.ledger.statement import PAGE_BYTES
from redlist.node import serde
from redlist.node.batcher import Batcher, TreeWatch
from redlist.node.metrics import NodeMetrics
from redlist.proto.contract import MAX_BATCH_CHECK, Limits, RefusalDetails
from redlist.v1 import ledger_pb2 as pb
from redlist.v1 import ledger_pb2_grpc

logger = logging.getLogger(__name__)

#: Checks about who signed: the signers may not make this entry.
PERMISSION_CHECKS = frozenset(
    {"signer-unknown", "signer-revoked", "signature", "signer-role", "quorum"}
)

#: Leaves streamed per read of the store: bounds memory per stream and time per read.
CHUNK_LEAVES = 1024
CHUNK_BYTES = 1024 * 1024

#: A status message carries at most this many UTF-8 bytes. Messages quote what the
#: caller sent (an account id, a map key, a log name), and a status travels in
#: HTTP/2 trailers, which clients refuse past 8-16 KiB: a longer message would
#: reach the caller as RESOURCE_EXHAUSTED ("metadata size exceeds limit"), with
#: the node's words and the index and check metadata lost.
MAX_STATUS_MESSAGE_BYTES = 1024

_T = TypeVar("_T")
# Any call's context: the helpers only abort with it.
_AnyContext = aio.ServicerContext[Any, Any]


@dataclass(frozen=True)
class Refusal:
    """A gRPC status for an error: its code, then the fields of every refusal in their
    order (``CheckError``): check, plain-words message, where (batch ``index``); and
    for a limit, its value.

    The status message is the message in words, with the index and check around it
    as ``CheckError.diagnostics`` puts them; the trailing metadata repeats the
    fields for programs (``redlist.proto.contract``).
    """

    code: grpc.StatusCode
    check: str | None
    message: str
    index: int | None = None
    limit: int | None = None

    @classmethod
    def of_batch(cls, error: BatchError) -> Refusal:
        """The status of a refused envelope: its code follows from the broken check."""
        if error.check == FORMAT_CHECK:
            code = grpc.StatusCode.INVALID_ARGUMENT
        elif error.check in PERMISSION_CHECKS:
            code = grpc.StatusCode.PERMISSION_DENIED
        elif error.check == CONFLICT_CHECK:
            code = grpc.StatusCode.ALREADY_EXISTS
        elif error.check == "internal":
            code = grpc.StatusCode.INTERNAL
        else:
            code = grpc.StatusCode.FAILED_PRECONDITION
        return cls(code, error.check, error.message, index=error.index)

    def status_message(self) -> str:
        where = f"envelope {self.index}: " if self.index is not None else ""
        suffix = f" [{self.check}]" if self.check is not None else ""
        return f"{where}{self.message}{suffix}"

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return RefusalDetails(self.check, self.index, self.limit).to_metadata()


def refusal_of(error: BaseException) -> Refusal:
    """The status a Submit error is answered with (DESIGN 4; see the proto's Submit), and
    a read's (a page token that continues no read of the account is INVALID_ARGUMENT)."""
    if isinstance(error, BatchError):
        return Refusal.of_batch(error)
    if isinstance(error, PageTokenError):
        return Refusal(grpc.StatusCode.INVALID_ARGUMENT, None, str(error))
    if isinstance(error, IntegrityError):
        return Refusal(
            grpc.StatusCode.INTERNAL,
            None,
            f"the node's stored log failed its own checks, nothing was stored: "
            f"{error.diagnostics()}",
        )
    if isinstance(error, StoreError):
        return Refusal(
            grpc.StatusCode.UNAVAILABLE,
            None,
            f"the node cannot store entries now: {error.diagnostics()}",
        )
    if isinstance(error, RedlistError):
        return Refusal(grpc.StatusCode.INTERNAL, None, error.diagnostics())
    return Refusal(grpc.StatusCode.INTERNAL, None, "internal error in the node; nothing was stored")


class LedgerServicer(ledger_pb2_grpc.LedgerServicer):
    """Serves one open log. ``reads`` is the thread pool for the log's blocking reads;
    ``limits`` are what the node takes in one Submit (its server enforces the message
    size, the servicer the number of envelopes)."""

    def __init__(
        self,
        log: Log,
        batcher: Batcher,
        watch: TreeWatch,
        reads: Executor,
        *,
        limits: Limits,
        metrics: NodeMetrics | None = None,
    ) -> None:
        self._log = log
        self._batcher = batcher
        self._watch = watch
        self._reads = reads
        self._limits = limits
        self._metrics = metrics

    # -- writing --------------------------------------------------------------

    async def Submit(
        self,
        request: pb.SubmitRequest,
        context: aio.ServicerContext[pb.SubmitRequest, pb.SubmitResponse],
    ) -> pb.SubmitResponse:
        envelopes = serde.envelopes_from_request(request)
        if not envelopes:
            await self._refuse(
                context,
                Refusal(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    None,
                    "the batch is empty: send at least one envelope",
                ),
            )
        most = self._limits.max_batch
        if len(envelopes) > most:
            await self._refuse(
                context,
                Refusal(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    MAX_BATCH_CHECK,
                    f"the batch has {len(envelopes)} envelopes; this node takes at most "
                    f"{most} in one request, split it",
                    limit=most,
                ),
            )
        try:
            result = await self._batcher.submit(envelopes)
        except Exception as error:  # every failure is answered; refusal_of says how
            if not isinstance(error, RedlistError):
                logger.error("Submit failed unexpectedly", exc_info=error)
            refusal = refusal_of(error)
        else:
            return serde.submit_response(result)
        await self._refuse(context, refusal, envelopes=len(envelopes))

    async def _refuse(
        self,
        context: aio.ServicerContext[pb.SubmitRequest, pb.SubmitResponse],
        refusal: Refusal,
        *,
        envelopes: int = 0,
    ) -> NoReturn:
        logger.info(
            "refused code=%s index=%s check=%s envelopes=%d: %s",
            refusal.code.name,
            "-" if refusal.index is None else refusal.index,
            refusal.check or "-",
            envelopes,
            bounded_message(refusal.status_message()),
        )
        if self._metrics is not None:
            self._metrics.observe_refusal(code=refusal.code.name, check=refusal.check or "")
        await context.abort(
            refusal.code, bounded_message(refusal.status_message()), refusal.trailing_metadata()
        )

    async def GetLimits(
        self,
        request: pb.GetLimitsRequest,
        context: aio.ServicerContext[pb.GetLimitsRequest, pb.Limits],
    ) -> pb.Limits:
        return self._limits.to_message()

    # -- reading --------------------------------------------------------------

    async def GetCheckpoint(
        self,
        request: pb.GetCheckpointRequest,
        context: aio.ServicerContext[pb.GetCheckpointRequest, pb.GetCheckpointResponse],
    ) -> pb.GetCheckpointResponse:
        return serde.checkpoint_response(await self._read(context, self._log.checkpoint))

    async def GetLeaves(
        self,
        request: pb.GetLeavesRequest,
        context: aio.ServicerContext[pb.GetLeavesRequest, pb.LeafData],
    ) -> AsyncIterator[pb.LeafData]:
        start, end = request.start, request.end
        if start > end:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"start {start} is after end {end}; the range is [start, end)",
            )
        await self._size_at_least(context, end, f"end {end}")
        async for seq, leaf in self._stream(context, start, end):
            yield serde.leaf_data(seq, leaf)

    async def GetInclusionProof(
        self,
        request: pb.InclusionProofRequest,
        context: aio.ServicerContext[pb.InclusionProofRequest, pb.Proof],
    ) -> pb.Proof:
        seq, tree_size = request.seq, request.tree_size
        size = await self._size_at_least(context, tree_size, f"tree size {tree_size}")
        if tree_size == 0:
            tree_size = size
        if seq >= tree_size:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"entry {seq} is not in the tree of {tree_size} entries (seqs 0 to "
                f"{tree_size - 1})",
            )
        hashes = await self._read(context, self._log.inclusion_proof, seq, tree_size)
        return serde.proof(hashes, tree_size)

    async def GetConsistencyProof(
        self,
        request: pb.ConsistencyProofRequest,
        context: aio.ServicerContext[pb.ConsistencyProofRequest, pb.Proof],
    ) -> pb.Proof:
        first, second = request.first, request.second
        if first > second:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"first size {first} is larger than second size {second}; a log never shrinks",
            )
        await self._size_at_least(context, second, f"tree size {second}")
        hashes = await self._read(context, self._log.consistency_proof, first, second)
        return serde.proof(hashes, second)

    async def GetAccount(
        self,
        request: pb.GetAccountRequest,
        context: aio.ServicerContext[pb.GetAccountRequest, pb.Account],
    ) -> pb.Account:
        if not is_valid_account(request.account):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                bounded_message(
                    f"account id {request.account!r} is not valid (letters, digits, '.', '_', "
                    "'-'; 1-64 characters, starting with a letter or digit)"
                ),
            )
        # A page's leaves stay well inside what the node may send in one answer.
        page_bytes = min(PAGE_BYTES, self._limits.max_message_bytes // 2)
        statement = await self._read(
            context,
            partial(
                self._log.account,
                page_size=request.page_size,
                page_token=request.page_token,
                page_bytes=page_bytes,
            ),
            request.account,
        )
        return serde.account_message(statement)

    async def Follow(
        self,
        request: pb.FollowRequest,
        context: aio.ServicerContext[pb.FollowRequest, pb.FollowEvent],
    ) -> AsyncIterator[pb.FollowEvent]:
        position = request.start
        await self._size_at_least(context, position, f"start {position}")
        sent_checkpoint_for: int | None = None
        while True:
            size = await self._size(context)
            if position < size:
                async for seq, leaf in self._stream(context, position, size):
                    yield serde.follow_leaf(seq, leaf)
                position = size
            if sent_checkpoint_for != position:
                checkpoint = await self._read(context, self._log.checkpoint_at, position)
                if checkpoint is None:  # every committed size has one; a damaged store has not
                    await context.abort(
                        grpc.StatusCode.INTERNAL,
                        f"the checkpoint of tree size {position} is missing",
                    )
                yield serde.follow_checkpoint(checkpoint)
                sent_checkpoint_for = position
            if not await self._watch.wait_beyond(position):
                return  # the node is shutting down: end the stream cleanly

    # -- helpers --------------------------------------------------------------

    async def _read(self, context: _AnyContext, function: Callable[..., _T], *args: object) -> _T:
        """``function(*args)`` on the read pool; a store failure ends the call with a status."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._reads, partial(function, *args))
        except RedlistError as error:
            refusal = refusal_of(error)
            message = refusal.status_message()
            logger.error("read failed code=%s: %s", refusal.code.name, message)
            await context.abort(refusal.code, bounded_message(message))

    async def _size(self, context: _AnyContext) -> int:
        return await self._read(context, _log_size, self._log)

    async def _size_at_least(self, context: _AnyContext, needed: int, what: str) -> int:
        """The log's size; OUT_OF_RANGE when ``needed`` (``what`` the caller asked) is beyond."""
        size = await self._size(context)
        if needed > size:
            await context.abort(
                grpc.StatusCode.OUT_OF_RANGE,
                f"{what} is beyond the log, which has {size} entries",
            )
        return size

    async def _stream(
        self, context: _AnyContext, start: int, end: int
    ) -> AsyncIterator[tuple[int, bytes]]:
        """Leaves ``[start, end)`` read in bounded chunks, each on the thread pool."""
        position = start
        while position < end:
            chunk = await self._read(
                context, read_chunk, self._log, position, end, CHUNK_LEAVES, CHUNK_BYTES
            )
            for seq, leaf in chunk:
                yield seq, leaf
            position = chunk[-1][0] + 1


def _log_size(log: Log) -> int:
    return log.size


def read_chunk(
    log: Log,
    start: int,
    end: int,
    max_leaves: int = CHUNK_LEAVES,
    max_bytes: int = CHUNK_BYTES,
) -> list[tuple[int, bytes]]:
    """Up to ``max_leaves`` leaves from ``start`` (at least one, fewer past ``max_bytes``)."""
    chunk: list[tuple[int, bytes]] = []
    total = 0
    leaves = log.leaves(start, min(end, start + max_leaves))
    try:
        for seq, leaf in leaves:
            chunk.append((seq, leaf))
            total += len(leaf)
            if total >= max_bytes:
                break
    finally:
        if isinstance(leaves, Generator):
            leaves.close()  # ends its read transaction now
    return chunk


def bounded_message(message: str, limit: int = MAX_STATUS_MESSAGE_BYTES) -> str:
    """``message`` in at most ``limit`` UTF-8 bytes: a long middle becomes an ellipsis.

    The start (which envelope, what was wrong) and the end (the ``[check]``) are kept.
    """
    encoded = message.encode("utf-8")
    if len(encoded) <= limit:
        return message
    marker = " \u2026 (shortened) \u2026 "
    tail = min(96, limit // 4)
    head = limit - tail - len(marker.encode("utf-8"))
    # "ignore" drops a character cut in half at either edge.
    return (
        encoded[:head].decode("utf-8", "ignore")
        + marker
        + encoded[-tail:].decode("utf-8", "ignore")
    )


# ---------------------------------------------------------------------------
# Requests that are not protobuf

LEDGER_METHOD_PREFIX = f"/{pb.DESCRIPTOR.services_by_name['Ledger'].full_name}/"


@dataclass(frozen=True)
class _Undecodable:
    """Stands in for a request whose bytes are not the method's protobuf message."""

    reason: str


class UndecodableRequestInterceptor(aio.ServerInterceptor):
    """Answers a Ledger request that is not valid protobuf with INVALID_ARGUMENT, in words.

    Left to itself, gRPC answers such a request UNKNOWN ("Unexpected <class
    'DecodeError'>") and logs a traceback, which reads as a fault of the node
    rather than of the request. Every Ledger method takes one request message, so
    the decoding is moved into the call, where a refusal can be answered.
    """

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[object, grpc.RpcMethodHandler[Any, Any]]] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if (
            handler is None
            or handler.request_streaming
            or not method.startswith(LEDGER_METHOD_PREFIX)
        ):
            return handler
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = _tolerant_handler(handler, method.removeprefix(LEDGER_METHOD_PREFIX))
        self._wrapped[method] = (handler, wrapped)
        return wrapped


def _tolerant_handler(
    handler: grpc.RpcMethodHandler[Any, Any], name: str
) -> grpc.RpcMethodHandler[Any, Any]:
    deserializer = handler.request_deserializer
    if deserializer is None:
        return handler

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError as error:
            return _Undecodable(str(error))

    async def refuse(request: _Undecodable, context: _AnyContext) -> NoReturn:
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            bounded_message(
                f"the {name} request is not a valid protobuf message: {request.reason}"
            ),
        )

    serializers: dict[str, Any] = {
        "request_deserializer": deserialize,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        unary: Callable[..., Awaitable[Any]] = handler.unary_unary

        async def call(request: Any, context: _AnyContext) -> Any:
            if isinstance(request, _Undecodable):
                await refuse(request, context)
            return await unary(request, context)

        return grpc.unary_unary_rpc_method_handler(call, **serializers)
    if handler.unary_stream is not None and inspect.isasyncgenfunction(handler.unary_stream):
        stream: Callable[..., AsyncIterator[Any]] = handler.unary_stream

        async def call_stream(request: Any, context: _AnyContext) -> AsyncIterator[Any]:
            if isinstance(request, _Undecodable):
                await refuse(request, context)
            async for response in stream(request, context):
                yield response

        return grpc.unary_stream_rpc_method_handler(call_stream, **serializers)
    return handler
