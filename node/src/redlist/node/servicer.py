"""The ``redlist.v1.Ledger`` service: each call goes to the log, errors become statuses.

Handlers stay thin. Submit goes to :class:`~redlist.node.submitrpc.SubmitService`,
which hands its batch to the :class:`~redlist.node.batcher.Batcher`, and the review
calls to :mod:`redlist.node.reviewrpc`; reads run on a thread pool (the log blocks on
LMDB, never on the event loop); leaves are streamed in the bounded chunks and batches
of :mod:`redlist.node.leafreads`; messages are built in :mod:`redlist.node.serde`;
refusals are mapped to gRPC
status codes in exactly one place, :func:`redlist.node.refusals.refusal_of`, and every
status message is cut to ``refusals.MAX_STATUS_MESSAGE_BYTES`` (it may quote the
caller). Requests that are not protobuf at all are refused before they reach a
handler (:mod:`redlist.node.undecodable`).

A refused Submit carries its envelope index and broken check twice: in the
status message, in words ("envelope 3: rule 'V99' is not in the catalogue
[rule-inactive]"), and as trailing metadata for programs (the keys of
:mod:`redlist.proto.contract`, which every client reads them with). A batch over
the node's limit names the limit as its check and carries its value; ``GetLimits``
states the limits before anything is sent.

When the store finds one of its state records damaged (``StateDamageError``), it
takes no more writes: every Submit is answered DATA_LOSS naming the table and the
record, the first with an error line in the log, while the reads go on. When the
disk fails a commit (``CommitFailedError``: a failed write or fsync), the store takes
no more writes either, and never retries the commit (ADR 0029): every Submit is
answered UNAVAILABLE until the node is restarted. Either way the Submit path says so
once, as an error line (``writes stopped reason=...``), and calls ``writes_stopped``
(the server turns the writes' health NOT_SERVING and sets the metric).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from functools import partial
from typing import Any, TypeVar

import grpc
from grpc import aio

from redlist.ledger.entry import is_valid_account
from redlist.ledger.errors import FormatError, RedlistError
from redlist.ledger.log import Log
from redlist.ledger.note.checkpoint import SignedCheckpoint
from redlist.ledger.statement import PAGE_BYTES, page_entries
from redlist.ledger.textcommit import MAX_TEXT_BYTES
from redlist.node import leafreads, serde
from redlist.node.accountcheck import RegisterCheck, request_problem
from redlist.node.batcher import Batcher, TreeWatch
from redlist.node.metrics import NodeMetrics
from redlist.node.readers import ReadAuthority, ReadRefusal
from redlist.node.recognised import RecognisedGrades
from redlist.node.refusals import bounded_message, refusal_of
from redlist.node.review import ReviewQueue
from redlist.node.reviewrpc import ReviewCalls, ReviewService
from redlist.node.submitrpc import SubmitService
from redlist.node.texts import NodeTexts
from redlist.proto.contract import (
    CATCHING_UP_CHECK,
    CHECK_ACCOUNTS_METHOD,
    READ_SIGNATURE_CHECK,
    Limits,
    RefusalDetails,
    accounts_subject,
)
from redlist.v1 import ledger_pb2 as pb
from redlist.v1 import ledger_pb2_grpc

logger = logging.getLogger(__name__)

#: What one entry of a page may take when its text is given: the longest text, and room
#: for its leaf and framing.
_TEXT_ENTRY_BYTES = MAX_TEXT_BYTES + 1024

_T = TypeVar("_T")
# Any call's context: the helpers only abort with it.
_AnyContext = aio.ServicerContext[Any, Any]


class LedgerServicer(ReviewCalls, ledger_pb2_grpc.LedgerServicer):
    """Serves one open log. ``reads`` is the thread pool for the log's blocking reads;
    ``limits`` are what the node takes in one Submit (its server enforces the message
    size, the servicer the number of envelopes)."""

    def __init__(
        self,
        log: Log,
        batcher: Batcher | None,
        watch: TreeWatch,
        reads: Executor,
        *,
        limits: Limits,
        metrics: NodeMetrics | None = None,
        served: Callable[[SignedCheckpoint], SignedCheckpoint] | None = None,
        recognised: RecognisedGrades | None = None,
        submit_refusal: str | None = None,
        writes_stopped: Callable[[str], Awaitable[None]] | None = None,
        texts: NodeTexts | None = None,
        readers: ReadAuthority | None = None,
        review: ReviewQueue | None = None,
        register: RegisterCheck | None = None,
    ) -> None:
        self._log = log
        # The checkpoint as served: with the cosignatures collected for it (cosigning).
        self._served = served or _as_signed
        # The write path: Submit, and the review queue's appends through it.
        self._submits = SubmitService(
            batcher,
            reads,
            limits=limits,
            served=self._served,
            metrics=metrics,
            texts=texts,
            submit_refusal=submit_refusal,
            writes_stopped=writes_stopped,
        )
        # The review queue's calls (None on a mirror, which takes no proposals).
        self._review: ReviewService | None = None
        if review is not None and readers is not None:
            self._review = ReviewService(review, self._submits.append_one, reads, readers, metrics)
        # The free texts beside the log (None on a mirror, which keeps none), and who may
        # read them.
        self._texts = texts
        self._readers = readers
        # The resident register, for CheckAccounts (None on a mirror: it keeps none).
        self._register = register
        # Other towns' grades recognised here, listed on an account's first page.
        self._recognised = recognised
        # A mirror takes no proposals either: the review calls are refused with this.
        self._submit_refusal = submit_refusal
        self._watch = watch
        self._reads = reads
        self._limits = limits
        # A batch never grows past what the node may send in one answer.
        self._batch_bytes = leafreads.batch_bytes(limits.max_message_bytes)

    # -- writing --------------------------------------------------------------

    async def Submit(
        self,
        request: pb.SubmitRequest,
        context: aio.ServicerContext[pb.SubmitRequest, pb.SubmitResponse],
    ) -> pb.SubmitResponse:
        return await self._submits.submit(request, context)

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
        if await self._size(context) == 0:  # only a mirror that has received nothing yet
            # Said by the node itself (the check key), so that no client takes it for a
            # node it could not reach.
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                "this node holds no entry of the log yet: it is a mirror still catching up",
                RefusalDetails(check=CATCHING_UP_CHECK).to_metadata(),
            )
        if request.at_most == 0:
            checkpoint = await self._read(context, self._log.checkpoint)
            return serde.checkpoint_response(self._served(checkpoint))
        # A mirror catching up in steps: a checkpoint signed at an earlier commit.
        step = await self._read(context, self._log.checkpoint_step, request.after, request.at_most)
        if step is None:
            size = await self._size(context)
            await context.abort(
                grpc.StatusCode.OUT_OF_RANGE,
                f"after {request.after} is not before the end of the log, which has {size} entries",
            )
        return serde.checkpoint_response(step)

    async def GetLeaves(
        self,
        request: pb.GetLeavesRequest,
        context: aio.ServicerContext[pb.GetLeavesRequest, pb.LeafData],
    ) -> AsyncIterator[pb.LeafData]:
        start, end = await self._leaf_range(context, request)
        async for seq, leaf in self._stream(context, start, end):
            yield serde.leaf_data(seq, leaf)

    async def GetLeafBatches(
        self,
        request: pb.GetLeavesRequest,
        context: aio.ServicerContext[pb.GetLeavesRequest, pb.LeafBatch],
    ) -> AsyncIterator[pb.LeafBatch]:
        start, end = await self._leaf_range(context, request)
        async for first, leaves in self._batches(context, start, end):
            yield serde.leaf_batch(first, leaves)

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
        page_size = request.page_size
        entitled = await self._may_read_texts(request, context)
        if entitled:  # each entry may carry a text of up to MAX_TEXT_BYTES beside its leaf
            page_size = min(page_entries(page_size), max(1, page_bytes // _TEXT_ENTRY_BYTES))
        statement = await self._read(
            context,
            partial(
                self._log.account,
                page_size=page_size,
                page_token=request.page_token,
                page_bytes=page_bytes,
            ),
            request.account,
        )
        if entitled and self._texts is not None:
            statement = await self._read(context, self._texts.fill, statement)
        message = serde.account_message(statement)
        if self._recognised is not None and not request.page_token:
            grades = await self._read(context, self._recognised.messages, request.account)
            message.recognised.extend(grades)
        return message

    async def _may_read_texts(
        self,
        request: pb.GetAccountRequest,
        context: aio.ServicerContext[pb.GetAccountRequest, pb.Account],
    ) -> bool:
        """Whether this read gets the free texts (node/readers.py); a read signature that
        is given and wrong ends the call PERMISSION_DENIED."""
        if self._texts is None or self._readers is None:
            return False  # a mirror keeps no texts
        signature = request.read_signature if request.HasField("read_signature") else None
        return await self._staff(context, "GetAccount", request.account, signature)

    async def _staff(
        self,
        context: _AnyContext,
        method: str,
        subject: str,
        signature: pb.ReadSignature | None,
    ) -> bool:
        """Whether the caller is the town's staff (node/readers.py): by ``signature`` over
        ``method`` and ``subject`` when given (one that is wrong ends the call
        PERMISSION_DENIED), else by a staff client certificate."""
        readers = self._readers
        if readers is None:
            return False
        if signature is not None:
            try:
                await self._read(context, readers.signed, method, subject, signature)
            except ReadRefusal as refusal:
                logger.info("read refused check=%s: %s", refusal.check, refusal.message)
                await context.abort(
                    grpc.StatusCode.PERMISSION_DENIED,
                    bounded_message(refusal.diagnostics()),
                    RefusalDetails(refusal.check, None, None).to_metadata(),
                )
            return True
        pems = tuple(context.auth_context().get("x509_pem_cert") or ())
        return readers.staff_certificate(pems)

    async def CheckAccounts(
        self,
        request: pb.CheckAccountsRequest,
        context: aio.ServicerContext[pb.CheckAccountsRequest, pb.CheckAccountsResponse],
    ) -> pb.CheckAccountsResponse:
        """The accounts the resident register does not hold; staff only (accountcheck)."""
        if self._register is None or self._readers is None:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "this node mirrors another town's log and keeps no resident register: "
                "check accounts at the town's own node",
            )
        accounts = list(request.accounts)
        problem = request_problem(accounts)
        if problem is not None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, bounded_message(problem))
        signature = request.read_signature if request.HasField("read_signature") else None
        subject = accounts_subject(accounts)
        if not await self._staff(context, CHECK_ACCOUNTS_METHOD, subject, signature):
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                "the resident register is for the town's staff: sign the request with a "
                "staff key registered in the log (read_signature) or connect with a staff "
                "client certificate",
                RefusalDetails(READ_SIGNATURE_CHECK, None, None).to_metadata(),
            )
        answer = await self._read(context, self._register.check, accounts)
        return pb.CheckAccountsResponse(register=answer.register, unknown=answer.unknown)

    async def Follow(
        self,
        request: pb.FollowRequest,
        context: aio.ServicerContext[pb.FollowRequest, pb.FollowEvent],
    ) -> AsyncIterator[pb.FollowEvent]:
        position = request.start
        await self._size_at_least(context, position, f"start {position}")
        sent: str | None = None  # the checkpoint note last sent, cosignatures and all
        while True:
            version = self._watch.version  # before the size: a touch after it is not missed
            size = await self._size(context)
            if position < size and request.batches:
                async for first, leaves in self._batches(context, position, size):
                    yield serde.follow_batch(first, leaves)
            elif position < size:
                async for seq, leaf in self._stream(context, position, size):
                    yield serde.follow_leaf(seq, leaf)
            position = max(position, size)
            if position > 0:  # 0: an empty mirror
                checkpoint = await self._read(context, self._log.checkpoint_at, position)
                if checkpoint is None:  # every committed size has one; a damaged store has not
                    await context.abort(
                        grpc.StatusCode.INTERNAL,
                        f"the checkpoint of tree size {position} is missing",
                    )
                served = self._served(checkpoint)
                if served.note != sent:  # a new size, or new cosignatures at this one
                    yield serde.follow_checkpoint(served)
                    sent = served.note
            if not await self._watch.wait_change(position, version):
                return  # the node is shutting down: end the stream cleanly

    # -- look-ups before a sheet is sent ---------------------------------------

    async def FindEntries(
        self,
        request: pb.FindEntriesRequest,
        context: aio.ServicerContext[pb.FindEntriesRequest, pb.FindEntriesResponse],
    ) -> pb.FindEntriesResponse:
        ids = list(request.ids)
        size, found = await self._look_up(context, self._log.find_entries, ids)
        return serde.found_entries(size, found, ids)

    async def GetRules(
        self,
        request: pb.GetRulesRequest,
        context: aio.ServicerContext[pb.GetRulesRequest, pb.Rules],
    ) -> pb.Rules:
        size, rules = await self._read(context, self._log.rules)
        decided: dict[int, str] = {}
        if self._texts is not None and rules:
            seqs = [rule.seq for rule in rules]
            decided = await self._read(context, self._texts.decided_texts, seqs)
        return serde.rules_message(size, rules, decided)

    async def GetKeys(
        self,
        request: pb.GetKeysRequest,
        context: aio.ServicerContext[pb.GetKeysRequest, pb.Keys],
    ) -> pb.Keys:
        size, keys = await self._read(context, self._log.staff_keys)
        return serde.keys_message(size, keys)

    async def GetMonthCounts(
        self,
        request: pb.GetMonthCountsRequest,
        context: aio.ServicerContext[pb.GetMonthCountsRequest, pb.MonthCounts],
    ) -> pb.MonthCounts:
        size, counts = await self._look_up(
            context, self._log.month_counts, serde.month_keys(request)
        )
        return serde.month_counts(size, counts)

    async def _look_up(
        self, context: _AnyContext, function: Callable[[Any], _T], items: object
    ) -> _T:
        """``function(items)`` on the read pool; a malformed request is INVALID_ARGUMENT."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._reads, function, items)
        except FormatError as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, bounded_message(str(error)))
        except RedlistError as error:
            refusal = refusal_of(error)
            await context.abort(refusal.code, bounded_message(refusal.status_message()))

    # -- helpers --------------------------------------------------------------

    async def _read(self, context: _AnyContext, function: Callable[..., _T], *args: object) -> _T:
        """``function(*args)`` on the read pool; a store failure ends the call with a status
        (a ``ReadRefusal`` is the caller's to answer)."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._reads, partial(function, *args))
        except ReadRefusal:
            raise
        except RedlistError as error:
            refusal = refusal_of(error)
            message = refusal.status_message()
            logger.error("read failed code=%s: %s", refusal.code.name, message)
            await context.abort(refusal.code, bounded_message(message))

    async def _leaf_range(
        self, context: _AnyContext, request: pb.GetLeavesRequest
    ) -> tuple[int, int]:
        """``[start, end)`` of a leaves request, checked against itself and the log."""
        start, end = request.start, request.end
        if start > end:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"start {start} is after end {end}; the range is [start, end)",
            )
        await self._size_at_least(context, end, f"end {end}")
        return start, end

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
                context,
                leafreads.read_chunk,
                self._log,
                position,
                end,
                leafreads.CHUNK_LEAVES,
                leafreads.CHUNK_BYTES,
            )
            for seq, leaf in chunk:
                yield seq, leaf
            position = chunk[-1][0] + 1

    async def _batches(
        self, context: _AnyContext, start: int, end: int
    ) -> AsyncIterator[tuple[int, list[bytes]]]:
        """Leaves ``[start, end)`` as ``(first seq, leaves)`` batches of the node's bound."""
        position = start
        while position < end:
            leaves = await self._read(
                context,
                leafreads.read_batch,
                self._log,
                position,
                end,
                leafreads.CHUNK_LEAVES,
                self._batch_bytes,
            )
            if not leaves:  # the range was checked against the size; a damaged store
                await context.abort(
                    grpc.StatusCode.INTERNAL, f"entry {position} is missing from the store"
                )
            yield position, leaves
            position += len(leaves)


def _as_signed(checkpoint: SignedCheckpoint) -> SignedCheckpoint:
    return checkpoint


def _log_size(log: Log) -> int:
    return log.size
