"""A live node's log as a ``Source``: its verified checkpoint, then its leaves, read ahead.

``NodeSource`` is what the audit of a node (``redlist.verifier.nodeaudit``) reads
entries from: ``open`` verifies the node's checkpoint with the log key before anything
else is asked, and ``leaves`` streams the leaves of *that* checkpoint over gRPC on a
reader thread (``read_ahead``), so receiving overlaps with the audit.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator

from redlist.ledger.errors import NoteError, SourceError, VerificationError
from redlist.ledger.i18n import _
from redlist.ledger.note.checkpoint import SignedCheckpoint, open_checkpoint
from redlist.ledger.note.keys import VerifierKey
from redlist.proto.client import NodeClient
from redlist.verifier.source import Opening, Source, origin_named

#: Leaves read ahead of the audit: batches of this many (or fewer once they hold
#: ``READ_AHEAD_BATCH_BYTES``), at most ``READ_AHEAD_DEPTH`` batches: with 64 KiB
#: entries, about 32 MiB ahead rather than the whole of a short log.
READ_AHEAD_BATCH = 256
READ_AHEAD_BATCH_BYTES = 1024 * 1024
READ_AHEAD_DEPTH = 32


class NodeSource(Source):
    """A node's log as a ``Source``: its current checkpoint, then leaves ``[start, size)``.

    ``open`` verifies the checkpoint with the log key before anything else is read.
    The client stays the caller's (``close`` does not close it).
    """

    def __init__(self, client: NodeClient, *, start: int = 0) -> None:
        self._client = client
        self._start = start
        self._checkpoint: SignedCheckpoint | None = None

    def describe(self) -> str:
        return self._client.describe()

    @property
    def checkpoint(self) -> SignedCheckpoint:
        """The verified checkpoint (after ``open``)."""
        if self._checkpoint is None:
            raise SourceError(_("the node's checkpoint must be read before its leaves"))
        return self._checkpoint

    def open(self, log_key: VerifierKey) -> Opening:
        checkpoint = self.fetch_checkpoint(log_key)
        if checkpoint.size < self._start:
            raise VerificationError(
                "rollback",
                f"the node's checkpoint covers {checkpoint.size} entries, fewer than the "
                f"{self._start} verified before",
            )
        return Opening(checkpoint, self._start, checkpoint.size)

    def fetch_checkpoint(self, log_key: VerifierKey) -> SignedCheckpoint:
        """The node's checkpoint, verified with ``log_key``."""
        text = self._client.get_checkpoint()
        try:
            checkpoint = open_checkpoint(text, log_key)
        except NoteError as exc:
            origin = origin_named(text.encode())
            if origin is not None and origin != log_key.name:
                raise SourceError(
                    _(
                        "the node at {address} serves log {origin}, but the log key given is "
                        "of log {name}: verify it with the log key of {origin} (the log.pub "
                        "of that town's node), or check the address"
                    ).format(address=self._client.address, origin=origin, name=log_key.name)
                ) from None
            raise VerificationError(
                "checkpoint",
                f"the checkpoint the node at {self._client.address} serves does not verify: {exc}",
            ) from None
        self._checkpoint = checkpoint
        return checkpoint

    def leaves(self) -> Generator[bytes, None, None]:
        """The leaves, read ahead on a thread so receiving overlaps with the audit."""
        return read_ahead(self._client.get_leaves(self._start, self.checkpoint.size))


def read_ahead(
    items: Iterator[bytes],
    *,
    batch: int = READ_AHEAD_BATCH,
    depth: int = READ_AHEAD_DEPTH,
    batch_bytes: int = READ_AHEAD_BATCH_BYTES,
) -> Generator[bytes, None, None]:
    """``items`` in order, taken from it by a reader thread up to ``depth`` batches ahead,
    each of ``batch`` items or fewer once they hold ``batch_bytes``.

    An exception ``items`` raises is raised here after the items before it. When the
    consumer stops early, the reader stops at its next batch and closes ``items``.
    """
    channel: queue.Queue[list[bytes] | BaseException | None] = queue.Queue(depth)
    stop = threading.Event()

    def hand_over(item: list[bytes] | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                channel.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        pending: list[bytes] = []
        held = 0
        try:
            for item in items:
                pending.append(item)
                held += len(item)
                if len(pending) >= batch or held >= batch_bytes:
                    if not hand_over(pending):
                        return
                    pending, held = [], 0
            if hand_over(pending):
                hand_over(None)
        except BaseException as exc:  # handed to the consumer, raised after what came before
            if hand_over(pending):
                hand_over(exc)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=reader, name="redlist-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            got = channel.get()
            if got is None:
                return
            if isinstance(got, BaseException):
                raise got
            yield from got
    finally:
        stop.set()


__all__ = [
    "READ_AHEAD_BATCH",
    "READ_AHEAD_BATCH_BYTES",
    "READ_AHEAD_DEPTH",
    "NodeSource",
    "read_ahead",
]
