"""``Submit``: the ``Ledger`` service's write path, from a request to a durable append.

The servicer hands Submit here, and the review queue appends an approved item through
``append_one`` the same way. A batch is checked against the node's limits, decoded
once (for the texts' check and the log alike), its free texts admitted (checked and
stored, flushed) before the append (``redlist.node.texts``), then handed to the
:class:`~redlist.node.batcher.Batcher`. The texts of a refused batch are settled
(removed); those of a commit the disk failed stay, as it may have reached the disk.

A refusal is answered in one place (``_refuse``): logged, counted, and mapped to a
status with its trailing metadata (``refusals.refusal_of``). When the store stops
taking writes (a damaged state record, a failed commit: see ``servicer``), that is
said once, as an error line, and ``writes_stopped`` is called with the reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from functools import partial
from typing import NoReturn

import grpc
from grpc import aio

from redlist.ledger.append import Incoming, decode_each
from redlist.ledger.errors import (
    CommitFailedError,
    RedlistError,
    StateDamageError,
    StoreError,
)
from redlist.ledger.note.checkpoint import SignedCheckpoint
from redlist.ledger.textcommit import EntryText
from redlist.node import serde
from redlist.node.batcher import Batcher
from redlist.node.metrics import NodeMetrics
from redlist.node.refusals import Refusal, bounded_message, refusal_of
from redlist.node.texts import Admitted, NodeTexts
from redlist.proto.contract import MAX_BATCH_CHECK, Limits
from redlist.v1 import ledger_pb2 as pb

# The Ledger service's lines keep the one logger name they always had.
logger = logging.getLogger("redlist.node.servicer")

_SubmitContext = aio.ServicerContext[pb.SubmitRequest, pb.SubmitResponse]


class SubmitService:
    """The Submit call of one node. ``batcher`` is None on a mirror, which takes no
    entries: Submit is then answered FAILED_PRECONDITION with ``submit_refusal``."""

    def __init__(
        self,
        batcher: Batcher | None,
        reads: Executor,
        *,
        limits: Limits,
        served: Callable[[SignedCheckpoint], SignedCheckpoint],
        metrics: NodeMetrics | None = None,
        texts: NodeTexts | None = None,
        submit_refusal: str | None = None,
        writes_stopped: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self._batcher = batcher
        self._reads = reads
        self._limits = limits
        self._served = served
        self._metrics = metrics
        self._texts = texts
        self._submit_refusal = submit_refusal
        # Told once, with the reason ("damage", "disk"), when the store stops its writes.
        self._on_writes_stopped = writes_stopped
        self._writes_stopped = False

    async def submit(self, request: pb.SubmitRequest, context: _SubmitContext) -> pb.SubmitResponse:
        if self._batcher is None:
            await self._refuse(
                context,
                Refusal(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    None,
                    self._submit_refusal or "this node takes no entries",
                ),
            )
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
        admitted = Admitted((), ())
        try:
            # The texts are checked and stored, flushed, before the append (node/texts.py).
            batch, admitted = await self._prepare(envelopes, serde.texts_from_request(request))
            result = await self._batcher.submit(batch)
        except Exception as error:  # every failure is answered; refusal_of says how
            if not isinstance(error, RedlistError):
                logger.error("Submit failed unexpectedly", exc_info=error)
            elif isinstance(error, StateDamageError | CommitFailedError):
                await self._report_stopped_writes(error)
            refusal = refusal_of(error)
            # A failed commit may or may not have reached the disk: its texts stay.
            refused = isinstance(error, RedlistError) and not isinstance(error, CommitFailedError)
            await self._settle_texts(admitted, refused=refused)
        else:
            await self._settle_texts(admitted, refused=False)
            return serde.submit_response(result, self._served(result.checkpoint))
        await self._refuse(context, refusal, envelopes=len(envelopes))

    async def append_one(self, envelope: bytes, texts: Mapping[str, EntryText]) -> int:
        """Append one envelope as Submit does (its texts kept first); its seq. Raises what
        the batcher or the text store raise."""
        if self._batcher is None:
            raise StoreError(self._submit_refusal or "this node takes no entries")
        batch, admitted = await self._prepare([envelope], [dict(texts)] if texts else [])
        try:
            result = await self._batcher.submit(batch)
        except RedlistError as error:
            if isinstance(error, StateDamageError | CommitFailedError):
                await self._report_stopped_writes(error)
            await self._settle_texts(admitted, refused=not isinstance(error, CommitFailedError))
            raise
        await self._settle_texts(admitted, refused=False)
        return result.seqs[0]

    async def _prepare(
        self, envelopes: list[bytes], texts: list[dict[str, EntryText]]
    ) -> tuple[list[Incoming], Admitted]:
        """The batch decoded once, for the texts' check and the log alike, and its texts
        admitted (checked and stored); on the read pool, as the decoding takes a while."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reads, self._decode_and_admit, envelopes, texts)

    def _decode_and_admit(
        self, envelopes: list[bytes], texts: list[dict[str, EntryText]]
    ) -> tuple[list[Incoming], Admitted]:
        batch = decode_each(envelopes)
        if self._texts is None or self._writes_stopped:
            # stopped: the log refuses the batch, nothing is written
            return batch, Admitted((), ())
        return batch, self._texts.admit(batch, texts)

    async def _settle_texts(self, admitted: Admitted, *, refused: bool) -> None:
        if self._texts is None or not admitted.keys:
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(
                self._reads, partial(self._texts.settle, admitted, refused=refused)
            )
        except RedlistError as error:  # garbage at worst: the next start removes it
            logger.warning("could not remove the texts of a refused batch: %s", error)

    async def _report_stopped_writes(self, error: StateDamageError | CommitFailedError) -> None:
        """Say once, as an error, that the node takes no more entries, and why."""
        if self._writes_stopped:
            return
        self._writes_stopped = True
        if isinstance(error, StateDamageError):
            reason = "damage"
            logger.error(
                "writes stopped reason=damage table=%s record=%s: %s",
                error.table,
                error.record,
                error,
            )
        else:
            reason = "disk"
            logger.error("writes stopped reason=disk error=%r: %s", error.reason, error)
        if self._on_writes_stopped is not None:
            await self._on_writes_stopped(reason)

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


__all__ = ["SubmitService"]
