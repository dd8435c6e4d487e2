"""The review queue on disk: ``<data>/review.lmdb/``, an LMDB environment of its own.

Proposals waiting for council signatures (``review``) are not entries: they live beside
the log, never in it, as the register and the texts do, and survive a restart. Two
tables:

==========  ====================================  =====================================
table       key                                   value
==========  ====================================  =====================================
``items``   item number (8 bytes, big-endian)     ``PendingItem.to_bytes()``
``meta``    ``next``                              the next item number (8 bytes)
==========  ====================================  =====================================

Every change is one synchronously flushed write transaction, and :meth:`ReviewStore.update`
reads, decides and writes an item inside one, so two reviewers' approvals are applied
one after the other, never over each other. This module is part of the storage seam.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

import lmdb

from redlist.ledger.errors import FormatError, IntegrityError, StoreError
from redlist.ledger.lmdbopen import open_tables
from redlist.ledger.review import PendingItem

REVIEW_ENV_NAME = "review.lmdb"
#: Address space reserved (not disk used): an item is at most a 64 KiB envelope plus texts.
REVIEW_MAP_SIZE = 1 << 32
_ITEMS = b"items"
_META = b"meta"
_TABLES = (_ITEMS, _META)
_NEXT = b"next"

_T = TypeVar("_T")


class ReviewStore:
    """The review queue of one data directory; open with :meth:`open`, close when done."""

    def __init__(self, path: Path, env: lmdb.Environment, tables: dict[bytes, lmdb._Database]):
        self.path = path
        self._env: lmdb.Environment | None = env
        self._tables = tables

    @classmethod
    def open(cls, data_dir: Path) -> ReviewStore:
        """Open (creating when absent) the queue of ``data_dir``."""
        if not data_dir.is_dir():
            raise StoreError(f"the data directory {data_dir} does not exist")
        path = data_dir / REVIEW_ENV_NAME
        env, tables = open_tables(
            path,
            tables=_TABLES,
            map_size=REVIEW_MAP_SIZE,
            create=True,
            what="the review queue",
            personal=True,
        )
        return cls(path, env, tables)

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None

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

    def get(self, number: int) -> PendingItem | None:
        env = self._opened()
        try:
            with env.begin(db=self._tables[_ITEMS]) as txn:
                value = txn.get(_number_key(number))
                return None if value is None else _item(bytes(value))
        except lmdb.Error as exc:
            raise StoreError(f"cannot read the review queue at {self.path}: {exc}") from None

    def items(self) -> list[PendingItem]:
        """Every item, open and closed, in number order."""
        env = self._opened()
        try:
            with env.begin(db=self._tables[_ITEMS]) as txn:
                return [_item(bytes(value)) for _key, value in txn.cursor()]
        except lmdb.Error as exc:
            raise StoreError(f"cannot read the review queue at {self.path}: {exc}") from None

    # ---- writing -------------------------------------------------------------------

    def add(self, make: Callable[[int, list[PendingItem]], PendingItem]) -> PendingItem:
        """Store the item ``make(number, items)`` returns, given the next free number and
        every item held; ``make`` may raise to refuse (nothing is written)."""

        def change(txn: lmdb.Transaction[bytes]) -> PendingItem:
            raw = txn.get(_NEXT, db=self._tables[_META])
            number = 1 if raw is None else int.from_bytes(raw, "big")
            held = [_item(bytes(value)) for _key, value in txn.cursor(db=self._tables[_ITEMS])]
            item = make(number, held)
            txn.put(_number_key(item.number), item.to_bytes(), db=self._tables[_ITEMS])
            txn.put(_NEXT, _number_key(number + 1), db=self._tables[_META])
            return item

        return self._write(change)

    def update(
        self, number: int, change: Callable[[PendingItem | None], PendingItem | None]
    ) -> PendingItem | None:
        """Replace item ``number`` with ``change(item)`` (None: leave it) in one write
        transaction, so concurrent updates apply one after the other."""

        def apply(txn: lmdb.Transaction[bytes]) -> PendingItem | None:
            raw = txn.get(_number_key(number), db=self._tables[_ITEMS])
            new = change(None if raw is None else _item(bytes(raw)))
            if new is not None:
                txn.put(_number_key(number), new.to_bytes(), db=self._tables[_ITEMS])
            return new

        return self._write(apply)

    def put(self, item: PendingItem) -> None:
        self._write(
            lambda txn: txn.put(_number_key(item.number), item.to_bytes(), db=self._tables[_ITEMS])
        )

    def remove(self, numbers: Iterator[int] | list[int]) -> None:
        def apply(txn: lmdb.Transaction[bytes]) -> None:
            for number in numbers:
                txn.delete(_number_key(number), db=self._tables[_ITEMS])

        self._write(apply)

    def _write(self, change: Callable[[lmdb.Transaction[bytes]], _T]) -> _T:
        env = self._opened()
        try:
            with env.begin(write=True) as txn:
                return change(txn)
        except lmdb.Error as exc:
            raise StoreError(
                f"cannot write the review queue at {self.path}, nothing was changed: {exc}"
            ) from None

    def _opened(self) -> lmdb.Environment:
        if self._env is None:
            raise StoreError(f"the review queue at {self.path} is closed")
        return self._env


def _number_key(number: int) -> bytes:
    return number.to_bytes(8, "big")


def _item(value: bytes) -> PendingItem:
    try:
        return PendingItem.from_bytes(value)
    except (FormatError, TypeError, ValueError) as exc:
        raise IntegrityError(
            f"the review queue is damaged: an item cannot be read ({exc})"
        ) from None


__all__ = ["REVIEW_ENV_NAME", "ReviewStore"]
