"""A mirror's copy of another town's log: verified leaves stored with the log's own checkpoints.

A mirror (DESIGN 8.3) keeps a data directory laid out as a town's own (``ledger.lmdb``
and ``log.pub``, so ``redlist-node export`` and every read work on it) but without
``log.key``: it never signs the log's checkpoints, it stores the ones the log signed.
:meth:`MirrorLog.extend` is its only write. Given the leaves that follow those held and
the checkpoint the log signed over exactly them, it

1. decodes each leaf (``validator.read_leaf``) and hands the signatures it will need
   (``validator.KeyLookahead`` over the stored keys) to the ``SignatureScheduler``,
   before the write transaction, as the node's append does (``prepare``; a follower
   does this for its next step on another thread while one is stored);
2. in one write transaction (``store``), runs each leaf through the ledger's one validator
   (``LogValidator.apply``: format, seq, time, chain, the points semantics) over the
   stored state, and writes it with the Merkle nodes it completes;
3. compares the validator's size and root with the checkpoint's, then stores the
   checkpoint (the log's signature line only: cosignatures are statements about the
   log, kept beside it) as the new head, and commits durably.

Any refusal is a ``MirrorRefusal`` naming the seq and the check, and aborts the
transaction: the store only ever holds leaves that passed every check *and* a
checkpoint signed by the log over exactly them, so what a mirror serves is always
what it verified. Memory depends on the leaves of one call, never on the log.

Before the first ``extend`` (the genesis) the environment holds no log: ``size`` is 0,
``held`` None; the first commit writes the log's identity with its first leaves.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from redlist.ledger import merkle
from redlist.ledger.entry import ZERO_HASH, Genesis
from redlist.ledger.errors import MirrorRefusal, ProofError, RuleViolation, StoreError
from redlist.ledger.log import Log
from redlist.ledger.logdir import LOG_KEY_NAME, check_log_pub, write_log_pub
from redlist.ledger.note.checkpoint import SignedCheckpoint
from redlist.ledger.note.keys import VerifierKey
from redlist.ledger.note.signed import Note
from redlist.ledger.note.syntax import excerpt
from redlist.ledger.sigschedule import Pipeline, SignatureScheduler
from redlist.ledger.store import ENV_DIR_NAME, FORMAT_MARKER, LmdbStore
from redlist.ledger.tailcheck import check_tail
from redlist.ledger.validator import KeyLookahead, LogValidator, Reading, read_leaf

#: Entries per chunk handed to the scheduler (as the node's append).
CHUNK_SIZE = 256


class MirrorLog:
    """An open mirror data directory. Open with :meth:`open`; ``log`` serves its reads."""

    def __init__(self, store: LmdbStore, data_dir: Path, log_key: VerifierKey) -> None:
        self._store = store
        self.data_dir = data_dir
        self.log_key = log_key
        self.origin = log_key.name
        #: The read view (leaves, proofs, accounts, checkpoints) the node serves.
        self.log = Log(
            store, data_dir=data_dir, origin=self.origin, verifier_key=log_key, signer=None
        )
        self._write_lock = threading.Lock()

    @classmethod
    def open(
        cls, data_dir: Path, log_key: VerifierKey, *, map_size: int | None = None
    ) -> MirrorLog:
        """Open (creating when new) the mirror of the log of ``log_key`` in ``data_dir``.

        Refuses a town's own data directory (it holds ``log.key``), and one that mirrors
        another log (its ``log.pub`` or stored identity names another key). A directory
        that holds leaves is opened as a node's is: its newest entries and head are
        checked first (``tailcheck``). ``log.pub`` is written only once all that has
        passed: a refusal leaves no key file behind to refuse the right key next time.
        """
        if data_dir.exists() and not data_dir.is_dir():
            raise StoreError(f"{data_dir} is a file, not a data directory")
        if (data_dir / LOG_KEY_NAME).exists():
            raise StoreError(
                f"{data_dir} holds a log key ({LOG_KEY_NAME}): it is a town's own data "
                "directory, not a mirror's; give the mirror a directory of its own"
            )
        data_dir.mkdir(parents=True, exist_ok=True)
        kept = check_log_pub(data_dir, log_key)
        env_dir = data_dir / ENV_DIR_NAME
        store = LmdbStore.open(
            env_dir, create=not (env_dir / "data.mdb").is_file(), map_size=map_size
        )
        try:
            with store.read() as reader:
                if reader.format_marker() is not None:
                    if reader.format_marker() != FORMAT_MARKER:
                        raise StoreError(
                            f"{env_dir} holds a ledger of a format this version does not read"
                        )
                    stored = reader.log_verifier_key()
                    if stored != log_key.encode():
                        raise StoreError(
                            f"{data_dir} mirrors the log of key {excerpt(stored)}, not "
                            f"{excerpt(log_key.encode())}"
                        )
                    check_tail(reader, data_dir=data_dir)
            if not kept:  # once the store is known to be this log's, never before
                write_log_pub(data_dir, log_key)
        except BaseException:
            store.close()
            raise
        return cls(store, data_dir, log_key)

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> MirrorLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def size(self) -> int:
        """The entries held (0 before the genesis arrived)."""
        return self.log.size

    def held(self) -> SignedCheckpoint | None:
        """The latest checkpoint held (the log's signature only), None while empty."""
        return None if self.size == 0 else self.log.checkpoint()

    def root_at(self, size: int) -> bytes:
        """The root of the held tree at ``size``; ``ProofError`` beyond what is held."""
        with self._store.read() as reader:
            held = reader.size()
            if not 0 <= size <= held:
                raise ProofError(f"the mirror holds {held} entries; it has no tree of size {size}")
            return merkle.EMPTY_ROOT if size == 0 else merkle.root_at(reader.nodes(), size)

    def extend(
        self,
        leaves: Sequence[bytes],
        checkpoint: SignedCheckpoint,
        scheduler: SignatureScheduler,
    ) -> None:
        """Verify ``leaves`` (the seqs after those held) and store them with
        ``checkpoint``, durably; see the module docstring. ``MirrorRefusal`` when
        anything fails (nothing is then written)."""
        self.store(self.prepare(leaves, scheduler), checkpoint)

    def prepare(
        self,
        leaves: Sequence[bytes],
        scheduler: SignatureScheduler,
        *,
        first: int | None = None,
        known: dict[bytes, bytes] | None = None,
    ) -> PreparedLeaves:
        """Step 1 alone: decode ``leaves``, the seqs from ``first`` on (default: those
        after the ones held), and start verifying the signatures they will need.

        Safe on another thread while earlier leaves are being stored (a follower
        prepares its next step meanwhile): ``known`` (key id -> public key) is then
        the same dict for every step, in order, so the keys that earlier steps register
        are known before they are stored. A guess that turns out wrong only costs a
        verification on the spot when ``store`` runs (``validator.Verdicts``).
        """
        first = self.size if first is None else first
        readings: list[Reading] = []
        pipeline = self._verify_ahead(leaves, readings, scheduler, known)
        return PreparedLeaves(first, readings, pipeline)

    def store(self, prepared: PreparedLeaves, checkpoint: SignedCheckpoint) -> None:
        """Steps 2 and 3: store ``prepared`` (``prepare``) with ``checkpoint``, durably;
        ``MirrorRefusal`` when anything fails (nothing is then written)."""
        if checkpoint.log_key != self.log_key:
            raise MirrorRefusal("checkpoint", "the checkpoint was not verified with this log's key")
        first, readings = self.size, prepared.readings
        if prepared.first != first:
            raise MirrorRefusal(
                "seq",
                f"the entries given start at {prepared.first}, but the mirror holds {first}",
            )
        if checkpoint.size != first + len(readings):
            raise MirrorRefusal(
                "size",
                f"the checkpoint is of {checkpoint.size} entries but the mirror holds "
                f"{first} and was sent {len(readings)} more",
            )
        plain = _log_signed(checkpoint)
        with self._write_lock, self._store.write() as writer:
            if writer.size() != first:
                raise StoreError("the mirror's log changed under its writer")
            nodes = writer.nodes()
            validator = LogValidator(
                self.origin,
                state=writer.state(),
                tree=merkle.CompactRange.from_reader(nodes, first),
                last_leaf_hash=writer.last_leaf_hash() or ZERO_HASH,
                last_time=writer.last_time() if first else -1,
            )
            for index, verdicts in prepared.pipeline.drain():
                seq = validator.size
                try:
                    validator.apply(readings[index], verdicts)
                except RuleViolation as violation:
                    raise MirrorRefusal(violation.check, violation.message, seq=seq) from None
                leaf_hash = validator.last_leaf_hash or ZERO_HASH
                writer.put_leaf(seq, readings[index].raw)
                for level, position, subtree_hash in merkle.nodes_to_store(seq, leaf_hash, nodes):
                    writer.put_node(level, position, subtree_hash)
            if validator.root() != checkpoint.root:
                raise MirrorRefusal(
                    "root",
                    f"the {len(readings)} entries sent do not make the tree the log signed at "
                    f"size {checkpoint.size}: its root is another",
                    seq=first,
                )
            if first == 0:
                writer.set_identity(origin=self.origin, log_verifier_key=self.log_key.encode())
            writer.put_checkpoint(checkpoint.size, plain)
            writer.set_head(
                size=checkpoint.size,
                last_time=validator.last_time,
                last_leaf_hash=validator.last_leaf_hash or ZERO_HASH,
                checkpoint=plain,
            )

    def _verify_ahead(
        self,
        leaves: Sequence[bytes],
        readings: list[Reading],
        scheduler: SignatureScheduler,
        known: dict[bytes, bytes] | None,
    ) -> Pipeline[int]:
        """Decode ``leaves`` into ``readings`` and start verifying the signatures they will
        need, a chunk at a time as they are decoded (outside the write lock)."""
        with self._store.read() as reader:
            state = reader.state() if reader.format_marker() is not None else None

            def stored(key_id: bytes) -> bytes | None:
                record = None if state is None else state.key(key_id)
                return None if record is None else record.public

            lookahead = KeyLookahead(known, stored=stored)
            # Each new id looked up here, in the snapshot, as the node's append does: the
            # write transaction then reads only level 0 of the entry-id index for it, and
            # the lookups build the filters of its runs (ADR 0056). Damage met here stops
            # the store's writes, as in the write transaction.
            look_up = None if state is None else state.entry_seq
            pipeline: Pipeline[int] = Pipeline(scheduler, chunk_size=CHUNK_SIZE, in_flight=None)
            for index, raw in enumerate(leaves):
                reading = read_leaf(raw)
                readings.append(reading)
                envelope, body = reading.envelope, reading.body
                triples = () if envelope is None else lookahead.triples(envelope, body)
                if look_up is not None and body is not None and not isinstance(body, Genesis):
                    look_up(body.id)
                pipeline.put(index, triples, len(raw))
            pipeline.flush()
        return pipeline


@dataclass(frozen=True)
class PreparedLeaves:
    """Leaves decoded, their signatures on their way (``MirrorLog.prepare``)."""

    #: The seq of the first of them.
    first: int
    readings: list[Reading]
    pipeline: Pipeline[int]

    def __len__(self) -> int:
        return len(self.readings)


def _log_signed(checkpoint: SignedCheckpoint) -> str:
    """The checkpoint's note with the log's own signature line only."""
    own = tuple(line for line in checkpoint.signatures if line.is_by(checkpoint.log_key))
    return Note(checkpoint.text, own[:1]).encode()


__all__ = ["CHUNK_SIZE", "MirrorLog", "PreparedLeaves"]
