"""A witness's durable state: per log, the last checkpoint it cosigned (DESIGN 8.2).

The state lives in its own LMDB environment, ``<data>/witness.lmdb/``, beside the
ledger's and never mixed with it: a town's node may witness other towns' logs
without its own log's storage knowing. One table, ``heads``:

==========  ==============================================  ==================================
table       key                                             value
==========  ==============================================  ==================================
``heads``   SHA-256 of the log's verifier key string        size (8 bytes, big-endian) ‖ root
            (origin and key: a log is both)                 (32 bytes) ‖ signed note (UTF-8)
==========  ==============================================  ==================================

:meth:`WitnessStore.swap` is the compare-and-swap the witness protocol needs: in one
write transaction it reads the stored size, refuses (``WitnessRefusal``,
``OLD_SIZE_MISMATCH``, with the stored size) when it is not the size the caller
decided from, and otherwise writes the new head. Commits are synchronous (LMDB's
``sync`` and ``metasync``), so when ``swap`` returns the head is on disk: a
cosignature is answered only after that, and a witness killed at any moment never
forgets a head it cosigned (so it never cosigns two heads of one size).

**Never rolled back.** Every head stored is also appended to the witness's journal,
``<data>/witness.journal`` (:mod:`redlist.ledger.witnessjournal`), after the commit
and before ``swap`` returns. :meth:`WitnessStore.open` compares the two and refuses
(:class:`WitnessRollbackError`) a state older than the journal, such as a restored old
copy of ``witness.lmdb``; a state ahead of its journal (the witness died between the
two writes) only brings the journal up to date. The ``meta`` table records that the
state has a journal, so a journal deleted later is refused too. :meth:`WitnessStore.reset`
is the operator's deliberate way past a refusal (``redlist-node witness-reset``).

One process at a time: the store holds an exclusive ``flock`` on ``<data>/witness.lock``
while it is open (released by the kernel when the process dies).

This module is part of the storage seam: nothing else touches this environment.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Collection
from contextlib import suppress
from pathlib import Path

import lmdb

from redlist.ledger.errors import IntegrityError, NoteError, StoreError
from redlist.ledger.filelock import lock_file
from redlist.ledger.lmdbopen import open_tables
from redlist.ledger.merkle import HASH_SIZE, MemoryTree
from redlist.ledger.note.checkpoint import Checkpoint
from redlist.ledger.note.keys import VerifierKey
from redlist.ledger.note.signed import Note
from redlist.ledger.witness import Refusal, WitnessedHead, WitnessRefusal
from redlist.ledger.witnessjournal import JOURNAL_NAME, JournalHead, Rollback, WitnessJournal

#: The witness state's environment directory inside a node's data directory.
WITNESS_ENV_NAME = "witness.lmdb"
#: Address space reserved; a head is at most a note (1 MiB), one per configured log.
WITNESS_MAP_SIZE = 1 << 30
WITNESS_LOCK_NAME = "witness.lock"
_HEADS = b"heads"
_META = b"meta"
#: In ``meta``: present once the state has a journal beside it.
_HAS_JOURNAL = b"journal"
_SIZE_BYTES = 8
_EMPTY_ROOT = MemoryTree([]).root()


class WitnessRollbackError(IntegrityError):
    """The witness's state is older than what its journal says it cosigned."""

    def __init__(self, message: str, rollbacks: tuple[Rollback, ...]) -> None:
        super().__init__(message)
        self.rollbacks = rollbacks


class WitnessStore:
    """The witness heads of one data directory. Open with :meth:`open`; close when done.

    Safe to share between threads: LMDB runs one write transaction at a time, and the
    compare happens inside it.
    """

    def __init__(
        self,
        env: lmdb.Environment,
        heads: lmdb._Database,
        meta: lmdb._Database,
        path: Path,
        lock: int,
    ) -> None:
        self._env = env
        self._heads = heads
        self._meta = meta
        self.path = path
        self._lock = lock
        self._journal: WitnessJournal | None = None
        self._writing = threading.Lock()
        #: Where the state is older than the journal (see :meth:`open`'s ``check``).
        self.rollbacks: tuple[Rollback, ...] = ()
        #: The state says it had a journal, and there is none.
        self.journal_missing = False

    @classmethod
    def open(cls, data_dir: Path, *, check: bool = True) -> WitnessStore:
        """Open (creating when absent) ``data_dir/witness.lmdb`` and check it against its journal.

        A state older than its journal raises :class:`WitnessRollbackError` (with
        ``check=False`` the store opens anyway, read-only in effect: :attr:`rollbacks`
        and :attr:`journal_missing` say what is wrong, and only :meth:`reset` writes).
        Another process holding the store raises ``StoreError``.
        """
        path = data_dir / WITNESS_ENV_NAME
        lock = _lock(data_dir / WITNESS_LOCK_NAME)
        try:
            store = cls._open_environment(path, lock)
        except BaseException:
            os.close(lock)
            raise
        try:
            store._attach_journal(data_dir)
            if check and (store.rollbacks or store.journal_missing):
                raise WitnessRollbackError(store.refusal_message(), store.rollbacks)
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def _open_environment(cls, path: Path, lock: int) -> WitnessStore:
        # Durable before the reply: never trade this away for speed (``lmdbopen``).
        env, tables = open_tables(
            path, tables=(_HEADS, _META), map_size=WITNESS_MAP_SIZE, what="the witness state"
        )
        return cls(env, tables[_HEADS], tables[_META], path, lock)

    def _attach_journal(self, data_dir: Path) -> None:
        """Open the journal (creating it for a state that never had one) and compare."""
        stored = self._all_heads()
        if not WitnessJournal.exists(data_dir):
            if self._has_journal():
                self.journal_missing = True
                return
            self._journal = WitnessJournal.create(data_dir, stored)
            self._mark_journal()
            return
        journal = WitnessJournal.open(data_dir)
        self._journal = journal
        known = journal.heads()
        rollbacks = []
        for key, head in known.items():
            held = stored.get(key)
            if held is None and head.size == 0 and head.root == _EMPTY_ROOT:
                continue
            if (
                held is None
                or held.size < head.size
                or (held.size == head.size and held.root != head.root)
            ):
                rollbacks.append(Rollback(key, head, held))
        self.rollbacks = tuple(rollbacks)
        if not self.rollbacks:
            for key, held in stored.items():  # the witness died between commit and journal
                logged = known.get(key)
                if logged is None or held.size > logged.size:
                    journal.record(key, held)
            if not self._has_journal():
                self._mark_journal()

    def refusal_message(self) -> str:
        """What is wrong with the state and what the operator can do, in words."""
        data_dir = self.path.parent
        if self.journal_missing:
            problem = (
                f"the witness journal {data_dir / JOURNAL_NAME} is missing, but the witness "
                f"state {self.path} was kept with one: it was deleted, or the state was "
                "copied in from elsewhere"
            )
        else:
            problem = (
                f"the witness state {self.path} is older than what this witness has cosigned "
                f"(its journal {data_dir / JOURNAL_NAME}): "
                + "; ".join(rollback.describe() for rollback in self.rollbacks)
                + ". Was an old copy of witness.lmdb restored?"
            )
        return (
            f"{problem} Put the newest witness.lmdb back; or, accepting that this witness "
            "may then cosign a history that contradicts one it cosigned before, reset it "
            f"on purpose: redlist-node witness-reset --data {data_dir} --accept-rollback"
        )

    def reset(self, origins: Collection[str] = ()) -> tuple[Rollback, ...]:
        """Accept the state's heads where they are older than the journal's, on purpose.

        Only the logs of ``origins`` (all when empty). Each is recorded in the journal
        as a reset; a missing journal is written anew from the state, every log recorded
        as reset. Returns the rollbacks accepted (empty when the journal was recreated).
        """
        data_dir = self.path.parent
        stored = self._all_heads()
        if self.journal_missing:
            fresh = WitnessJournal.create(data_dir, {})
            for key, held in sorted(stored.items()):
                fresh.record_reset(key, held, None)
            self._journal, self.journal_missing = fresh, False
            return ()
        journal = self._journal
        if journal is None:
            raise StoreError(f"the witness journal beside {self.path} is not open")
        accepted = tuple(
            rollback
            for rollback in self.rollbacks
            if not origins or rollback.journal.origin in origins
        )
        for rollback in accepted:
            held = rollback.stored or JournalHead(rollback.journal.origin, 0, _EMPTY_ROOT)
            journal.record_reset(rollback.key, held, rollback.journal)
        self.rollbacks = tuple(r for r in self.rollbacks if r not in accepted)
        return accepted

    def _all_heads(self) -> dict[bytes, JournalHead]:
        heads = {}
        try:
            with self._env.begin(db=self._heads) as txn:
                for key, value in txn.cursor():
                    head = self._decode(value)
                    heads[bytes(key)] = JournalHead(_origin(head.note), head.size, head.root)
        except lmdb.Error as exc:
            raise StoreError(f"cannot read the witness state at {self.path}: {exc}") from None
        return heads

    def _has_journal(self) -> bool:
        with self._env.begin(db=self._meta) as txn:
            return txn.get(_HAS_JOURNAL) is not None

    def _mark_journal(self) -> None:
        try:
            with self._env.begin(write=True, db=self._meta) as txn:
                txn.put(_HAS_JOURNAL, b"1")
        except lmdb.Error as exc:
            raise StoreError(f"cannot write the witness state at {self.path}: {exc}") from None

    def head(self, log_key: VerifierKey) -> WitnessedHead | None:
        """The head last cosigned for the log of ``log_key``; None when there is none."""
        try:
            with self._env.begin(db=self._heads) as txn:
                value = txn.get(_key(log_key))
        except lmdb.Error as exc:
            raise StoreError(f"cannot read the witness state at {self.path}: {exc}") from None
        return None if value is None else self._decode(value)

    def swap(self, log_key: VerifierKey, old_size: int, new: WitnessedHead) -> None:
        """Store ``new`` for the log of ``log_key`` if the stored size is ``old_size``.

        Nothing stored counts as size 0. Raises ``WitnessRefusal`` (``OLD_SIZE_MISMATCH``,
        ``stored_size`` set) when another head was stored meanwhile; returns only after
        the commit is on disk.
        """
        journal = self._journal
        if journal is None or self.rollbacks:
            raise StoreError(f"the witness state at {self.path} was opened unchecked: not written")
        with self._writing:  # the journal's lines in the order of the commits
            self._swap(log_key, old_size, new)
            journal.record(_key(log_key), JournalHead(log_key.name, new.size, new.root))

    def _swap(self, log_key: VerifierKey, old_size: int, new: WitnessedHead) -> None:
        key = _key(log_key)
        value = new.size.to_bytes(_SIZE_BYTES, "big") + new.root + new.note.encode("utf-8")
        try:
            txn = self._env.begin(write=True, db=self._heads)
        except lmdb.Error as exc:
            raise StoreError(f"cannot write the witness state at {self.path}: {exc}") from None
        try:
            current = txn.get(key)
            stored = 0 if current is None else self._decode(current).size
            if stored != old_size:
                raise WitnessRefusal(
                    Refusal.OLD_SIZE_MISMATCH,
                    f"the witness holds size {stored}, not {old_size}: ask again from there",
                    stored_size=stored,
                )
            txn.put(key, value)
            txn.commit()
        except lmdb.Error as exc:
            raise StoreError(
                f"writing the witness state at {self.path} failed, nothing was stored: {exc}"
            ) from None
        finally:
            with suppress(lmdb.Error):
                txn.abort()

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
        self._env.close()
        if self._lock >= 0:
            os.close(self._lock)  # releases the flock
            self._lock = -1

    def _decode(self, value: bytes) -> WitnessedHead:
        if len(value) < _SIZE_BYTES + HASH_SIZE:
            raise IntegrityError(f"a head in the witness state at {self.path} is truncated")
        size = int.from_bytes(value[:_SIZE_BYTES], "big")
        root = bytes(value[_SIZE_BYTES : _SIZE_BYTES + HASH_SIZE])
        try:
            note = bytes(value[_SIZE_BYTES + HASH_SIZE :]).decode("utf-8")
        except UnicodeDecodeError:
            raise IntegrityError(f"a head in the witness state at {self.path} is damaged") from None
        return WitnessedHead(size, root, note)


def _key(log_key: VerifierKey) -> bytes:
    return hashlib.sha256(log_key.encode().encode("utf-8")).digest()


def _origin(note: str) -> str:
    try:
        return Checkpoint.from_text(Note.parse(note).text).origin
    except NoteError:  # a head's note was checked when stored; name it anyway
        return note.split("\n", 1)[0]


def _lock(path: Path) -> int:
    return lock_file(
        path,
        busy=lambda: (
            f"the witness state in {path.parent} is open in another process (a node "
            "serving it); stop it first"
        ),
    )
