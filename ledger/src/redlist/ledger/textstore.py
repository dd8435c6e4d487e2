"""Free texts beside the log: ``<data>/texts.lmdb/``, an LMDB environment of its own.

A body holds only commitments to its free texts (DESIGN 9.2, ``textcommit``); the texts
and their salts are personal data and live here, never in the log, so a mirror, a bundle
or a backup of the log carries none, and a text can be erased while the log stays whole.
Three tables:

===========  =====================================================  ==========================
table        key                                                    value
===========  =====================================================  ==========================
``texts``    entry id (16) ‖ field (ASCII) ‖ 0x00 ‖ commitment (32)  ``EntryText.to_bytes()``
``erased``   entry id (16) ‖ field (ASCII)                           erasure time, ms (8 bytes,
                                                                    big-endian): a tombstone
``meta``     ``scrub``                                              present while a scrub is
                                                                    unfinished
===========  =====================================================  ==========================

The commitment is part of the key: texts are stored before their entry is appended
(below), so a text sent with an envelope that is then refused, for an id the log already
holds, must never replace the text of the entry that is in the log. A reader asks for the
exact key of the commitment its entry holds; anything else under that entry id is
garbage, removed by :meth:`TextStore.remove` (the node does it for refused batches and,
at start, for texts of entries it never appended).

**Order of writes.** The node stores a batch's texts, synchronously flushed, *before* it
appends the batch. A crash in between leaves texts whose entry is not in the log: harmless
garbage, cleaned up at the next start. The reverse order could lose the text of an entry
the node had already acknowledged.

**Locking** as the register does (docs/adr/0025): ``<data>/texts.lock``, shared to read,
exclusive to write, waiting up to :data:`LOCK_WAIT_S`. The node holds it only while it
reads or writes, so ``redlist-node texts erase`` runs while the node serves.

**Erasure scrubs** with the register's mechanism (``registerfiles.scrub_environment``):
delete, write a tombstone, mark a scrub pending, then copy every live record into a fresh
environment and shred the old files. A tombstone also stops a resubmitted envelope from
bringing an erased text back. This module is part of the storage seam.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import lmdb

from redlist.ledger.errors import IntegrityError, StoreError, TextError
from redlist.ledger.formatv1 import ID_SIZE
from redlist.ledger.lmdbopen import open_tables
from redlist.ledger.registerfiles import (
    NEW_SUFFIX,
    lock_file,
    read_items,
    read_value,
    recover_scrub,
    scrub_environment,
    sibling,
)
from redlist.ledger.textcommit import ALL_TEXT_FIELDS, COMMITMENT_SIZE, EntryText

TEXTS_ENV_NAME = "texts.lmdb"
TEXTS_LOCK_NAME = "texts.lock"
#: Address space reserved (not disk used): a text is at most 16 KiB.
TEXTS_MAP_SIZE = 1 << 34
LOCK_WAIT_S = 30.0
_TEXTS = b"texts"
_ERASED = b"erased"
_META = b"meta"
_TABLES = (_TEXTS, _ERASED, _META)
_SCRUB_PENDING = b"scrub"
_TIME_BYTES = 8


@dataclass(frozen=True)
class StoredText:
    """The text of field ``field`` of the entry ``entry_id``."""

    entry_id: bytes
    field: str
    text: EntryText

    @property
    def key(self) -> bytes:
        return text_key(self.entry_id, self.field, self.text.commitment)


@dataclass(frozen=True)
class TextKey:
    """Where a text is kept: entry id, field and the commitment it answers."""

    entry_id: bytes
    field: str
    commitment: bytes

    def to_bytes(self) -> bytes:
        return text_key(self.entry_id, self.field, self.commitment)


def text_key(entry_id: bytes, field: str, commitment: bytes) -> bytes:
    return _field_key(entry_id, field) + b"\x00" + commitment


def _field_key(entry_id: bytes, field: str) -> bytes:
    return entry_id + field.encode("ascii")


def _parse_key(key: bytes) -> TextKey:
    entry_id, rest = key[:ID_SIZE], key[ID_SIZE:]
    field, _, commitment = rest.partition(b"\x00")
    name = field.decode("ascii", errors="replace")
    if (
        len(entry_id) != ID_SIZE
        or name not in ALL_TEXT_FIELDS
        or len(commitment) != COMMITMENT_SIZE
    ):
        raise IntegrityError(f"the text store is damaged: a key of {len(key)} bytes is not valid")
    return TextKey(entry_id, name, commitment)


class TextStore:
    """The free texts of one data directory. Open with :meth:`open`; close when done."""

    def __init__(self, data_dir: Path, lock: int, *, writable: bool) -> None:
        self.data_dir = data_dir
        self.path = data_dir / TEXTS_ENV_NAME
        self._lock = lock
        self._writable = writable
        self._env: lmdb.Environment | None = None
        self._tables: dict[bytes, lmdb._Database] = {}

    @classmethod
    def open(cls, data_dir: Path, *, write: bool = False, wait_s: float = LOCK_WAIT_S) -> TextStore:
        """Open the texts of ``data_dir``: to read (shared), or to write (exclusive,
        creating the store when absent and finishing an interrupted scrub). A store that
        does not exist reads as empty."""
        if not data_dir.is_dir():
            raise StoreError(f"the data directory {data_dir} does not exist")
        lock = lock_file(
            data_dir / TEXTS_LOCK_NAME, exclusive=write, wait_s=wait_s, what="the free texts"
        )
        store = cls(data_dir, lock, writable=write)
        try:
            if write:
                recover_scrub(store.path)
                store._open_env(store.path, create=True)
                if store._get(_META, _SCRUB_PENDING) is not None:
                    store._scrub()
            else:
                for candidate in (store.path, sibling(store.path, NEW_SUFFIX)):
                    if (candidate / "data.mdb").is_file():
                        store._open_env(candidate, create=False)
                        break
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # ---- reading -------------------------------------------------------------------

    def get(self, entry_id: bytes, field: str, commitment: bytes) -> EntryText | None:
        """The text of ``field`` of entry ``entry_id`` that answers ``commitment``; None
        when the store holds none (never held, or erased). A stored text that does not
        match its commitment is damage (``IntegrityError``)."""
        value = self._get(_TEXTS, text_key(entry_id, field, commitment))
        if value is None:
            return None
        try:
            text = EntryText.from_bytes(value)
        except TextError as error:
            raise IntegrityError(f"the text store is damaged: {error}") from None
        if text.commitment != commitment:
            raise IntegrityError(
                f"the text store is damaged: the '{field}' text of entry id "
                f"{entry_id.hex()} does not match its commitment"
            )
        return text

    def erased_on(self, entry_id: bytes, field: str) -> int | None:
        """When the text of ``field`` of ``entry_id`` was erased (ms), or None."""
        value = self._get(_ERASED, _field_key(entry_id, field))
        return None if value is None else int.from_bytes(value, "big")

    def stored_keys(self) -> list[TextKey]:
        """Every stored text's key, in key order."""
        return [_parse_key(key) for key, _ in self._items(_TEXTS)]

    def texts(self) -> Iterator[tuple[TextKey, EntryText]]:
        """Every stored text with its key, in key order."""
        for key, value in self._items(_TEXTS):
            yield _parse_key(key), EntryText.from_bytes(value)

    # ---- writing -------------------------------------------------------------------

    def put(self, records: Sequence[StoredText], *, only_new: bool = False) -> list[TextKey]:
        """Store ``records`` in one synchronously flushed transaction; the keys written
        (with ``only_new``, only those the store did not hold already).

        A text whose field was erased is not stored again (its tombstone stays)."""
        env = self._writer()
        written: list[TextKey] = []
        try:
            with env.begin(write=True) as txn:
                for record in records:
                    field_key = _field_key(record.entry_id, record.field)
                    if txn.get(field_key, db=self._tables[_ERASED]) is not None:
                        continue
                    created = txn.put(
                        record.key, record.text.to_bytes(), db=self._tables[_TEXTS], overwrite=False
                    )
                    if created or not only_new:
                        written.append(
                            TextKey(record.entry_id, record.field, record.text.commitment)
                        )
        except lmdb.Error as exc:
            raise StoreError(
                f"cannot store the texts in {self.path}, nothing was stored: {exc}"
            ) from None
        return written

    def remove(self, keys: Iterable[TextKey]) -> int:
        """Delete the texts at ``keys`` (texts whose entry never entered the log); no
        tombstone, no scrub. Returns how many were there."""
        env = self._writer()
        removed = 0
        try:
            with env.begin(write=True) as txn:
                for key in keys:
                    removed += bool(txn.delete(key.to_bytes(), db=self._tables[_TEXTS]))
        except lmdb.Error as exc:
            raise StoreError(f"cannot write the texts in {self.path}: {exc}") from None
        return removed

    def erase(self, fields: Iterable[tuple[bytes, str]], now_ms: int) -> int:
        """Erase for good the texts of ``fields`` (entry id, field name), keeping
        tombstones; returns how many texts were deleted. Returns after the scrub: no file
        of the store holds them any more."""
        env = self._writer()
        erased = 0
        try:
            with env.begin(write=True) as txn:
                for entry_id, field in fields:
                    prefix = _field_key(entry_id, field) + b"\x00"
                    found = list(_keys_from(txn.cursor(db=self._tables[_TEXTS]), prefix))
                    for key in found:
                        txn.delete(key, db=self._tables[_TEXTS])
                    erased += len(found)
                    txn.put(
                        _field_key(entry_id, field),
                        now_ms.to_bytes(_TIME_BYTES, "big"),
                        db=self._tables[_ERASED],
                    )
                txn.put(_SCRUB_PENDING, b"1", db=self._tables[_META])
        except lmdb.Error as exc:
            raise StoreError(f"cannot write the texts in {self.path}: {exc}") from None
        self._scrub()
        return erased

    # ---- the environment -----------------------------------------------------------

    def _open_env(self, path: Path, *, create: bool) -> None:
        self._env, self._tables = open_tables(
            path,
            tables=_TABLES,
            map_size=TEXTS_MAP_SIZE,
            create=create,
            what="the texts",
            personal=True,
        )

    def _writer(self) -> lmdb.Environment:
        if not self._writable or self._env is None:
            raise StoreError(f"the texts at {self.path} were opened to read, not to write")
        return self._env

    def _get(self, table: bytes, key: bytes) -> bytes | None:
        if self._env is None:
            return None
        return read_value(self._env, self._tables[table], key, f"the texts at {self.path}")

    def _items(self, table: bytes) -> Iterator[tuple[bytes, bytes]]:
        if self._env is None:
            return
        pairs = read_items(self._env, self._tables[table], f"the texts at {self.path}")
        yield from pairs

    def _scrub(self) -> None:
        env = self._writer()
        self._env = None
        scrub_environment(
            env,
            self._tables,
            self.path,
            map_size=TEXTS_MAP_SIZE,
            keep=lambda table, key: not (table == _META and key == _SCRUB_PENDING),
        )
        self._open_env(self.path, create=True)


def _keys_from(cursor: lmdb.Cursor, prefix: bytes) -> Iterator[bytes]:
    """The keys of ``cursor``'s table that start with ``prefix``, in order."""
    if not cursor.set_range(prefix):
        return
    for key in cursor.iternext(keys=True, values=False):
        if not bytes(key).startswith(prefix):
            return
        yield bytes(key)


__all__ = [
    "TEXTS_ENV_NAME",
    "StoredText",
    "TextKey",
    "TextStore",
]
