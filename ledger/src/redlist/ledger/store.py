"""The ledger's storage: one LMDB environment holding the log, its tree and its state.

Layout. The environment is the directory ``<data>/ledger.lmdb/`` (LMDB's ordinary
directory form: ``data.mdb`` and ``lock.mdb``). It holds these named tables; every
integer in a key is 8 bytes big-endian, so keys sort in numeric order:

==================  ===========================================  =============================
table               key                                          value
==================  ===========================================  =============================
``meta``            a name (see the ``META_*`` constants)        bytes, text or 8-byte integer
                                                                 (``config``, ``id_runs``:
                                                                 sealed)
``leaves``          seq                                          the exact leaf bytes
``nodes``           1-byte level + index                         32-byte perfect subtree hash
``ids``             entry id (16 bytes): level 0 of the          sealed, empty (its seq says it)
                    entry-id index, its newest ids
``keys``            key id (8 bytes)                             sealed ``KeyRecord`` bytes
``rules``           rule code (UTF-8; see ``rule_key``)          sealed ``RuleRecord`` bytes
``balances``        account (UTF-8)                              sealed ``Balance`` bytes
``targets``         seq of an award or redeem                    sealed ``TargetRecord`` bytes
``month_counts``    account (UTF-8) + 0x00 + month ``YYYY-MM``   sealed ``[rule, qty]``: the
                    + rule key (``rule_key``)                    qty of the account's
                                                                 unreversed awards under the
                                                                 rule with deeds in the month
                                                                 (none when 0)
``checkpoints``     tree size                                    signed checkpoint note (UTF-8)
``account_links``   seq of an entry that links accounts          sealed, per account it links:
                                                                 the account and the seq of its
                                                                 previous linked entry
                                                                 (``AccountLink``)
``account_heads``   account (UTF-8)                              sealed count of its links; the
                                                                 seal's seq is its latest
``id_runs``         run number + entry id: the entry-id index's  the id's ``ids`` record
                    runs, listed in ``meta`` ``id_runs``
==================  ===========================================  =============================

The accounts' entry lists. ``account_links`` and ``account_heads`` together hold each
account's entries as a list linked back from its latest (ADR 0043): an append writes
the newest key of ``account_links`` and one record per account it touches, never a
key at a random place in a table as long as the log (which would cost a page per
entry at each commit); ``StoreReader.account_seqs`` walks a list back and yields it in
order.

The entry-id index is log-structured (``idindex``, ``idruns``; ADR 0044): level 0 in
``ids`` holds at most 16,384 ids, so a batch dirties a bounded set of its pages however
long the log; when it fills, its ids are written in key order as a run in ``id_runs``
(append mode: dense pages, in order) and runs are merged four at a time up to runs of
1,048,576 ids, in the same transaction. A lookup tries level 0, then each run.

Sealed. The state derived from the log carries a checksum per record, bound to its
table, its key and the seq of the entry that last changed it (``storelayout``: the
record is ``payload ‖ seq ‖ tag``). The points semantics' reads check it
(``storestate``); a record that fails stops the store's writes (below). The store's
write transactions share a ``SealedMemo`` (``sealmemo``, ADR 0047): a record whose
stored bytes are exactly those the writer last sealed or checked is known sound and
is not checked again.

Durability. Commits are synchronous (LMDB's default ``sync`` and ``metasync``): a
commit returns only after the data and the new meta page are on disk, so whatever a
caller was told is committed survives a crash or power loss. A batch is one write
transaction; when it fails (a refused entry, a full map, a disk error) the
transaction is aborted and nothing of it is visible, ever.

Map size. LMDB reserves address space for the whole map up front but the file grows
only as pages are used, so the default is a generous 1 TiB of virtual space. When
the map is full a write fails with a ``StoreError`` saying so; reopening with a
larger ``map_size`` continues where the log stopped.

A failed commit. When the disk fails during a commit (a write or the fsync returns
EIO, ENOSPC...), whether the commit reached the disk is unknown, and a retried fsync
may succeed on pages the kernel has already dropped. The store then takes no more
writes for as long as it is open (``CommitFailedError``; ADR 0029): the failed commit
is never retried, and a restart, whose open re-checks the log's tail, finds out what
was stored. Reads go on after a failed data write or fsync (LMDB aborted the
transaction, and its readers see the last commit); after a failed write of the meta
page LMDB itself refuses every transaction (``MDB_PANIC``) until the store is reopened.

Damaged state. When a read meets a state record that fails its checksum
(``StateDamageError``), the store takes no more writes for as long as it is open:
every later ``write`` raises the same error, so nothing is ever decided on that
state and signed. Reads of the log itself (leaves, tree, checkpoints) go on. The
store is repaired from a backup or a mirror, then reopened.

Format. The store's format marker (``FORMAT_MARKER``) is checked on open; a store
of an earlier format is refused with advice (format 1 had no seals, format 2 no deed
dates nor rule caps, format 3 kept the accounts' entry lists keyed by account and the
entry-id index in one table; none was deployed: there is no migration, such a log is
created again).

Readers. Any number of processes may open the environment read-only while one
process writes (the node serves while ``export`` runs): readers take LMDB's reader
lock and see the last committed state, never a partial one.

The seam. The store is this module and the five beside it: ``storeopen`` (opening
the environment: the writer lock, the checks before a page is read), ``storelayout``
(tables, metadata names, key encoding), ``storeview`` (``StoreReader``: every read, on one
snapshot; ``storelists`` walks the accounts' entry lists for it), ``storestate``
(``LmdbState``: the points semantics' view of a transaction) and ``idindex`` (the
entry-id index's level 0 and runs). Nothing else touches an LMDB transaction or builds
a key; the log, the integrity checks, the node and its export read and write through
these methods.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import lmdb

from redlist.ledger.errors import (
    CommitFailedError,
    IntegrityError,
    StateDamageError,
    StoreError,
)
from redlist.ledger.idindex import SharedIdMemory
from redlist.ledger.sealmemo import SealedMemo
from redlist.ledger.storelayout import (
    FORMAT_MARKER,
    META_CHECKPOINT,
    META_FORMAT,
    META_LAST_LEAF_HASH,
    META_LAST_TIME,
    META_LOG_VERIFIER_KEY,
    META_ORIGIN,
    META_SIZE,
    AccountLink,
    Tables,
    int_key,
    node_key,
)
from redlist.ledger.storeopen import DEFAULT_MAP_SIZE, MAX_READERS, open_environment, unlock_writer
from redlist.ledger.storestate import LmdbState
from redlist.ledger.storetree import TreeSnapshot
from redlist.ledger.storeview import (
    StoredHead,
    StoredRecord,
    StoreReader,
    TableCounts,
    account_links_of,
)

#: The environment's directory inside a data directory.
ENV_DIR_NAME = "ledger.lmdb"


class LmdbStore:
    """An open ledger environment. Use :meth:`read` and :meth:`write` for transactions.

    A store is safe to share between threads: read transactions are independent,
    and LMDB lets one write transaction run at a time (callers serialise writers).
    """

    def __init__(
        self,
        env: lmdb.Environment,
        tables: Tables,
        path: Path,
        readonly: bool,
        writer_lock: int | None = None,
    ) -> None:
        self._env = env
        self._tables = tables
        self.path = path
        self.readonly = readonly
        self._writer_lock = writer_lock
        #: The damaged state record met first; from then on, no writes.
        self._damage: StateDamageError | None = None
        #: The commit the disk failed; from then on, no writes.
        self._failed: CommitFailedError | None = None
        #: Ids read snapshots found in no run of the entry-id index, and its runs'
        #: filters (``idindex``, ``idfilter``).
        self._shared_ids = SharedIdMemory()
        #: State records the writes sealed or opened, by their bytes (``sealmemo``).
        self._sealed_memo = SealedMemo()

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        create: bool = False,
        readonly: bool = False,
        map_size: int | None = None,
    ) -> LmdbStore:
        """Open the environment directory ``path`` (``create``: make a new, empty one).

        Opening never creates anything unless ``create`` is set, and a read-only open
        works while another process holds the environment open for writing.
        """
        env, tables, writer_lock = open_environment(
            path, create=create, readonly=readonly, map_size=map_size
        )
        return cls(env, tables, path, readonly, writer_lock)

    @property
    def map_size(self) -> int:
        """The map size in force, in bytes."""
        return self._env.info()["map_size"]

    @property
    def id_filter_bytes(self) -> int:
        """The memory the entry-id index's filters take now (``idfilter``, ADR 0056)."""
        return self._shared_ids.filters.memory

    def read(self) -> _ReadTransaction:
        """A read transaction: a consistent snapshot of the last commit, as a context
        manager giving a ``StoreReader``. (A class, not a generator: a proof is one
        read, and the generator's own cost was a tenth of it.)"""
        return _ReadTransaction(self, self._begin(None))

    def read_tree(self) -> _TreeRead:
        """``read`` for an inclusion proof: the snapshot's tree alone (``TreeSnapshot``),
        in a transaction whose default table is ``nodes`` (no ``StoreReader``, no cursor:
        together some 8% of a proof at 2^20 entries)."""
        return _TreeRead(self, self._begin(self._tables.nodes))

    def _begin(self, db: lmdb._Database | None) -> lmdb.Transaction[bytes]:
        try:
            return self._env.begin(db=db)
        except lmdb.Error as exc:
            if self._failed is not None:
                raise StoreError(
                    f"cannot read the ledger ({exc}): its disk failed during a commit "
                    f"({self._failed.reason}); restart the node once the disk is checked"
                ) from None
            raise StoreError(f"cannot read the ledger: {exc}") from None

    def _stop_writes(self, damage: StateDamageError) -> None:
        if self._damage is None:
            self._damage = damage

    def check_writable(self) -> None:
        """Raise what :meth:`write` would raise before it begins: the store is read-only,
        or it has stopped taking writes (a damaged record, a commit the disk failed)."""
        if self.readonly:
            raise StoreError("this ledger was opened read-only; it cannot be written")
        if self._damage is not None:
            raise StateDamageError(self._damage.table, self._damage.record)
        if self._failed is not None:
            raise CommitFailedError(self._failed.reason, in_doubt=False)

    @contextmanager
    def write(self) -> Iterator[StoreWriter]:
        """A write transaction, committed durably when the block ends normally.

        On any exception in the block the transaction is aborted, so nothing of it is
        written. LMDB failures leave as ``StoreError``; a full map says so and gives the
        size. A commit the disk fails is a ``CommitFailedError``, and so is every later
        write (see the module docstring).
        """
        self.check_writable()
        try:
            txn = self._env.begin(write=True)
        except lmdb.Error as exc:
            raise StoreError(f"cannot write to the ledger: {exc}") from None
        try:
            yield StoreWriter(txn, self._tables, self._shared_ids, self._sealed_memo)
        except StateDamageError as damage:
            _end(txn)
            self._stop_writes(damage)
            raise
        except lmdb.MapFullError:
            _end(txn)
            raise self._full() from None
        except lmdb.Error as exc:
            _end(txn)
            raise StoreError(f"writing to the ledger failed, nothing was stored: {exc}") from None
        except BaseException:
            _end(txn)
            raise
        self._commit(txn)

    def _commit(self, txn: lmdb.Transaction[bytes]) -> None:
        """Commit ``txn``; a failure other than a full map stops the writes for good."""
        try:
            txn.commit()
        except lmdb.MapFullError:
            # Raised while LMDB allocates pages for its free list, before it writes.
            _end(txn)
            raise self._full() from None
        except lmdb.Error as exc:
            _end(txn)
            failure = CommitFailedError(str(exc), in_doubt=True)
            if self._failed is None:
                self._failed = failure
            raise failure from None

    def _full(self) -> StoreError:
        return StoreError(
            f"the ledger's storage is full (map size {self.map_size} bytes); nothing of "
            "this write was stored. Reopen the ledger with a larger map size."
        )

    def close(self) -> None:
        """Close the environment; open transactions and iterators become invalid."""
        self._env.close()
        unlock_writer(self._writer_lock)
        self._writer_lock = None


class _Read:
    """A read transaction's end: the transaction ends, a damaged state record stops the
    store's writes, and an LMDB failure becomes a ``StoreError``."""

    __slots__ = ("_store", "_txn")

    def __init__(self, store: LmdbStore, txn: lmdb.Transaction[bytes]) -> None:
        self._store = store
        self._txn = txn

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _end(self._txn)
        if isinstance(exc, StateDamageError):
            self._store._stop_writes(exc)
        elif isinstance(exc, lmdb.Error):
            raise StoreError(f"reading the ledger failed: {exc}") from None


class _ReadTransaction(_Read):
    """``LmdbStore.read``'s context: the ``StoreReader`` on entry."""

    __slots__ = ()

    def __enter__(self) -> StoreReader:
        store = self._store
        return StoreReader(self._txn, store._tables, store._shared_ids)


class _TreeRead(_Read):
    """``LmdbStore.read_tree``'s context: the ``TreeSnapshot`` on entry."""

    __slots__ = ()

    def __enter__(self) -> TreeSnapshot:
        return TreeSnapshot(self._txn, self._store._tables.meta)


def _end(txn: lmdb.Transaction[bytes]) -> None:
    """Abort ``txn`` if it is still open (it may already be finished or invalidated)."""
    # Not ``contextlib.suppress``: every read of the store ends here, and its object
    # and two calls cost more than the abort itself.
    try:  # noqa: SIM105
        txn.abort()
    except lmdb.Error:
        pass


class StoreWriter(StoreReader):
    """Typed write access within one write transaction."""

    _writing = True

    def _put_meta(self, name: bytes, value: bytes) -> None:
        self._txn.put(name, value, db=self._tables.meta)

    def set_identity(self, *, origin: str, log_verifier_key: str) -> None:
        """Mark a new environment as a redlist ledger of ``origin`` signed by that key."""
        self._put_meta(META_FORMAT, FORMAT_MARKER)
        self._put_meta(META_ORIGIN, origin.encode("utf-8"))
        self._put_meta(META_LOG_VERIFIER_KEY, log_verifier_key.encode("utf-8"))

    def put_leaf(self, seq: int, leaf: bytes) -> None:
        # Leaves only ever go at the end; refusing to overwrite guards that invariant.
        if not self._txn.put(
            int_key(seq), leaf, overwrite=False, append=True, db=self._tables.leaves
        ):
            raise IntegrityError(f"leaf {seq} is already stored or out of order", seq)

    def put_node(self, level: int, index: int, node_hash: bytes) -> None:
        self._txn.put(node_key(level, index), node_hash, db=self._tables.nodes)

    def put_checkpoint(self, size: int, checkpoint: str) -> None:
        self._txn.put(int_key(size), checkpoint.encode("utf-8"), db=self._tables.checkpoints)

    def set_head(
        self, *, size: int, last_time: int, last_leaf_hash: bytes, checkpoint: str
    ) -> None:
        """Record the log's new size, its last leaf and its latest checkpoint."""
        self._put_meta(META_SIZE, int_key(size))
        self._put_meta(META_LAST_TIME, int_key(last_time))
        self._put_meta(META_LAST_LEAF_HASH, last_leaf_hash)
        self._put_meta(META_CHECKPOINT, checkpoint.encode("utf-8"))


__all__ = [
    "DEFAULT_MAP_SIZE",
    "ENV_DIR_NAME",
    "FORMAT_MARKER",
    "MAX_READERS",
    "AccountLink",
    "LmdbState",
    "LmdbStore",
    "StoreReader",
    "StoreWriter",
    "StoredHead",
    "StoredRecord",
    "TableCounts",
    "account_links_of",
]
