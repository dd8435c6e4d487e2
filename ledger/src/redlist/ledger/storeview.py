"""The store's read view: every read of the ledger, as methods on one consistent snapshot.

A ``StoreReader`` wraps one LMDB transaction (``LmdbStore.read`` makes it; a
``StoreWriter`` is one too, over its write transaction). Nothing outside the store
sees the transaction or a key: callers ask for seqs, accounts, rule codes and
tree positions and get values or the exact stored bytes back.

Two kinds of reads:

* what the log, the node and the export need: the head (size, last leaf,
  checkpoint), leaves, Merkle nodes, the town configuration, an account's
  balance, the seqs of its entries and their target records;
* records as stored, for the integrity checks (``tailcheck``, ``fullcheck``):
  each table walked in key order with its keys decoded by the store and its values
  as raw bytes for the check to judge (a state record as a :class:`StoredRecord`:
  its payload, the seq its seal names, and whether the seal matches). A key of the
  wrong shape, which only a damaged store holds, raises ``IntegrityError`` naming
  the table and the key.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields

import lmdb

from redlist.ledger.entry import TownConfig
from redlist.ledger.errors import FormatError, IntegrityError
from redlist.ledger.idindex import SharedIdMemory
from redlist.ledger.sealmemo import SealedMemo
from redlist.ledger.state import Balance, RuleRecord, TargetRecord, month_count_from_bytes
from redlist.ledger.storelayout import (
    META_CHECKPOINT,
    META_CONFIG,
    META_FORMAT,
    META_ID_RUNS,
    META_LAST_LEAF_HASH,
    META_LAST_TIME,
    META_LOG_VERIFIER_KEY,
    META_NAMES,
    META_ORIGIN,
    META_SIZE,
    AccountLink,
    Tables,
    account_links_from_bytes,
    int_from_key,
    int_key,
    is_hashed_rule_key,
    month_count_key_parts,
    node_from_key,
    node_key,
    rule_key,
    seq_from_key,
    unseal,
)
from redlist.ledger.storelists import AccountLists
from redlist.ledger.storestate import LmdbState
from redlist.ledger.storetree import LmdbNodeReader


@dataclass(frozen=True)
class StoredHead:
    """The metadata a log is opened with, as stored: numbers decoded, texts and hashes
    as raw bytes for the caller to judge."""

    origin: bytes
    log_verifier_key: bytes
    size: int
    last_time: int
    last_leaf_hash: bytes
    checkpoint: bytes


@dataclass(frozen=True)
class StoredRecord:
    """A sealed state record as stored: its payload and the seq of the entry that last
    changed it, both as its seal names them; ``sound`` is False when the seal does
    not match (payload and seq are then empty and -1: nothing in it can be trusted)."""

    payload: bytes
    seq: int
    sound: bool

    @classmethod
    def of(cls, table: str, key: bytes, value: bytes) -> StoredRecord:
        opened = unseal(table, key, value)
        if opened is None:
            return cls(b"", -1, False)
        return cls(opened[0], opened[1], True)


@dataclass(frozen=True)
class TableCounts:
    """The number of records in each table."""

    meta: int
    leaves: int
    nodes: int
    ids: int
    keys: int
    rules: int
    balances: int
    targets: int
    month_counts: int
    checkpoints: int
    account_links: int
    account_heads: int
    id_runs: int


class StoreReader:
    """Typed read access to the tables within one transaction (a consistent snapshot)."""

    #: Whether the transaction writes (``StoreWriter``): the entry-id index uses it.
    _writing = False

    def __init__(
        self,
        txn: lmdb.Transaction[bytes],
        tables: Tables,
        shared_ids: SharedIdMemory | None = None,
        memo: SealedMemo | None = None,
    ) -> None:
        self._txn = txn
        self._tables = tables
        self._shared_ids = shared_ids
        self._memo = memo
        self._view: LmdbState | None = None

    # -- the head -------------------------------------------------------------

    def _meta(self, name: bytes) -> bytes | None:
        return self._txn.get(name, db=self._tables.meta)

    def _require_meta(self, name: bytes) -> bytes:
        value = self._meta(name)
        if value is None:
            raise IntegrityError(
                f"the ledger's metadata lacks '{name.decode()}'; the database is damaged or "
                "was not created by redlist"
            )
        return value

    def format_marker(self) -> bytes | None:
        return self._meta(META_FORMAT)

    def origin(self) -> str:
        return _text(self._require_meta(META_ORIGIN), "origin")

    def size(self) -> int:
        """The number of leaves committed (0 before the genesis)."""
        value = self._meta(META_SIZE)
        return 0 if value is None else int_from_key(value)

    def last_time(self) -> int:
        value = self._meta(META_LAST_TIME)
        return 0 if value is None else int_from_key(value)

    def last_leaf_hash(self) -> bytes | None:
        """The leaf hash of the last leaf, or None for an empty log."""
        return self._meta(META_LAST_LEAF_HASH)

    def checkpoint(self) -> str:
        """The latest signed checkpoint note."""
        return _text(self._require_meta(META_CHECKPOINT), "latest checkpoint")

    def log_verifier_key(self) -> str:
        return _text(self._require_meta(META_LOG_VERIFIER_KEY), "log key")

    # -- the log --------------------------------------------------------------

    def leaf(self, seq: int) -> bytes | None:
        return self._txn.get(int_key(seq), db=self._tables.leaves)

    def iter_leaves(self, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        """``(seq, leaf bytes)`` for seq in ``[start, end)``, read one at a time."""
        if start >= end:
            return
        expected = start
        cursor = self._txn.cursor(db=self._tables.leaves)
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
        value = self._txn.get(int_key(size), db=self._tables.checkpoints)
        return None if value is None else _text(value, f"checkpoint for size {size}")

    def checkpoint_step(self, after: int, at_most: int) -> tuple[int, str] | None:
        """The checkpoint of the largest tree size in ``(after, at_most]``, else the one
        of the smallest size above ``after``; None when none is above ``after``.

        How a mirror that holds ``after`` entries catches up in steps of at most about
        ``at_most - after`` entries: the log has a checkpoint at every size it committed.
        """
        cursor = self._txn.cursor(db=self._tables.checkpoints)
        if at_most > after:
            beyond = min(at_most, (1 << 64) - 2) + 1
            found = cursor.set_range(int_key(beyond))
            found = cursor.prev() if found else cursor.last()
            if found and int_from_key(cursor.key()) > after:
                return int_from_key(cursor.key()), _text(cursor.value(), "checkpoint")
        if not cursor.set_range(int_key(min(after, (1 << 64) - 2) + 1)):
            return None
        return int_from_key(cursor.key()), _text(cursor.value(), "checkpoint")

    def nodes(self) -> LmdbNodeReader:
        return LmdbNodeReader(self._txn, self._tables)

    def state(self) -> LmdbState:
        """The points semantics' view of this transaction (``LedgerState``)."""
        return LmdbState(
            self._txn, self._tables, self._shared_ids, writing=self._writing, memo=self._memo
        )

    # -- the points state and accounts ----------------------------------------

    def _state_view(self) -> LmdbState:
        if self._view is None:
            self._view = self.state()
        return self._view

    def config(self) -> TownConfig:
        """The town's configuration from the genesis."""
        config = self._state_view().config()
        if config is None:
            raise IntegrityError("the log's town configuration is missing from the store")
        return config

    def balance(self, account: str) -> Balance:
        """The running totals of ``account`` (zero for an account no entry mentions)."""
        return self._state_view().balance(account)

    def target(self, seq: int) -> TargetRecord | None:
        """What a later objection or reversal needs of award or redemption ``seq``."""
        return self._state_view().target(seq)

    def account_seqs(self, account: str, start: int = 0) -> Iterator[int]:
        """The seqs of entries touching ``account`` from ``start`` on, in increasing order
        (walked back from the account's latest entry: ``storelists``, ADR 0043)."""
        return self._lists().seqs(account, start)

    def account_link(self, account: str, seq: int) -> AccountLink | None:
        """``account``'s link in entry ``seq`` (naming the account's previous linked
        entry), or None when entry ``seq`` links no such account. A record that is
        damaged raises ``StateDamageError``."""
        return self._lists().link(account, seq)

    def _lists(self) -> AccountLists:
        return AccountLists(self._txn, self._tables, self._state_view())

    # -- records as stored, for the integrity checks --------------------------

    def head(self) -> StoredHead:
        """The head's records; ``IntegrityError`` when one is missing or a number is not
        8 bytes."""
        return StoredHead(
            origin=self._head_record(META_ORIGIN),
            log_verifier_key=self._head_record(META_LOG_VERIFIER_KEY),
            size=self._head_number(META_SIZE, "size"),
            last_time=self._head_number(META_LAST_TIME, "last time"),
            last_leaf_hash=self._head_record(META_LAST_LEAF_HASH),
            checkpoint=self._head_record(META_CHECKPOINT),
        )

    def _head_record(self, name: bytes) -> bytes:
        value = self._meta(name)
        if value is None:
            raise IntegrityError(f"the ledger's metadata lacks its '{name.decode()}' record")
        return value

    def _head_number(self, name: bytes, what: str) -> int:
        value = seq_from_key(self._head_record(name))
        if value is None:
            raise IntegrityError(f"the {what} in the metadata is not an 8-byte number")
        return value

    def unknown_meta(self) -> tuple[bytes, ...]:
        """The names of metadata records the store never writes."""
        names = self._txn.cursor(db=self._tables.meta).iternext(values=False)
        return tuple(name for name in names if name not in META_NAMES)

    def config_record(self) -> StoredRecord | None:
        """The stored town configuration, as sealed."""
        value = self._meta(META_CONFIG)
        return None if value is None else StoredRecord.of("meta", META_CONFIG, value)

    def counts(self) -> TableCounts:
        """How many records each table holds (no table is read for this)."""
        stat = self._txn.stat
        return TableCounts(
            **{
                field.name: stat(getattr(self._tables, field.name))["entries"]
                for field in fields(TableCounts)
            }
        )

    def stored_leaves(self) -> Iterator[tuple[int, bytes]]:
        """Every stored leaf, ``(seq, bytes)`` in seq order, gaps and extras included."""
        for key, value in self._txn.cursor(db=self._tables.leaves):
            yield _seq("leaves", key), value

    def leaf_seqs(self, start: int = 0) -> Iterator[int]:
        """The seqs under which leaves are stored, from ``start`` on, in order."""
        cursor = self._txn.cursor(db=self._tables.leaves)
        if not cursor.set_range(int_key(start)):
            return
        for key in cursor.iternext(values=False):
            yield _seq("leaves", key)

    def last_leaf_seq(self) -> int | None:
        """The highest seq under which a leaf is stored (None: no leaf at all)."""
        cursor = self._txn.cursor(db=self._tables.leaves)
        return _seq("leaves", cursor.key()) if cursor.last() else None

    def stored_node(self, level: int, index: int) -> bytes | None:
        """The stored hash of the perfect subtree ``(level, index)``, as stored."""
        return self._txn.get(node_key(level, index), db=self._tables.nodes)

    def stored_nodes(self) -> Iterator[tuple[int, int, bytes]]:
        """Every stored Merkle node, ``(level, index, hash)``, by level then index."""
        for key, value in self._txn.cursor(db=self._tables.nodes):
            position = node_from_key(key)
            if position is None:
                raise IntegrityError(
                    f"the Merkle tree holds a node under the malformed key {key.hex()}"
                )
            yield position[0], position[1], value

    def checkpoint_record(self, size: int) -> bytes | None:
        """The checkpoint stored for tree size ``size``, as stored."""
        return self._txn.get(int_key(size), db=self._tables.checkpoints)

    def stored_checkpoints(self) -> Iterator[tuple[int, bytes]]:
        """Every stored checkpoint, ``(tree size, note bytes)`` by size."""
        for key, value in self._txn.cursor(db=self._tables.checkpoints):
            yield _seq("checkpoints", key), value

    def last_checkpoint_size(self) -> int | None:
        """The largest tree size a checkpoint is stored for."""
        cursor = self._txn.cursor(db=self._tables.checkpoints)
        return _seq("checkpoints", cursor.key()) if cursor.last() else None

    def indexed_seq(self, entry_id: bytes) -> int | None:
        """The seq the entry-id index gives for ``entry_id`` (``StateDamageError`` when its
        record or the index's run list is damaged)."""
        return self._state_view().entry_seq(entry_id)

    def id_runs_record(self) -> StoredRecord | None:
        """The entry-id index's run list (``idruns.RunList`` bytes), as sealed."""
        value = self._meta(META_ID_RUNS)
        return None if value is None else StoredRecord.of("meta", META_ID_RUNS, value)

    def id_record(self, entry_id: bytes, run: int | None) -> StoredRecord | None:
        """The entry-id index's record of ``entry_id`` in run ``run`` (None: level 0)."""
        value = self._state_view().id_index().record(entry_id, run)
        return None if value is None else StoredRecord.of("ids", entry_id, value)

    def stored_ids(self, run: int | None) -> Iterator[tuple[bytes, StoredRecord]]:
        """``(id, record)`` of every id in run ``run`` (None: level 0), in key order."""
        for entry_id, value in self._state_view().id_index().records(run):
            yield entry_id, StoredRecord.of("ids", entry_id, value)

    def stored_account_links(self) -> Iterator[tuple[int, StoredRecord]]:
        """Every entry's record of the accounts it links, ``(seq, record)`` in seq order
        (``account_links_of`` decodes a record's payload)."""
        for key, value in self._txn.cursor(db=self._tables.account_links):
            yield _seq("account_links", key), StoredRecord.of("account_links", key, value)

    def stored_account_heads(self) -> Iterator[tuple[str, StoredRecord]]:
        """Every account's head record, ``(account, record)``: its payload the count of
        the account's links (8 bytes), its seal's seq the latest linked entry."""
        for key, value in self._txn.cursor(db=self._tables.account_heads):
            yield _account("account_heads", key), StoredRecord.of("account_heads", key, value)

    def stored_keys(self) -> Iterator[tuple[bytes, StoredRecord]]:
        """Every staff key record, ``(key id, record)``."""
        for key, value in self._txn.cursor(db=self._tables.keys):
            yield key, StoredRecord.of("keys", key, value)

    def stored_rules(self) -> Iterator[tuple[str, StoredRecord]]:
        """Every rule record, ``(rule code, record)``.

        A long code's key is a hash, so its code is read from the record, which must
        then be sound, decode and hash back to the key.
        """
        for key, value in self._txn.cursor(db=self._tables.rules):
            record = StoredRecord.of("rules", key, value)
            code: str | None = None
            if is_hashed_rule_key(key):
                try:
                    if not record.sound:
                        raise FormatError("the record's seal does not match")
                    code = RuleRecord.from_bytes(record.payload).code
                except FormatError:
                    raise IntegrityError(
                        f"the rules table holds a damaged record under the hashed key {key.hex()}"
                    ) from None
            else:
                try:
                    code = key.decode("utf-8")
                except UnicodeDecodeError:
                    code = None
            if not isinstance(code, str) or rule_key(code) != key:
                raise IntegrityError(
                    f"the rules table holds a record under the malformed key {key.hex()}"
                )
            yield code, record

    def stored_balances(self) -> Iterator[tuple[str, StoredRecord]]:
        """Every balance record, ``(account, record)``."""
        for key, value in self._txn.cursor(db=self._tables.balances):
            yield _account("balances", key), StoredRecord.of("balances", key, value)

    def stored_targets(self) -> Iterator[tuple[int, StoredRecord]]:
        """Every award and redemption record, ``(seq, record)``."""
        for key, value in self._txn.cursor(db=self._tables.targets):
            yield _seq("targets", key), StoredRecord.of("targets", key, value)

    def stored_month_counts(self) -> Iterator[tuple[tuple[str, str, str], StoredRecord]]:
        """Every monthly count of the rules' caps, ``((account, rule, month), record)``.

        The rule code is read from the key, or for a long code (a hashed key) from the
        record, which must then be sound, decode and hash back to the key.
        """
        for key, value in self._txn.cursor(db=self._tables.month_counts):
            record = StoredRecord.of("month_counts", key, value)
            parts = month_count_key_parts(key)
            code: str | None = None
            if parts is not None:
                account, month, rule = parts
                try:
                    if is_hashed_rule_key(rule):
                        if not record.sound:
                            raise FormatError("the record's seal does not match")
                        code = month_count_from_bytes(record.payload)[0]
                    else:
                        code = rule.decode("utf-8")
                except (FormatError, UnicodeDecodeError):
                    raise IntegrityError(
                        f"the month_counts table holds a damaged record under the key {key.hex()}"
                    ) from None
            if parts is None or code is None or rule_key(code) != parts[2]:
                raise IntegrityError(
                    f"the month_counts table holds a record under the malformed key {key.hex()}"
                )
            yield (account, code, month), record


def account_links_of(seq: int, record: StoredRecord) -> tuple[AccountLink, ...] | None:
    """The links an ``account_links`` record of entry ``seq`` holds, or None unless it
    is sound, sealed with ``seq`` and decodes."""
    if not record.sound or record.seq != seq:
        return None
    return account_links_from_bytes(seq, record.payload)


def _seq(table: str, key: bytes) -> int:
    """The seq or tree size of an 8-byte key of ``table``."""
    seq = seq_from_key(key)
    if seq is None:
        raise IntegrityError(
            f"the {table} table holds a record under the malformed key {key.hex()}"
        )
    return seq


def _account(table: str, key: bytes) -> str:
    """The account id of a key of ``table`` (keyed by account)."""
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        raise IntegrityError(
            f"the {table} table holds a record under the malformed key {key.hex()}"
        ) from None


def _text(value: bytes, what: str) -> str:
    """A stored text; damaged bytes are an ``IntegrityError``, not a UnicodeDecodeError."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise IntegrityError(
            f"the ledger's {what} is not valid UTF-8 text: the database is damaged"
        ) from None
