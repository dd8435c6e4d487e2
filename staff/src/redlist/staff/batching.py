"""Envelopes in batches the node takes: the one batching rule of the bulk commands."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from redlist.proto.contract import ENVELOPE_FRAMING_BYTES, Limits


def batches(
    envelopes: Iterable[tuple[int, bytes]], most: int, limits: Limits
) -> Iterator[dict[int, bytes]]:
    """``envelopes`` (row index, bytes) in consecutive batches, in order, each one request
    the node takes: at most ``most`` envelopes and within the node's ``limits``.

    An envelope too large on its own still goes out alone: the node's refusal names it.
    """
    most = max(1, min(most, limits.max_batch))
    batch: dict[int, bytes] = {}
    total = 0
    for index, envelope in envelopes:
        cost = len(envelope) + ENVELOPE_FRAMING_BYTES
        if batch and (len(batch) >= most or total + cost > limits.max_message_bytes):
            yield batch
            batch, total = {}, 0
        batch[index] = envelope
        total += cost
    if batch:
        yield batch
