"""Grades this town recognised from other towns' attestations (DESIGN 8.6), kept on disk.

A recognition is a town's decision, not an entry of its log: it lives in an LMDB
environment of its own, ``<data>/recognition.lmdb/``, beside the ledger's and never
mixed with it (as the witness's state, ADR 0017). One table, ``grades``:

==========  =============================================  =================================
table       key                                            value
==========  =============================================  =================================
``grades``  local account (ASCII) ‖ 0x00 ‖ foreign origin   the :class:`Recognition` as JSON
            (UTF-8)                                        (UTF-8), the attestation file in it
==========  =============================================  =================================

So an account holds at most one recognition per foreign log, and all of an account's
recognitions are one key range. :meth:`RecognitionStore.record` writes several in one
transaction, synchronously (what a clerk was told is recorded is on disk), and refuses
to replace a recognition with one from an earlier tree size of the same log. The node
that serves the ledger reads them for ``GetAccount`` while ``redlist-node recognise``
writes them: LMDB lets one process write while others read.

This module is part of the storage seam: nothing else touches this environment.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lmdb

from redlist.ledger.errors import IntegrityError, StoreError
from redlist.ledger.lmdbopen import open_tables

#: The recognitions' environment directory inside a node's data directory.
RECOGNITION_ENV_NAME = "recognition.lmdb"
#: Address space reserved: an attestation file is a few kilobytes, one per account and town.
RECOGNITION_MAP_SIZE = 1 << 32
_GRADES = b"grades"
_SEPARATOR = b"\x00"


class StaleRecognitionError(StoreError):
    """A recognition from an earlier state of a log than the one already recorded."""


@dataclass(frozen=True)
class Recognition:
    """A grade of another town, recognised here for a local account.

    ``account`` is the local account, ``foreign_account`` the account the attestation
    names in log ``origin``; ``grade`` is that town's grade and ``equivalent`` ours,
    from the equivalence table. ``auditor`` is the key string of the auditor whose
    signature was trusted, ``tree_size`` the size of the foreign log it was computed
    at, ``expires`` the attestation's expiry and ``recognised_at`` when it was recorded
    (POSIX seconds). ``attestation`` is the attestation file, byte for byte, so that
    anyone can check the decision again.
    """

    account: str
    origin: str
    foreign_account: str
    grade: str
    equivalent: str
    score: int
    auditor: str
    tree_size: int
    expires: int
    recognised_at: int
    attestation: str

    def key(self) -> bytes:
        return _account_prefix(self.account) + self.origin.encode("utf-8")

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Recognition:
        value: Any = json.loads(data.decode("utf-8"))
        return cls(**value)


class RecognitionStore:
    """The recognitions of one data directory. Open with :meth:`open`; close when done."""

    def __init__(self, env: lmdb.Environment, grades: lmdb._Database, path: Path) -> None:
        self._env = env
        self._grades = grades
        self.path = path

    @classmethod
    def open(cls, data_dir: Path) -> RecognitionStore:
        """Open (creating when absent) ``data_dir/recognition.lmdb``."""
        path = data_dir / RECOGNITION_ENV_NAME
        env, tables = open_tables(
            path, tables=(_GRADES,), map_size=RECOGNITION_MAP_SIZE, what="the recognitions"
        )
        return cls(env, tables[_GRADES], path)

    def for_account(self, account: str) -> tuple[Recognition, ...]:
        """Every recognition of the local ``account``, by foreign origin."""
        prefix = _account_prefix(account)
        try:
            with self._env.begin(db=self._grades) as txn:
                return tuple(self._decode(value) for value in _range(txn.cursor(), prefix))
        except lmdb.Error as exc:
            raise StoreError(f"cannot read the recognitions at {self.path}: {exc}") from None

    def record(self, recognitions: Sequence[Recognition]) -> None:
        """Store ``recognitions`` in one transaction, durably; all or none.

        Raises ``StaleRecognitionError`` when one is from an earlier tree size of its log
        than the recognition already stored for that account and log.
        """
        try:
            txn = self._env.begin(write=True, db=self._grades)
        except lmdb.Error as exc:
            raise StoreError(f"cannot write the recognitions at {self.path}: {exc}") from None
        try:
            for recognition in recognitions:
                current = txn.get(recognition.key())
                if current is not None:
                    stored = self._decode(current)
                    if stored.tree_size > recognition.tree_size:
                        raise StaleRecognitionError(
                            f"account {recognition.account} already has a recognition from "
                            f"log {recognition.origin} at {stored.tree_size} entries, later "
                            f"than this one ({recognition.tree_size}); nothing was recorded"
                        )
                txn.put(recognition.key(), recognition.to_bytes())
            txn.commit()
        except lmdb.Error as exc:
            raise StoreError(
                f"writing the recognitions at {self.path} failed, nothing was recorded: {exc}"
            ) from None
        finally:
            with suppress(lmdb.Error):
                txn.abort()

    def close(self) -> None:
        self._env.close()

    def _decode(self, value: bytes) -> Recognition:
        try:
            return Recognition.from_bytes(bytes(value))
        except (ValueError, TypeError):
            raise IntegrityError(f"a recognition in {self.path} is damaged") from None


def _account_prefix(account: str) -> bytes:
    return account.encode("ascii") + _SEPARATOR


def _range(cursor: lmdb.Cursor, prefix: bytes) -> Iterator[bytes]:
    if not cursor.set_range(prefix):
        return
    for key, value in cursor:
        if not bytes(key).startswith(prefix):
            return
        yield bytes(value)
