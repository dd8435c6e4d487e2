"""The ledger's storage: one LMDB environment holding the log, its tree and its state.

Layout. The environment is the directory ``<data>/ledger.lmdb/`` (LMDB's ordinary
directory form: ``data.mdb`` and ``lock.mdb``). It holds these named tables; every
integer in a key is 8 bytes big-endian, so keys sort in numeric order:

==================  ===========================================  =============================
table               key                                          value
==================  ===========================================  =============================
``meta``            a name (see the ``META_*`` constants)        bytes, text or 8-byte integer
``leaves``          seq                                          the exact leaf bytes
``nodes``           1-byte level + index                         32-byte perfect subtree hash
``ids``             entry id (16 bytes)                          seq
``keys``            key id (8 bytes)                             ``KeyRecord`` bytes
``rules``           rule code (UTF-8; see ``rule_key``)          ``RuleRecord`` bytes
``balances``        account (UTF-8)                              ``Balance`` bytes
``targets``         seq of an award or redeem                    ``TargetRecord`` bytes
``account_entries`` account (UTF-8) + 0x00 + seq                 empty
``checkpoints``     tree size                                    signed checkpoint note (UTF-8)
==================  ===========================================  =============================

Durability. Commits are synchronous (LMDB's default ``sync`` and ``metasync``): a
commit returns only after the data and the new meta page are on disk, so whatever a
caller was told is committed survives a crash or power loss. A batch is one write
transaction; when it fails (a refused entry, a full map, a disk error) the
transaction is aborted and nothing of it is visible, ever.

Map size. LMDB reserves address space for the whole map up front but the file grows
only as pages are used, so the default is a generous 1 TiB of virtual space. When
the map is full a write fails with a ``StoreError`` saying so; reopening with a
larger ``map_size`` continues where the log stopped.

Readers. Any number of processes may open the environment read-only while one
process writes (the node serves while ``export`` runs): readers take LMDB's reader
lock and see the last committed state, never a partial one.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import lmdb

from redlist.ledger.entry import TownConfig
from redlist.ledger.errors import IntegrityError, StoreError
from redlist.ledger.state import (
    Balance,
    KeyRecord,
    RuleRecord,
    TargetRecord,
    config_from_bytes,
    config_to_bytes,
)

#: The environment's directory inside a data directory.
ENV_DIR_NAME = "ledger.lmdb"
#: Address space reserved for the map when no size is given (virtual, not disk).
DEFAULT_MAP_SIZE = 1 << 40
#: Concurrent read transactions (open streams, proofs) across all processes.
MAX_READERS = 1024
#: Written into ``meta`` at creation; opening refuses an environment without it.
FORMAT_MARKER = b"redlist-ledger/1"

META_FORMAT = b"format"
META_ORIGIN = b"origin"
META_SIZE = b"size"
META_LAST_TIME = b"last_time"
META_LAST_LEAF_HASH = b"last_leaf_hash"
META_CHECKPOINT = b"checkpoint"
META_CONFIG = b"config"
META_LOG_VERIFIER_KEY = b"log_verifier_key"

TABLE_NAMES = (
    "meta",
    "leaves",
    "nodes",
    "ids",
    "keys",
    "rules",
    "balances",
    "targets",
    "account_entries",
    "checkpoints",
)

# LMDB's default key limit is 511 bytes; rule codes are the only unbounded key.
_MAX_PLAIN_RULE_KEY = 255
# 0xFF never occurs in UTF-8, so a hashed key can never equal a plain one.
_HASHED_RULE_PREFIX = b"\xff"
_INT_SIZE = 8


def int_key(value: int) -> bytes:
    """An integer as an 8-byte big-endian key (seq, tree size)."""
    return value.to_bytes(_INT_SIZE, "big")


def int_from_key(data: bytes) -> int:
    return int.from_bytes(data, "big")


def node_key(level: int, index: int) -> bytes:
    """The key of the perfect subtree ``(level, index)``: 1-byte level, 8-byte index."""
    return level.to_bytes(1, "big") + index.to_bytes(_INT_SIZE, "big")


def account_prefix(account: str) -> bytes:
    """The common prefix of every ``account_entries`` key of ``account``."""
    return account.encode("utf-8") + b"\x00"


def account_entry_key(account: str, seq: int) -> bytes:
    return account_prefix(account) + int_key(seq)


def rule_key(code: str) -> bytes:
    """The ``rules`` key of a rule code: its UTF-8 bytes, or 0xFF + SHA-256 when too long."""
    encoded = code.encode("utf-8")
    if len(encoded) <= _MAX_PLAIN_RULE_KEY:
        return encoded
    return _HASHED_RULE_PREFIX + hashlib.sha256(encoded).digest()


@dataclass(frozen=True)
class Tables:
    """Handles of the named tables of one open environment."""

    meta: lmdb._Database
    leaves: lmdb._Database
    nodes: lmdb._Database
    ids: lmdb._Database
    keys: lmdb._Database
    rules: lmdb._Database
    balances: lmdb._Database
    targets: lmdb._Database
    account_entries: lmdb._Database
    checkpoints: lmdb._Database


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
        if create and readonly:
            raise StoreError("a new ledger cannot be created read-only")
        if map_size is not None and map_size <= 0:
            raise StoreError(f"the map size must be a positive number of bytes, not {map_size}")
        if not create and not (path / "data.mdb").is_file():
            raise StoreError(f"{path} holds no ledger database (data.mdb is missing)")
        writer_lock = None if readonly else _lock_writer(path, create)
        try:
            env = lmdb.open(
                str(path),
                map_size=map_size or DEFAULT_MAP_SIZE,
                subdir=True,
                readonly=readonly,
                create=create,
                max_dbs=len(TABLE_NAMES),
                max_readers=MAX_READERS,
                lock=True,
                # Durable commits: never trade them away for speed.
                sync=True,
                metasync=True,
                map_async=False,
                writemap=False,
            )
        except lmdb.Error as exc:
            _unlock_writer(writer_lock)
            raise StoreError(f"cannot open the ledger database at {path}: {exc}") from None
        try:
            if not create:
                _refuse_truncated(env, path)
            handles = {name: env.open_db(name.encode(), create=create) for name in TABLE_NAMES}
        except lmdb.NotFoundError:
            env.close()
            _unlock_writer(writer_lock)
            raise StoreError(
                f"{path} is not a redlist ledger (a table is missing); was it made by "
                "'redlist-node init'?"
            ) from None
        except lmdb.Error as exc:
            env.close()
            _unlock_writer(writer_lock)
            raise StoreError(f"cannot open the tables of the ledger at {path}: {exc}") from None
        except BaseException:
            _unlock_writer(writer_lock)
            raise
        return cls(env, Tables(**handles), path, readonly, writer_lock)

    @property
    def map_size(self) -> int:
        """The map size in force, in bytes."""
        return self._env.info()["map_size"]

    @contextmanager
    def read(self) -> Iterator[StoreReader]:
        """A read transaction: a consistent snapshot of the last commit."""
        try:
            txn = self._env.begin(write=False)
        except lmdb.Error as exc:
            raise StoreError(f"cannot read the ledger: {exc}") from None
        try:
            yield StoreReader(txn, self._tables)
        except lmdb.Error as exc:
            raise StoreError(f"reading the ledger failed: {exc}") from None
        finally:
            _end(txn)

    @contextmanager
    def write(self) -> Iterator[StoreWriter]:
        """A write transaction, committed durably when the block ends normally.

        On any exception the transaction is aborted, so nothing of it is written.
        LMDB failures leave as ``StoreError``; a full map says so and gives the size.
        """
        if self.readonly:
            raise StoreError("this ledger was opened read-only; it cannot be written")
        try:
            txn = self._env.begin(write=True)
        except lmdb.Error as exc:
            raise StoreError(f"cannot write to the ledger: {exc}") from None
        try:
            yield StoreWriter(txn, self._tables)
            txn.commit()
        except lmdb.MapFullError:
            _end(txn)
            raise StoreError(
                f"the ledger's storage is full (map size {self.map_size} bytes); nothing of "
                "this write was stored. Reopen the ledger with a larger map size."
            ) from None
        except lmdb.Error as exc:
            _end(txn)
            raise StoreError(f"writing to the ledger failed, nothing was stored: {exc}") from None
        except BaseException:
            _end(txn)
            raise

    def close(self) -> None:
        """Close the environment; open transactions and iterators become invalid."""
        self._env.close()
        _unlock_writer(self._writer_lock)
        self._writer_lock = None


#: The file a writable store holds an exclusive ``flock`` on for as long as it is open.
WRITER_LOCK_NAME = "writer.lock"


def _lock_writer(path: Path, create: bool) -> int:
    """Take the environment's writer lock, or refuse: one writing process per ledger.

    LMDB keeps the log consistent with two writing processes, but two nodes serving
    one directory would each believe it is the only one (each signs checkpoints, each
    caches the tree's head). The lock is released when the store closes or the process
    dies (the kernel drops ``flock`` locks with the descriptor), so kill -9 leaves none.
    """
    if create:
        path.mkdir(parents=True, exist_ok=True)
    lock_path = path / WRITER_LOCK_NAME
    try:
        descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot open the lock file {lock_path}: {exc.strerror}") from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise StoreError(
            f"the ledger at {path.parent} is already open for writing (a node serving it, "
            "or a command still running); stop it first, or use a read-only command such "
            "as export"
        ) from None
    except OSError as exc:
        os.close(descriptor)
        raise StoreError(f"cannot lock {lock_path}: {exc.strerror}") from None
    return descriptor


def _unlock_writer(descriptor: int | None) -> None:
    if descriptor is not None:
        os.close(descriptor)  # closing the descriptor releases the flock


def _refuse_truncated(env: lmdb.Environment, path: Path) -> None:
    """Refuse a data file shorter than the pages its own header says it holds.

    LMDB maps the file and trusts it: reading a page past a truncated end kills the
    process (SIGBUS) instead of raising, so the size is checked before any page is read.
    """
    needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    actual = (path / "data.mdb").stat().st_size
    if actual < needed:
        env.close()
        raise IntegrityError(
            f"the ledger database {path / 'data.mdb'} is {actual} bytes, shorter than the "
            f"{needed} bytes its own header records: it was truncated or damaged. Restore it "
            "from a backup or a mirror."
        )


def _text(value: bytes, what: str) -> str:
    """A stored text; damaged bytes are an ``IntegrityError``, not a UnicodeDecodeError."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise IntegrityError(
            f"the ledger's {what} is not valid UTF-8 text: the database is damaged"
        ) from None


def _end(txn: lmdb.Transaction[bytes]) -> None:
    """Abort ``txn`` if it is still open (it may already be finished or invalidated)."""
    with suppress(lmdb.Error):
        txn.abort()


class StoreReader:
    """Typed read access to the tables within one transaction."""

    def __init__(self, txn: lmdb.Transaction[bytes], tables: Tables) -> None:
        self.txn = txn
        self.tables = tables

    # -- meta ---------------------------------------------------------------

    def meta(self, name: bytes) -> bytes | None:
        return self.txn.get(name, db=self.tables.meta)

    def require_meta(self, name: bytes) -> bytes:
        value = self.meta(name)
        if value is None:
            raise IntegrityError(
                f"the ledger's metadata lacks '{name.decode()}'; the database is damaged or "
                "was not created by redlist"
            )
        return value

    def format_marker(self) -> bytes | None:
        return self.meta(META_FORMAT)

    def origin(self) -> str:
        return _text(self.require_meta(META_ORIGIN), "origin")

    def size(self) -> int:
        """The number of leaves committed (0 before the genesis)."""
        value = self.meta(META_SIZE)
        return 0 if value is None else int_from_key(value)

    def last_time(self) -> int:
        value = self.meta(META_LAST_TIME)
        return 0 if value is None else int_from_key(value)

    def last_leaf_hash(self) -> bytes | None:
        """The leaf hash of the last leaf, or None for an empty log."""
        return self.meta(META_LAST_LEAF_HASH)

    def checkpoint(self) -> str:
        """The latest signed checkpoint note."""
        return _text(self.require_meta(META_CHECKPOINT), "latest checkpoint")

    def log_verifier_key(self) -> str:
        return _text(self.require_meta(META_LOG_VERIFIER_KEY), "log key")

    # -- log ----------------------------------------------------------------

    def leaf(self, seq: int) -> bytes | None:
        return self.txn.get(int_key(seq), db=self.tables.leaves)

    def iter_leaves(self, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        """``(seq, leaf bytes)`` for seq in ``[start, end)``, read one at a time."""
        if start >= end:
            return
        expected = start
        cursor = self.txn.cursor(db=self.tables.leaves)
        if not cursor.set_key(int_key(start)):
            raise IntegrityError(f"leaf {start} is missing from the store", start)
        for key, value in cursor.iternext():
            seq = int_from_key(key)
            if seq != expected:
                raise IntegrityError(f"leaf {expected} is missing from the store", expected)
            yield seq, value
            expected += 1
            if expected == end:
                return
        raise IntegrityError(f"leaf {expected} is missing from the store", expected)

    def checkpoint_at(self, size: int) -> str | None:
        value = self.txn.get(int_key(size), db=self.tables.checkpoints)
        return None if value is None else _text(value, f"checkpoint for size {size}")

    def nodes(self) -> LmdbNodeReader:
        return LmdbNodeReader(self.txn, self.tables)

    def state(self) -> LmdbState:
        return LmdbState(self.txn, self.tables)

    # -- accounts -----------------------------------------------------------

    def account_seqs(self, account: str, start: int = 0) -> Iterator[int]:
        """The seqs of entries touching ``account`` from ``start`` on, in increasing order."""
        prefix = account_prefix(account)
        cursor = self.txn.cursor(db=self.tables.account_entries)
        if not cursor.set_range(prefix + int_key(start)):
            return
        for key in cursor.iternext(values=False):
            if not key.startswith(prefix) or len(key) != len(prefix) + _INT_SIZE:
                return
            yield int_from_key(key[len(prefix) :])

    def latest_account_seqs(self, account: str, limit: int) -> tuple[list[int], bool]:
        """The last ``limit`` seqs touching ``account`` (oldest first) and whether more exist."""
        prefix = account_prefix(account)
        cursor = self.txn.cursor(db=self.tables.account_entries)
        # 0x01 sorts right after the 0x00 separator: the first key past this account.
        if cursor.set_range(account.encode("utf-8") + b"\x01"):
            positioned = cursor.prev()
        else:
            positioned = cursor.last()
        newest_first: list[int] = []
        while positioned:
            key = cursor.key()
            if not key.startswith(prefix) or len(key) != len(prefix) + _INT_SIZE:
                break
            if len(newest_first) == limit:
                return newest_first[::-1], True
            newest_first.append(int_from_key(key[len(prefix) :]))
            positioned = cursor.prev()
        return newest_first[::-1], False


class StoreWriter(StoreReader):
    """Typed write access within one write transaction."""

    def put_meta(self, name: bytes, value: bytes) -> None:
        self.txn.put(name, value, db=self.tables.meta)

    def put_leaf(self, seq: int, leaf: bytes) -> None:
        # Leaves only ever go at the end; refusing to overwrite guards that invariant.
        if not self.txn.put(
            int_key(seq), leaf, overwrite=False, append=True, db=self.tables.leaves
        ):
            raise IntegrityError(f"leaf {seq} is already stored or out of order", seq)

    def put_node(self, level: int, index: int, node_hash: bytes) -> None:
        self.txn.put(node_key(level, index), node_hash, db=self.tables.nodes)

    def put_checkpoint(self, size: int, checkpoint: str) -> None:
        self.txn.put(int_key(size), checkpoint.encode("utf-8"), db=self.tables.checkpoints)

    def set_head(
        self, *, size: int, last_time: int, last_leaf_hash: bytes, checkpoint: str
    ) -> None:
        """Record the log's new size, its last leaf and its latest checkpoint."""
        self.put_meta(META_SIZE, int_key(size))
        self.put_meta(META_LAST_TIME, int_key(last_time))
        self.put_meta(META_LAST_LEAF_HASH, last_leaf_hash)
        self.put_meta(META_CHECKPOINT, checkpoint.encode("utf-8"))


class LmdbNodeReader:
    """``merkle.NodeReader`` over the ``nodes`` table of one transaction."""

    def __init__(self, txn: lmdb.Transaction[bytes], tables: Tables) -> None:
        self._txn = txn
        self._nodes = tables.nodes

    def node(self, level: int, index: int) -> bytes:
        value = self._txn.get(node_key(level, index), db=self._nodes)
        if value is None:
            raise IntegrityError(
                f"the stored Merkle tree lacks the subtree of {1 << level} leaves starting at "
                f"leaf {index << level}"
            )
        return value


class LmdbState:
    """``LedgerState`` over the tables of one transaction.

    Over a write transaction it reads its own uncommitted writes, so the entries of
    a batch see each other; an aborted transaction takes all of them back. Over a
    read transaction it serves reads only.

    Records read or written are remembered for the life of the object (one
    transaction, so at most what one batch touches): a batch of awards under one
    rule by one signer decodes the rule and the key once. Every write still goes
    straight to the transaction. Create one per transaction and let no one else
    write the same tables in it.
    """

    def __init__(self, txn: lmdb.Transaction[bytes], tables: Tables) -> None:
        self._txn = txn
        self._tables = tables
        self._config: TownConfig | None = None
        self._keys: dict[bytes, KeyRecord | None] = {}
        self._rules: dict[str, RuleRecord | None] = {}
        self._balances: dict[str, Balance] = {}

    def config(self) -> TownConfig | None:
        if self._config is None:
            data = self._txn.get(META_CONFIG, db=self._tables.meta)
            if data is not None:
                self._config = config_from_bytes(data)
        return self._config

    def set_config(self, config: TownConfig) -> None:
        self._txn.put(META_CONFIG, config_to_bytes(config), db=self._tables.meta)
        self._config = config

    def key(self, key_id: bytes) -> KeyRecord | None:
        if key_id not in self._keys:
            data = self._txn.get(key_id, db=self._tables.keys)
            self._keys[key_id] = None if data is None else KeyRecord.from_bytes(data)
        return self._keys[key_id]

    def put_key(self, record: KeyRecord) -> None:
        self._txn.put(record.key_id, record.to_bytes(), db=self._tables.keys)
        self._keys[record.key_id] = record

    def rule(self, code: str) -> RuleRecord | None:
        if code not in self._rules:
            data = self._txn.get(rule_key(code), db=self._tables.rules)
            self._rules[code] = None if data is None else RuleRecord.from_bytes(data)
        return self._rules[code]

    def put_rule(self, record: RuleRecord) -> None:
        self._txn.put(rule_key(record.code), record.to_bytes(), db=self._tables.rules)
        self._rules[record.code] = record

    def balance(self, account: str) -> Balance:
        balance = self._balances.get(account)
        if balance is None:
            data = self._txn.get(account.encode("utf-8"), db=self._tables.balances)
            balance = _ZERO_BALANCE if data is None else Balance.from_bytes(data)
            self._balances[account] = balance
        return balance

    def put_balance(self, account: str, balance: Balance) -> None:
        self._txn.put(account.encode("utf-8"), balance.to_bytes(), db=self._tables.balances)
        self._balances[account] = balance

    def target(self, seq: int) -> TargetRecord | None:
        data = self._txn.get(int_key(seq), db=self._tables.targets)
        return None if data is None else TargetRecord.from_bytes(data)

    def put_target(self, seq: int, record: TargetRecord) -> None:
        self._txn.put(int_key(seq), record.to_bytes(), db=self._tables.targets)

    def entry_seq(self, entry_id: bytes) -> int | None:
        data = self._txn.get(entry_id, db=self._tables.ids)
        return None if data is None else int_from_key(data)

    def put_entry_id(self, entry_id: bytes, seq: int) -> None:
        self._txn.put(entry_id, int_key(seq), db=self._tables.ids)

    def link_account(self, account: str, seq: int) -> None:
        self._txn.put(account_entry_key(account, seq), b"", db=self._tables.account_entries)


_ZERO_BALANCE = Balance()
