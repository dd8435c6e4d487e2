"""``Propose``, ``ListPending``, ``Approve`` and ``Reject``: the review queue over gRPC.

The servicer hands these calls here. Decisions run one at a time (an asyncio lock around
decide-then-append), on the read pool, against the queue (``redlist.node.review``); an
item whose quorum is met is appended through ``append`` (the servicer's Submit path,
texts first), then marked appended with its seq. A refusal becomes a status in one
place, :meth:`ReviewService._refuse`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from functools import partial
from typing import Any, NoReturn, TypeVar

import grpc
from grpc import aio

from redlist.ledger.errors import BatchError, RedlistError, RuleViolation, TextError
from redlist.ledger.review import Needs
from redlist.ledger.textcommit import EntryText
from redlist.node.metrics import NodeMetrics
from redlist.node.readers import ReadAuthority, ReadRefusal
from redlist.node.refusals import Refusal, bounded_message, refusal_of
from redlist.node.review import Decision, ItemView, ReviewQueue, ReviewRefusal
from redlist.proto.contract import RefusalDetails
from redlist.v1 import ledger_pb2 as pb

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_Context = aio.ServicerContext[Any, Any]
#: Appends one envelope with its texts the way Submit does; its seq.
Append = Callable[[bytes, Mapping[str, EntryText]], Awaitable[int]]


class ReviewService:
    """The review calls of one node."""

    def __init__(
        self,
        queue: ReviewQueue,
        append: Append,
        reads: Executor,
        readers: ReadAuthority,
        metrics: NodeMetrics | None = None,
    ) -> None:
        self._queue = queue
        self._append = append
        self._reads = reads
        self._readers = readers
        self._metrics = metrics
        self._lock = asyncio.Lock()

    async def propose(self, request: pb.ProposeRequest, context: _Context) -> pb.ReviewItem:
        try:
            texts = {
                name: EntryText(value.text, value.salt)
                for name, value in request.texts.fields.items()
            }
        except TextError as error:
            await self._refuse(
                context, ReviewRefusal(grpc.StatusCode.INVALID_ARGUMENT, "text", str(error))
            )
        async with self._lock:
            decision = await self._run(context, self._queue.propose, request.envelope, texts)
            return await self._settle(context, decision)

    async def approve(self, request: pb.ApproveRequest, context: _Context) -> pb.ReviewItem:
        async with self._lock:
            decision = await self._run(
                context,
                self._queue.approve,
                request.number,
                request.body_hash,
                request.key_id,
                request.signature,
            )
            return await self._settle(context, decision)

    async def reject(self, request: pb.RejectRequest, context: _Context) -> pb.ReviewItem:
        subject = f"{request.number} {request.reason}"
        try:
            signer = await self._run(
                context, self._readers.signed, "Reject", subject, request.signature
            )
        except ReadRefusal as refusal:
            await self._refuse(
                context,
                ReviewRefusal(grpc.StatusCode.PERMISSION_DENIED, refusal.check, refusal.message),
            )
        async with self._lock:
            item = await self._run(
                context, self._queue.reject, request.number, request.reason, signer.key_id
            )
        await self._observe()
        views = await self._run(context, partial(self._queue.listing, number=item.number))
        return item_message(views[0])

    async def list_pending(
        self, request: pb.ListPendingRequest, context: _Context
    ) -> pb.PendingList:
        async with self._lock:  # the listing expires what is due: a change, like the others
            views = await self._run(
                context,
                partial(
                    self._queue.listing,
                    village=request.village,
                    closed=request.closed,
                    number=request.number,
                ),
            )
        await self._observe()
        if request.number and not views:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"the review queue holds no item {request.number}"
            )
        return pb.PendingList(items=[item_message(view) for view in views])

    async def _settle(self, context: _Context, decision: Decision) -> pb.ReviewItem:
        """Append what is ready; the item as it now stands."""
        item = decision.item
        if decision.append is not None:
            try:
                seq = await self._append(decision.append, decision.texts)
            except RedlistError as error:
                await self._refuse(context, error)
            item = await self._run(context, self._queue.appended, item, seq)
            logger.info("review item=%d appended seq=%d", item.number, seq)
        await self._observe()
        if not item.number:  # accepted whole: it never waited
            return pb.ReviewItem(
                state=item.state,
                body=item.body,
                body_hash=item.body_hash,
                seq=item.seq or 0,
            )
        views = await self._run(context, partial(self._queue.listing, number=item.number))
        return item_message(views[0])

    async def _observe(self) -> None:
        if self._metrics is None:
            return
        loop = asyncio.get_running_loop()
        pending = await loop.run_in_executor(self._reads, self._queue.pending_count)
        self._metrics.review_pending.set(pending)

    async def _run(self, context: _Context, function: Callable[..., _T], *args: object) -> _T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._reads, partial(function, *args))
        except ReadRefusal:
            raise
        except RedlistError as error:
            await self._refuse(context, error)

    async def _refuse(self, context: _Context, error: RedlistError) -> NoReturn:
        if isinstance(error, ReviewRefusal):
            refusal = Refusal(error.code, error.check, error.message, limit=error.limit)
        elif isinstance(error, RuleViolation):
            refusal = refusal_of(BatchError(error, index=0))
            refusal = Refusal(refusal.code, refusal.check, error.message)
        else:
            refusal = refusal_of(error)
        logger.info(
            "review refused code=%s check=%s: %s",
            refusal.code.name,
            refusal.check or "-",
            bounded_message(refusal.status_message()),
        )
        if self._metrics is not None:
            self._metrics.observe_refusal(code=refusal.code.name, check=refusal.check or "")
        await context.abort(
            refusal.code,
            bounded_message(refusal.status_message()),
            RefusalDetails(refusal.check, None, refusal.limit).to_metadata(),
        )


class ReviewCalls:
    """The review RPCs of ``LedgerServicer`` (mixed in): each hands its call to the
    node's :class:`ReviewService`, or refuses it on a node without a queue (a mirror)."""

    _review: ReviewService | None
    _submit_refusal: str | None

    async def Propose(
        self,
        request: pb.ProposeRequest,
        context: aio.ServicerContext[pb.ProposeRequest, pb.ReviewItem],
    ) -> pb.ReviewItem:
        return await (await self._reviews(context)).propose(request, context)

    async def ListPending(
        self,
        request: pb.ListPendingRequest,
        context: aio.ServicerContext[pb.ListPendingRequest, pb.PendingList],
    ) -> pb.PendingList:
        return await (await self._reviews(context)).list_pending(request, context)

    async def Approve(
        self,
        request: pb.ApproveRequest,
        context: aio.ServicerContext[pb.ApproveRequest, pb.ReviewItem],
    ) -> pb.ReviewItem:
        return await (await self._reviews(context)).approve(request, context)

    async def Reject(
        self,
        request: pb.RejectRequest,
        context: aio.ServicerContext[pb.RejectRequest, pb.ReviewItem],
    ) -> pb.ReviewItem:
        return await (await self._reviews(context)).reject(request, context)

    async def _reviews(self, context: _Context) -> ReviewService:
        if self._review is None:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                self._submit_refusal or "this node keeps no review queue",
            )
        return self._review


def item_message(view: ItemView) -> pb.ReviewItem:
    item = view.item
    needs = view.still_needs
    return pb.ReviewItem(
        number=item.number,
        state=item.state,
        body=item.body,
        body_hash=item.body_hash,
        signers=[
            pb.ReviewSigner(key_id=key_id, name=name, roles=list(roles), counts=counts)
            for key_id, name, roles, counts in view.signers
        ],
        needs=view.needs,
        problem=view.problem,
        proposer=item.proposer,
        proposer_name=view.proposer_name,
        proposed=item.proposed,
        expires=item.expires,
        seq=item.seq or 0,
        reason=item.reason or "",
        decided_by=view.decided_by_name,
        decided=item.decided or 0,
        masked_name=view.masked_name,
        village=view.village,
        rule_title=view.rule_title,
        points=view.points,
        still_needs=None if needs is None else still_needs_message(needs),
    )


def still_needs_message(needs: Needs) -> pb.StillNeeds:
    return pb.StillNeeds(
        quorum=needs.quorum,
        alternatives=[
            pb.SignatureQuorum(admin=one.admin, council=one.council) for one in needs.alternatives
        ],
        admins=needs.admins,
        councils=needs.councils,
    )
