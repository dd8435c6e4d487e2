"""The log's leaves as the ``Ledger`` service streams them: bounded chunks and batches.

``GetLeaves`` and ``Follow`` send a leaf a message, read from the store a chunk at a
time (``read_chunk``: at most ``CHUNK_LEAVES`` leaves and about ``CHUNK_BYTES``), so a
stream's memory and a read's time stay bounded however long the range.
``GetLeafBatches`` and ``Follow`` with batches send many leaves a message
(``read_batch``), each batch within ``batch_bytes`` of the node's message limit. Each
read runs on the servicer's read pool and ends its read transaction before it returns.
"""

from __future__ import annotations

from collections.abc import Generator

from redlist.ledger.log import Log

#: Leaves streamed per read of the store: bounds memory per stream and time per read.
CHUNK_LEAVES = 1024
CHUNK_BYTES = 1024 * 1024
#: Bytes of leaves in one LeafBatch (GetLeafBatches, Follow with batches). A stream
#: holds a batch about three times while sending it (the leaves read, the message,
#: its encoding), still within the one chunk a stream is allowed
#: (``config.STREAM_CHUNK_BYTES``); and a batch is large enough that the cost of a
#: message (the transport's, the pacing's) is spread over hundreds of leaves.
BATCH_BYTES = 256 * 1024
#: What a batch's message adds to each leaf (field tag and length) and to the batch.
_LEAF_FRAMING = 8
_BATCH_FRAMING = 64


def batch_bytes(max_message_bytes: int) -> int:
    """The bytes of leaves a batch may hold: ``BATCH_BYTES``, never past what the node
    may send in one answer (``max_message_bytes``), at least one."""
    return max(1, min(BATCH_BYTES, max_message_bytes - _BATCH_FRAMING))


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


def read_batch(log: Log, start: int, end: int, max_leaves: int, max_bytes: int) -> list[bytes]:
    """Up to ``max_leaves`` leaves from ``start`` whose message stays within ``max_bytes``
    (each leaf counted with its framing); at least one, whatever its size."""
    batch: list[bytes] = []
    total = 0
    leaves = log.leaves(start, min(end, start + max_leaves))
    try:
        for _seq, leaf in leaves:
            total += len(leaf) + _LEAF_FRAMING
            if batch and total > max_bytes:
                break
            batch.append(leaf)
    finally:
        if isinstance(leaves, Generator):
            leaves.close()  # ends its read transaction now
    return batch


__all__ = ["BATCH_BYTES", "CHUNK_BYTES", "CHUNK_LEAVES", "batch_bytes", "read_batch", "read_chunk"]
