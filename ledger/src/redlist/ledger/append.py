"""The node's append path: a batch of envelopes decoded, verified ahead, written through
the validator.

``Log.append`` runs three steps (DESIGN 3.3, 6, 7):

1. ``decode_batch``: every envelope and its body is decoded on receipt; the first
   malformed one refuses the batch (``BatchError`` with its ``FormatError``), before
   anything else is looked at. A caller that looks at the bodies first (the node checks
   a batch's texts against them) decodes them once with ``decode_each`` and hands its
   list to ``Log.append``: what was decoded there is not decoded again.
2. ``verify_ahead``: the signatures the batch will need are found from a read
   snapshot of the keys plus the keys the batch itself registers
   (``validator.KeyLookahead``) and handed to the ``SignatureScheduler`` in chunks,
   all at once, outside the write lock. A resubmitted entry's signatures go too: no
   id is looked up here, as that cost the node's one serial thread more than the
   workers spend on a batch sent again (docs/performance.md), and the write
   recognises a resubmission without asking for its verdicts. The verdicts are a
   pure fact about (key, body, signature): a snapshot that is out of date by the
   time the batch is written does no harm, since whatever was not verified ahead is
   verified when the validator asks.
3. ``write_batch``, in the write transaction: each envelope, in order and as soon as
   its chunk's verdicts are in, is either recognised as a resubmission (same entry
   id, same bytes: its existing seq; other bytes: ``ConflictError``) or made into the
   next leaf by the ledger's one validator (``LogValidator.append``: the checks an
   auditor makes, the points semantics included, over the store's state), and
   written with the Merkle nodes it completes. The checkpoint is signed over the
   validator's root and stored in the same transaction.

Any refusal raises ``BatchError`` naming the envelope; the caller aborts the
transaction, so nothing of the batch is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from redlist.ledger import merkle
from redlist.ledger.entry import ZERO_HASH, AnyBody, Envelope, Leaf, decode_body
from redlist.ledger.errors import (
    BatchError,
    ConflictError,
    FormatError,
    IntegrityError,
    RuleViolation,
)
from redlist.ledger.frozen import builder
from redlist.ledger.note.checkpoint import Checkpoint, SignedCheckpoint, sign_checkpoint
from redlist.ledger.note.keys import NoteSigner
from redlist.ledger.points import SignatureCheck
from redlist.ledger.sigschedule import Pipeline, SignatureScheduler
from redlist.ledger.state import LedgerState
from redlist.ledger.store import StoreReader, StoreWriter
from redlist.ledger.validator import KeyLookahead, LogValidator

#: Entries per chunk handed to the scheduler: a few milliseconds of verification, so
#: the writer starts soon and the workers are never left waiting long for the next.
#: With the core compiled (ADR 0057) the writer outpaces the signatures, and a batch of
#: 500 in chunks of 256 gave its first verdicts only when both workers were nearly done
#: with it: 64 lets the write begin after a quarter of that (docs/performance.md).
CHUNK_SIZE = 64


@dataclass(frozen=True)
class Submitted:
    """One decoded envelope of a batch, with its original bytes."""

    raw: bytes
    envelope: Envelope
    body: AnyBody


# One for every envelope taken in: built without the frozen ``__init__`` (frozen.py).
_build_submitted = builder(Submitted)

#: An envelope on its way to the log: its bytes, or those bytes decoded (``decode_each``).
Incoming = bytes | Submitted


def decode_each(envelopes: Sequence[bytes]) -> list[Incoming]:
    """Each envelope decoded where it can be, an undecodable one left as its bytes.

    For a caller that reads the bodies before the append and then hands this list to
    ``Log.append``: ``decode_batch`` takes the decoded ones as they are and refuses the
    first undecodable one, in order, as it would have from the bytes.
    """
    incoming: list[Incoming] = []
    for raw in envelopes:
        try:
            incoming.append(_decode_one(raw))
        except FormatError:
            incoming.append(raw)
    return incoming


def decode_batch(envelopes: Sequence[Incoming]) -> list[Submitted]:
    """Decode every envelope and its body; the first malformed one refuses the batch.

    An item already decoded (a ``Submitted`` from ``decode_each``) is taken as it is.
    """
    decoded: list[Submitted] = []
    for index, raw in enumerate(envelopes):
        if isinstance(raw, Submitted):
            decoded.append(raw)
            continue
        try:
            decoded.append(_decode_one(raw))
        except FormatError as exc:
            raise BatchError(exc, index=index) from exc
    return decoded


def _decode_one(raw: object) -> Submitted:
    if not isinstance(raw, bytes):
        raw = _as_bytes(raw)
    envelope = Envelope.from_bytes(raw)  # refuses oversized envelopes first
    return _build_submitted(raw, envelope, decode_body(envelope.body))


def verify_ahead(
    batch: Sequence[Submitted], reader: StoreReader, scheduler: SignatureScheduler
) -> Pipeline[int]:
    """Send the batch's signatures to ``scheduler``; the pipeline its verdicts come out of,
    by envelope index and in order (``write_batch`` drains it)."""
    state = reader.state()

    def stored(key_id: bytes) -> bytes | None:
        record = state.key(key_id)
        return None if record is None else record.public

    lookahead = KeyLookahead(stored=stored)
    pipeline: Pipeline[int] = Pipeline(scheduler, chunk_size=CHUNK_SIZE, in_flight=None)
    for index, item in enumerate(batch):
        # A resubmission's too (the module docstring): no id is looked up here.
        pipeline.put(index, lookahead.triples(item.envelope, item.body))
    pipeline.flush()
    return pipeline


def write_batch(
    writer: StoreWriter,
    batch: Sequence[Submitted],
    verdicts: Iterable[tuple[int, SignatureCheck]],
    *,
    origin: str,
    signer: NoteSigner,
    now_ms: int,
) -> tuple[list[int], SignedCheckpoint | None]:
    """Apply, append and checkpoint a batch inside ``writer``'s transaction.

    Returns the seqs and the new checkpoint (None when nothing new was appended).

    ``verdicts`` yields each envelope's index with the signature check to decide it
    with, in order (``verify_ahead``'s pipeline drained, or ``crypto.verify_entry``
    for each). Raises ``BatchError`` for the first refused envelope; the caller's
    transaction must then be aborted (``LmdbStore.write`` does so).
    """
    state = writer.state()
    first = writer.size()
    last_time = writer.last_time()
    # The tree's right edge, kept beside the validator's: each leaf's new subtrees come
    # from it, so storing them reads nothing back from the store.
    edge = merkle.CompactRange.from_reader(writer.nodes(), first)
    validator = LogValidator(
        origin,
        state=state,
        tree=edge,
        last_leaf_hash=writer.last_leaf_hash() or ZERO_HASH,
        last_time=last_time,
    )
    time = max(now_ms, last_time)  # the node's time never goes back
    seqs: list[int] = []
    for index, check in verdicts:
        item = batch[index]
        try:
            existing = _existing_seq(state, writer, item)
            if existing is not None:
                seqs.append(existing)
                continue
            seq = validator.size
            leaf = validator.append(item.raw, item.envelope, item.body, time, check)
        except (FormatError, RuleViolation, ConflictError) as exc:
            raise BatchError(exc, index=index) from exc
        leaf_hash = validator.last_leaf_hash or ZERO_HASH  # set by the append above
        writer.put_leaf(seq, leaf)
        for level, position, subtree_hash in edge.append_completing(leaf_hash):
            writer.put_node(level, position, subtree_hash)
        seqs.append(seq)
    size = validator.size
    if size == first:
        return seqs, None
    root = validator.root()
    if edge.end != size or edge.root() != root:  # the nodes written are the tree signed
        raise IntegrityError("internal error: the stored subtrees do not make the tree signed")
    checkpoint = sign_checkpoint(Checkpoint(origin, size, root), signer)
    writer.put_checkpoint(size, checkpoint.note)
    writer.set_head(
        size=size,
        last_time=validator.last_time,
        last_leaf_hash=validator.last_leaf_hash or ZERO_HASH,
        checkpoint=checkpoint.note,
    )
    return seqs, checkpoint


def _existing_seq(state: LedgerState, reader: StoreReader, item: Submitted) -> int | None:
    """The seq of an identical envelope already in the log (or earlier in the batch).

    The same entry id with different bytes is a ``ConflictError``.
    """
    seq = state.entry_seq(item.body.id)
    if seq is None:
        return None
    stored = reader.leaf(seq)
    if stored is None:
        raise IntegrityError(f"entry id {item.body.id.hex()} points at seq {seq}, which is missing")
    if Leaf.from_bytes(stored).envelope != item.raw:
        raise ConflictError(
            f"entry id {item.body.id.hex()} is already in the log at seq {seq} with different "
            "content; a changed entry needs a new id"
        )
    return seq


def _as_bytes(value: object) -> bytes:
    try:
        return bytes(memoryview(value))  # type: ignore[arg-type]
    except TypeError:
        raise FormatError(f"envelope: expected bytes, got {type(value).__name__}") from None


__all__ = [
    "CHUNK_SIZE",
    "Incoming",
    "Submitted",
    "decode_batch",
    "decode_each",
    "verify_ahead",
    "write_batch",
]
