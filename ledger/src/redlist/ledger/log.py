"""A town's log on disk: append batches of envelopes, read leaves, proofs and state.

A data directory holds the log key and the LMDB environment (``store``):

* ``log.key``: the log's note signing key, ``PRIVATE+KEY+...`` (mode 0600);
* ``log.pub``: its verifier key string, the one auditors are given;
* ``ledger.lmdb/``: leaves, Merkle nodes, checkpoints and the points state.

The key files are ``logdir``'s to make and read; an account's statement is read by
``statementread``; the look-ups before a sheet is sent by ``lookups``.

Appending (DESIGN 3.3, 6, 7; the steps in ``append``). A batch of envelopes is all
or nothing: every envelope is decoded, its signatures are handed to a
``SignatureScheduler`` (in parallel, starting before the write transaction, because
Ed25519 is what limits throughput), and then, in one write transaction, each goes
through the ledger's one validator (the checks an auditor makes, the points
semantics included, against the state left by the entries before it), becomes a
leaf ``[seq, time, prev, envelope]`` and is written with the Merkle nodes it
completes. The new checkpoint is signed and stored in the same transaction, which
commits durably before ``append`` returns. Any refusal aborts the transaction and
raises ``BatchError`` naming the envelope: nothing of the batch is written.

Resubmitting an envelope that is already in the log (same entry id, same bytes)
returns its existing seq and appends nothing; the same id with other bytes is a
``ConflictError``. Memory use depends on the batch only, never on the log's length.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from redlist.ledger import crypto, lookups, merkle, review
from redlist.ledger.append import Incoming, decode_batch, verify_ahead, write_batch
from redlist.ledger.cores import available_cores
from redlist.ledger.entry import Leaf, TownConfig
from redlist.ledger.errors import (
    FormatError,
    IntegrityError,
    KeyFileError,
    NoteError,
    ProofError,
    StoreError,
)
from redlist.ledger.logdir import read_signer, remove_created, write_key_files
from redlist.ledger.nodecache import UpperNodes
from redlist.ledger.note.checkpoint import SignedCheckpoint, open_checkpoint
from redlist.ledger.note.keys import NoteSigner, VerifierKey
from redlist.ledger.sigschedule import SignatureScheduler
from redlist.ledger.state import KeyRecord, RuleRecord
from redlist.ledger.statement import PAGE_BYTES, AccountStatement
from redlist.ledger.statementread import read_statement
from redlist.ledger.store import ENV_DIR_NAME, FORMAT_MARKER, LmdbStore
from redlist.ledger.tailcheck import check_tail

#: Threads verifying a log's signatures when no scheduler is given, at most.
MAX_THREADS = 16


@dataclass(frozen=True)
class AppendResult:
    """The seq of every envelope of a batch (in order) and the checkpoint that covers them."""

    seqs: tuple[int, ...]
    checkpoint: SignedCheckpoint


class Log:
    """An open log in a data directory. Create with :meth:`create`, open with :meth:`open`.

    Safe to share between threads: reads use their own transactions and ``append``
    serialises writers with a lock (signature checks run outside it).
    """

    def __init__(
        self,
        store: LmdbStore,
        *,
        data_dir: Path,
        origin: str,
        verifier_key: VerifierKey,
        signer: NoteSigner | None,
    ) -> None:
        self._store = store
        self.data_dir = data_dir
        self.origin = origin
        self.verifier_key = verifier_key
        self._signer = signer
        self._write_lock = threading.Lock()
        self._scheduler_lock = threading.Lock()
        #: The caller's scheduler (``verify_signatures_with``), else one of threads.
        self._scheduler: SignatureScheduler | None = None
        self._own_scheduler: SignatureScheduler | None = None
        # The latest checkpoint, verified once; a stored note equal to its text is it.
        self._latest: SignedCheckpoint | None = None
        # The top of the tree, shared by the proofs served (``nodecache``).
        self._upper_nodes = UpperNodes()
        # A tree size the store once committed: a log never shrinks, so a proof in a
        # tree no larger needs no look-up of the size (a stale value costs one read).
        self._committed = 0

    # -- lifecycle ----------------------------------------------------------

    @classmethod
    def create(
        cls,
        data_dir: Path,
        *,
        origin: str,
        log_signer: NoteSigner,
        genesis: bytes,
        now_ms: int,
        map_size: int | None = None,
    ) -> Log:
        """Make a new log in ``data_dir`` (absent or empty) with ``genesis`` as entry 0.

        Writes the log key files, then in one transaction the log's identity, the
        genesis leaf and the first checkpoint. When anything fails, what was created
        is removed again, so the directory can be reused.
        """
        if log_signer.name != origin:
            raise KeyFileError(
                f"the log key is named {log_signer.name!r} but the log's origin is {origin!r}; "
                "a log key must carry the log's origin as its name"
            )
        if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
            raise StoreError(
                f"{data_dir} already exists and is not an empty directory; a new log needs "
                "an empty or new data directory"
            )
        made_dir = not data_dir.exists()
        data_dir.mkdir(parents=True, exist_ok=True)
        verifier_key = log_signer.verifier()
        store: LmdbStore | None = None
        try:
            write_key_files(data_dir, log_signer, verifier_key)
            store = LmdbStore.open(data_dir / ENV_DIR_NAME, create=True, map_size=map_size)
            batch = decode_batch([genesis])
            with store.write() as writer:
                writer.set_identity(origin=origin, log_verifier_key=verifier_key.encode())
                verdicts = [(0, crypto.verify_entry)]
                write_batch(
                    writer, batch, verdicts, origin=origin, signer=log_signer, now_ms=now_ms
                )
        except BaseException:
            if store is not None:
                store.close()
            remove_created(data_dir, made_dir)
            raise
        return cls(
            store, data_dir=data_dir, origin=origin, verifier_key=verifier_key, signer=log_signer
        )

    @classmethod
    def open(cls, data_dir: Path, *, readonly: bool = False, map_size: int | None = None) -> Log:
        """Open the log in ``data_dir``; ``readonly`` works while a node writes to it.

        A writable open first checks the newest entries and the tree's head
        (``tailcheck.check_tail``) and refuses a damaged store with ``IntegrityError``.
        """
        if not data_dir.is_dir():
            raise StoreError(f"the data directory {data_dir} does not exist")
        env_dir = data_dir / ENV_DIR_NAME
        if not env_dir.is_dir():
            raise StoreError(
                f"{data_dir} is not a redlist data directory (it has no {ENV_DIR_NAME}); "
                "create one with 'redlist-node init'"
            )
        store = LmdbStore.open(env_dir, readonly=readonly, map_size=map_size)
        try:
            with store.read() as reader:
                if reader.format_marker() != FORMAT_MARKER:
                    raise StoreError(
                        f"{env_dir} is not a redlist ledger of a format this version reads"
                    )
                if reader.size() == 0:
                    raise StoreError(
                        f"the log in {data_dir} has no genesis: its creation did not finish. "
                        "Remove the directory and create the log again."
                    )
                if not readonly:  # a writer must build on a sound head (tailcheck.py)
                    check_tail(reader, data_dir=data_dir)
                origin = reader.origin()
                verifier_key = VerifierKey.parse(reader.log_verifier_key())
            signer = None if readonly else read_signer(data_dir, verifier_key)
        except BaseException:
            store.close()
            raise
        return cls(
            store, data_dir=data_dir, origin=origin, verifier_key=verifier_key, signer=signer
        )

    def close(self) -> None:
        """Close the store and stop the verification threads (not a caller's scheduler)."""
        with self._scheduler_lock:
            if self._own_scheduler is not None:
                self._own_scheduler.close()
                self._own_scheduler = None
        self._store.close()

    def __enter__(self) -> Log:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def readonly(self) -> bool:
        return self._signer is None

    @property
    def map_size(self) -> int:
        return self._store.map_size

    @property
    def id_filter_bytes(self) -> int:
        """The memory the entry-id index's filters take now (at most 32 MiB; ADR 0056)."""
        return self._store.id_filter_bytes

    # -- appending ----------------------------------------------------------

    def append(self, envelopes: Sequence[Incoming], now_ms: int) -> AppendResult:
        """Append a batch atomically and durably; see the module docstring.

        ``envelopes`` are bytes, or what ``append.decode_each`` made of them (a caller
        that read the bodies first does not pay for decoding them twice).

        ``now_ms`` is the node's clock; the leaves' time is never less than the last
        leaf's. Raises ``BatchError`` (nothing written) when an envelope is refused and
        ``StoreError`` when the store cannot take the batch.
        """
        signer = self._signer
        if signer is None:
            raise StoreError("this log was opened read-only; it cannot be appended to")
        if not envelopes:
            return AppendResult((), self.checkpoint())
        self._store.check_writable()  # a stopped store refuses before reading anything
        batch = decode_batch(envelopes)
        with self._store.read() as reader:
            # The write's id lookups skip the runs whose filters readers built; with no
            # id looked up in a snapshot (``verify_ahead``), the append builds them.
            reader.state().id_index().build_filters()
            verdicts = verify_ahead(batch, reader, self._signature_scheduler())
        with self._write_lock, self._store.write() as writer:
            seqs, signed = write_batch(
                writer, batch, verdicts.drain(), origin=self.origin, signer=signer, now_ms=now_ms
            )
            checkpoint = signed if signed is not None else self._opened(writer.checkpoint())
        self._latest = checkpoint
        return AppendResult(tuple(seqs), checkpoint)

    def verify_signatures_with(self, scheduler: SignatureScheduler | None) -> None:
        """Verify the signatures of appended batches with ``scheduler`` (None: threads).

        By default a batch's signatures are verified on a thread per core. A node that
        serves gRPC beside its appends passes one with worker processes instead (its
        caller owns it): a verifying thread re-takes the GIL after each signature, and
        waits for it while the server's and the writer's Python runs. Either way the
        write begins with the first chunk's verdicts, and the verdicts are the same.
        """
        self._scheduler = scheduler

    def _signature_scheduler(self) -> SignatureScheduler:
        if self._scheduler is not None:
            return self._scheduler
        with self._scheduler_lock:
            if self._own_scheduler is None:
                workers = min(available_cores(), MAX_THREADS)
                self._own_scheduler = SignatureScheduler(workers)
            return self._own_scheduler

    # -- reading ------------------------------------------------------------

    @property
    def size(self) -> int:
        """The number of entries in the log (its tree size)."""
        with self._store.read() as reader:
            return reader.size()

    def checkpoint(self) -> SignedCheckpoint:
        """The latest signed checkpoint, verified with the log's key.

        A stored checkpoint that does not verify is an ``IntegrityError``.
        """
        with self._store.read() as reader:
            note = reader.checkpoint()
        checkpoint = self._opened(note)
        self._latest = checkpoint
        return checkpoint

    def checkpoint_at(self, size: int) -> SignedCheckpoint | None:
        """The checkpoint this log signed at tree size ``size``, if it signed one."""
        if size < 0:
            return None
        with self._store.read() as reader:
            note = reader.checkpoint_at(size)
        return None if note is None else self._opened(note)

    def checkpoint_step(self, after: int, at_most: int) -> SignedCheckpoint | None:
        """A checkpoint this log signed for a follower holding ``after`` entries: the
        largest in ``(after, at_most]``, else the smallest above ``after`` (None: none)."""
        with self._store.read() as reader:
            found = reader.checkpoint_step(after, at_most)
        return None if found is None else self._opened(found[1])

    def _opened(self, note: str) -> SignedCheckpoint:
        """The stored checkpoint ``note``, verified (once: the latest one is kept)."""
        latest = self._latest
        if latest is not None and latest.note == note:
            return latest
        try:
            return open_checkpoint(note, self.verifier_key)
        except NoteError as exc:
            raise IntegrityError(
                f"a checkpoint stored in log {self.origin} does not verify with the log's own "
                f"key ({exc}): the store is damaged; run 'redlist-node check --full'"
            ) from None

    def leaves(self, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        """``(seq, leaf bytes)`` for seq in ``[start, end)``, streamed from one snapshot.

        The range is checked now; the leaves are read as the iterator is consumed, so
        memory stays flat however long the range. Close the iterator when abandoning
        it early, so its read transaction ends.
        """
        size = self.size
        if not 0 <= start <= end <= size:
            raise StoreError(
                f"entries [{start}, {end}) are not in the log, which has {size} entries"
            )
        return self._stream_leaves(start, end)

    def entry(self, entry_id: bytes) -> tuple[int, bytes] | None:
        """The seq and leaf bytes of the entry whose body has id ``entry_id``; None when
        the log holds no such entry."""
        with self._store.read() as reader:
            seq = reader.indexed_seq(entry_id)
            leaf = None if seq is None else reader.leaf(seq)
        return None if seq is None or leaf is None else (seq, leaf)

    def staff_key(self, key_id: bytes) -> KeyRecord | None:
        """The staff key registered under ``key_id`` (revoked or not), as the log stands."""
        with self._store.read() as reader:
            return reader.state().key(key_id)

    def try_pending(
        self, body: bytes, signatures: Mapping[bytes, bytes], now_ms: int
    ) -> review.PendingTrial:
        """What the points semantics says now of ``body`` signed with ``signatures`` as
        the next entry (``review.try_pending``), from one snapshot; changes nothing."""
        with self._store.read() as reader:
            return review.try_pending(
                reader.state(),
                origin=self.origin,
                seq=reader.size(),
                time=max(now_ms, reader.last_time()),
                body=body,
                signatures=signatures,
            )

    def rule(self, code: str) -> RuleRecord | None:
        """The rule ``code`` as the log stands (retired or not); None when never set."""
        with self._store.read() as reader:
            return reader.state().rule(code)

    def _stream_leaves(self, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        with self._store.read() as reader:
            yield from reader.iter_leaves(start, end)

    def config(self) -> TownConfig:
        """The town's configuration, from the genesis."""
        with self._store.read() as reader:
            return reader.config()

    def leaf_time(self, seq: int) -> int:
        """The node time (ms) of entry ``seq``; ``StoreError`` for a seq the log lacks."""
        with self._store.read() as reader:
            stored = reader.leaf(seq)
        if stored is None:
            raise StoreError(f"entry {seq} is not in the log, which has {self.size} entries")
        try:
            return Leaf.from_bytes(stored).time
        except FormatError as exc:
            raise IntegrityError(f"leaf {seq} of the store does not decode: {exc}", seq) from None

    def compact_range(self, size: int) -> merkle.CompactRange:
        """The compact range of the leaves ``[0, size)`` (a bundle's ``left``)."""
        with self._store.read() as reader:
            _check_size(size, reader.size())
            return merkle.CompactRange.from_reader(reader.nodes(), size)

    def inclusion_proof(self, seq: int, size: int) -> list[bytes]:
        """The RFC 9162 inclusion proof of leaf ``seq`` in the tree of ``size`` leaves."""
        with self._store.read_tree() as tree:
            if not 0 <= size <= self._committed:
                current = tree.size()
                _check_size(size, current)
                self._committed = current
            return self._upper_nodes.inclusion_proof(tree, seq, size)

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """The RFC 9162 consistency proof from tree size ``first`` to ``second``."""
        with self._store.read() as reader:
            _check_size(second, reader.size())
            nodes = self._upper_nodes.reader(reader.nodes(), second)
            return merkle.consistency_proof(nodes, first, second)

    def account(
        self,
        account: str,
        *,
        page_size: int = 0,
        page_token: bytes = b"",
        page_bytes: int = PAGE_BYTES,
    ) -> AccountStatement:
        """A page of the statement of ``account``: its balances, up to
        ``page_entries(page_size)`` of its awards and redemptions (fewer once their
        leaves would pass ``page_bytes``, never none while any is left) and the
        checkpoint they are as of, read from one snapshot; an account no entry mentions
        has the base score. ``page_token`` (the ``next_page_token`` of the page before)
        continues a read at the tree size its first page was of (``statement``).

        Raises ``FormatError`` for a malformed account id and ``PageTokenError`` for a
        token that does not continue a read of this account in this log.
        """
        return read_statement(
            self._store, account, page_size=page_size, page_token=page_token, page_bytes=page_bytes
        )

    # -- look-ups before a sheet is sent (``lookups``) -------------------------

    def find_entries(self, ids: Sequence[bytes]) -> tuple[int, dict[bytes, int]]:
        """The tree size, and the seq of each of ``ids`` in the log (``lookups``)."""
        with self._store.read() as reader:
            return lookups.find_entries(reader, ids)

    def rules(self) -> tuple[int, tuple[RuleRecord, ...]]:
        """The tree size, and the rule catalogue, retired rules too (``lookups``)."""
        with self._store.read() as reader:
            return lookups.catalogue(reader)

    def staff_keys(self) -> tuple[int, tuple[KeyRecord, ...]]:
        """The tree size, and every staff key, revoked ones too (``lookups``)."""
        with self._store.read() as reader:
            return lookups.staff_keys(reader)

    def month_counts(self, keys: Sequence[lookups.MonthKey]) -> tuple[int, tuple[int, ...]]:
        """The tree size, and the qty each key's awards count towards a monthly cap."""
        with self._store.read() as reader:
            return lookups.month_counts(reader, keys)


# ---------------------------------------------------------------------------
# Small helpers


def _check_size(size: int, current: int) -> None:
    if not 0 <= size <= current:
        raise ProofError(f"the log has {current} entries; there is no tree of size {size}")
