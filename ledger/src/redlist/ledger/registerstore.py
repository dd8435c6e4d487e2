"""The resident register's storage: ``<data>/register.lmdb/``, an LMDB environment of its own.

Personal data never enters the log (DESIGN 3.7): the register lives beside the ledger's
environment, never in it, as the witness's state does (docs/adr/0017), so the log's
format, checks, exports and mirrors never see a name. Three tables:

=============  ================================  ==========================================
table          key                               value
=============  ================================  ==========================================
``residents``  account (UTF-8)                   :meth:`Resident.to_bytes` (canonical msgpack)
``erased``     account (UTF-8)                   erasure time, ms since the epoch (8 bytes,
                                                 big-endian): a tombstone, no personal data
``meta``       ``scrub``                         present while an erasure's scrub is unfinished
=============  ================================  ==========================================

**Locking.** Every open takes a ``flock`` on ``<data>/register.lock``: shared to read,
exclusive to write, waiting up to :data:`LOCK_WAIT_S` for the other kind. So any number
of commands may read the register at once, one may change it, and the node serving the
log is never in the way (it opens the register only to read, while it answers a
``CheckAccounts`` call, docs/adr/0038). Each change is one write
transaction, committed with a synchronous flush: an import is all or nothing.

**Erasure.** LMDB never overwrites a page in place: a deleted record stays in the data
file, in a page freed but not yet reused, for an unbounded time. So :meth:`erase` does
not stop at deleting. In one transaction it deletes the record, writes the tombstone and
marks a scrub as pending; then it **scrubs**: it writes every live record, one by one,
into a fresh environment ``register.lmdb.new`` (fresh pages hold only what is written
into them), swaps it in for ``register.lmdb`` by two renames, and overwrites every file of
the old environment with zeros, flushes and deletes it. A writer that finds the scrub
unfinished (the process died during it) finishes it when it next opens the register.

A write that replaces records (an update) scrubs the same way, so a corrected value
does not linger either. After :meth:`erase` returns, no file of the register holds the
erased resident's name, ID number, phone, village or household; after an update, none
holds the values it replaced. What it cannot reach: copies of the data
directory made before (backups, a mirror of the disk), and blocks a file system or an
SSD keeps after a file is overwritten (copy-on-write file systems, wear levelling).
Those are the operator's to handle (docs/operations.md).

This module is part of the storage seam: nothing else touches this environment.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import lmdb

from redlist.ledger.errors import FormatError, IntegrityError, RegisterError, StoreError
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
from redlist.ledger.residents import Household, MaskedResident, Resident, Tombstone

#: The register's environment directory inside a node's data directory.
REGISTER_ENV_NAME = "register.lmdb"
REGISTER_LOCK_NAME = "register.lock"
#: Address space reserved: a resident's record is a few hundred bytes.
REGISTER_MAP_SIZE = 1 << 32
#: How long an open waits for another command to let go of the register, in seconds.
LOCK_WAIT_S = 30.0
_RESIDENTS = b"residents"
_ERASED = b"erased"
_META = b"meta"
_TABLES = (_RESIDENTS, _ERASED, _META)
_SCRUB_PENDING = b"scrub"
_TIME_BYTES = 8


@dataclass(frozen=True)
class Conflict:
    """Why resident ``index`` of a write cannot be stored, in words."""

    index: int
    account: str
    message: str


class RegisterConflictError(RegisterError):
    """A write refused whole: ``conflicts`` lists each resident that cannot be stored."""

    def __init__(self, message: str, conflicts: tuple[Conflict, ...]) -> None:
        super().__init__(message)
        self.conflicts = conflicts


@dataclass(frozen=True)
class WriteResult:
    """What a write did: accounts added, updated, and rows that changed nothing."""

    added: int
    updated: int
    unchanged: int


class RegisterStore:
    """The register of one data directory. Open with :meth:`open`; close when done."""

    def __init__(self, data_dir: Path, lock: int, *, writable: bool) -> None:
        self.data_dir = data_dir
        self.path = data_dir / REGISTER_ENV_NAME
        self._lock = lock
        self._writable = writable
        self._env: lmdb.Environment | None = None
        self._tables: dict[bytes, lmdb._Database] = {}

    @classmethod
    def open(
        cls, data_dir: Path, *, write: bool = False, wait_s: float = LOCK_WAIT_S
    ) -> RegisterStore:
        """Open the register of ``data_dir``: to read (shared), or to write (exclusive,
        creating it when absent and finishing an interrupted scrub).

        A register that does not exist reads as empty. Waits up to ``wait_s`` seconds for
        another command holding the register; then raises ``StoreError``.
        """
        if not data_dir.is_dir():
            raise StoreError(f"the data directory {data_dir} does not exist")
        lock = lock_file(data_dir / REGISTER_LOCK_NAME, exclusive=write, wait_s=wait_s)
        store = cls(data_dir, lock, writable=write)
        try:
            if write:
                recover_scrub(store.path)
                store._open_env(store.path, create=True)
                if store._scrub_pending():
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
            os.close(self._lock)  # releases the flock
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

    def get(self, account: str) -> Resident | None:
        """The resident of ``account``; None when the register does not hold one."""
        value = self._get(_RESIDENTS, account.encode("utf-8"))
        return None if value is None else _resident(account, value)

    def tombstone(self, account: str) -> Tombstone | None:
        """The tombstone of ``account`` when its personal data was erased, else None."""
        value = self._get(_ERASED, account.encode("utf-8"))
        return None if value is None else Tombstone(account, int.from_bytes(value, "big"))

    def kept(self) -> bool:
        """Whether the town keeps a register: it holds a resident or a tombstone (an
        import ever ran). A register never imported reads as not kept."""
        if self._env is None:
            return False
        try:
            with self._env.begin() as txn:
                return any(
                    txn.stat(self._tables[table])["entries"] for table in (_RESIDENTS, _ERASED)
                )
        except lmdb.Error as exc:
            raise StoreError(f"cannot read the resident register at {self.path}: {exc}") from None

    def unknown(self, accounts: Sequence[str]) -> list[str]:
        """The ``accounts`` the register holds no resident for (never imported, or
        erased), in their order, read in one transaction. Answers only about the accounts
        asked: nothing here lists the register."""
        if self._env is None:
            return list(accounts)
        try:
            with self._env.begin(db=self._tables[_RESIDENTS]) as txn:
                return [a for a in accounts if txn.get(a.encode("utf-8")) is None]
        except lmdb.Error as exc:
            raise StoreError(f"cannot read the resident register at {self.path}: {exc}") from None

    def residents(self, village: str | None = None) -> list[Resident]:
        """Every resident (of ``village`` only, when given), in account order."""
        found = [_resident(key, value) for key, value in self._items(_RESIDENTS)]
        return found if village is None else [r for r in found if r.village == village]

    def tombstones(self) -> list[Tombstone]:
        """Every erased account, in account order."""
        return [Tombstone(key, int.from_bytes(value, "big")) for key, value in self._items(_ERASED)]

    def publishable(self, account: str) -> bool:
        """True when publicity may show ``account``: a resident with a legal basis.

        An account the register does not hold, or whose data was erased, is not.
        """
        resident = self.get(account)
        return resident is not None and resident.publishable

    def left_out(self) -> int:
        """How many residents publicity leaves out for want of a legal basis."""
        return sum(1 for resident in self.residents() if not resident.publishable)

    def roster(self) -> tuple[MaskedResident, ...]:
        """What publicity may show of every publishable resident, in account order."""
        return tuple(resident.masked() for resident in self.residents() if resident.publishable)

    def household_of(self, account: str) -> Household | None:
        """The household ``account`` belongs to, with its members; None when it has none."""
        resident = self.get(account)
        if resident is None or not resident.household:
            return None
        return self.households()[(resident.village, resident.household)]

    def households(self) -> dict[tuple[str, str], Household]:
        """Every household, keyed by (village, household), with its members."""
        members: dict[tuple[str, str], list[str]] = {}
        for resident in self.residents():
            if resident.household:
                members.setdefault((resident.village, resident.household), []).append(
                    resident.account
                )
        return {
            key: Household(key[0], key[1], tuple(accounts)) for key, accounts in members.items()
        }

    # ---- writing -------------------------------------------------------------------

    def add(self, residents: Sequence[Resident], *, update: bool = False) -> WriteResult:
        """Store ``residents`` in one transaction, or nothing.

        Refused whole (:class:`RegisterConflictError`, listing each) when an account was
        erased, when an account is already registered and ``update`` is false, or when
        an ID number belongs to another account. With ``update``, a registered account's
        record is replaced by the new one.
        """
        return self._write(residents, update=update, must_exist=False)

    def replace(self, resident: Resident) -> None:
        """Replace the record of a registered account (``RegisterError`` if there is none)."""
        self._write([resident], update=True, must_exist=True)

    def erase(self, account: str, now_ms: int) -> Tombstone:
        """Erase the personal data of ``account`` for good, keeping a tombstone.

        ``RegisterError`` when the register holds no resident of that account. Returns
        after the scrub (see the module's docstring): no file of the register holds the
        data any more.
        """
        env = self._writer()
        key = account.encode("utf-8")
        tombstone = Tombstone(account, now_ms)
        try:
            with env.begin(write=True) as txn:
                if txn.get(key, db=self._tables[_RESIDENTS]) is None:
                    erased = txn.get(key, db=self._tables[_ERASED])
                    if erased is not None:
                        when = Tombstone(account, int.from_bytes(erased, "big")).erased_on
                        raise RegisterError(f"the data of {account} was already erased on {when}")
                    raise RegisterError(f"the register holds no resident {account}")
                txn.delete(key, db=self._tables[_RESIDENTS])
                txn.put(key, now_ms.to_bytes(_TIME_BYTES, "big"), db=self._tables[_ERASED])
                txn.put(_SCRUB_PENDING, b"1", db=self._tables[_META])
        except lmdb.Error as exc:
            raise StoreError(f"cannot write the register at {self.path}: {exc}") from None
        self._scrub()
        return tombstone

    def _write(
        self, residents: Sequence[Resident], *, update: bool, must_exist: bool
    ) -> WriteResult:
        env = self._writer()
        conflicts: list[Conflict] = []
        added = updated = unchanged = 0
        try:
            with env.begin(write=True) as txn:
                owners = {
                    resident.id_number: resident.account
                    for resident in self._all(txn)
                    if resident.id_number
                }
                for index, resident in enumerate(residents):
                    key = resident.account.encode("utf-8")
                    problem = None
                    stored = txn.get(key, db=self._tables[_RESIDENTS])
                    erased = txn.get(key, db=self._tables[_ERASED])
                    if erased is not None:
                        when = Tombstone(resident.account, int.from_bytes(erased, "big")).erased_on
                        problem = f"its personal data was erased on {when}; it is not taken back"
                    elif stored is None and must_exist:
                        problem = "the register holds no such resident"
                    elif stored is not None and not update:
                        problem = "is already in the register (import with --update to replace it)"
                    elif owners.get(resident.id_number, resident.account) != resident.account:
                        problem = f"its ID number already belongs to {owners[resident.id_number]}"
                    if problem is not None:
                        conflicts.append(Conflict(index, resident.account, problem))
                        continue
                    if stored is not None:  # its old ID number is free for others now
                        owners.pop(_resident(resident.account, stored).id_number, None)
                    if resident.id_number:
                        owners[resident.id_number] = resident.account
                    if stored is None:
                        added += 1
                    elif _resident(resident.account, stored).same_data(resident):
                        unchanged += 1
                        continue
                    else:
                        updated += 1
                    txn.put(key, resident.to_bytes(), db=self._tables[_RESIDENTS])
                if conflicts:
                    raise RegisterConflictError(_conflict_message(conflicts), tuple(conflicts))
                if updated:
                    txn.put(_SCRUB_PENDING, b"1", db=self._tables[_META])
        except lmdb.Error as exc:
            raise StoreError(
                f"writing the register at {self.path} failed, nothing was stored: {exc}"
            ) from None
        if updated:  # the values replaced must not linger in freed pages either
            self._scrub()
        return WriteResult(added, updated, unchanged)

    # ---- the environment -----------------------------------------------------------

    def _open_env(self, path: Path, *, create: bool) -> None:
        self._env, self._tables = open_tables(
            path,
            tables=_TABLES,
            map_size=REGISTER_MAP_SIZE,
            create=create,
            what="the resident register",
            personal=True,
        )

    def _writer(self) -> lmdb.Environment:
        if not self._writable or self._env is None:
            raise StoreError(f"the register at {self.path} was opened to read, not to write")
        return self._env

    def _get(self, table: bytes, key: bytes) -> bytes | None:
        if self._env is None:
            return None
        return read_value(
            self._env, self._tables[table], key, f"the resident register at {self.path}"
        )

    def _items(self, table: bytes) -> Iterator[tuple[str, bytes]]:
        if self._env is None:
            return
        pairs = read_items(self._env, self._tables[table], f"the resident register at {self.path}")
        for key, value in pairs:
            yield _account(key), value

    def _all(self, txn: lmdb.Transaction) -> Iterator[Resident]:
        for key, value in txn.cursor(db=self._tables[_RESIDENTS]):
            yield _resident(_account(bytes(key)), bytes(value))

    def _scrub_pending(self) -> bool:
        return self._get(_META, _SCRUB_PENDING) is not None

    def _scrub(self) -> None:
        """Rewrite the live records into a fresh environment and shred the old one."""
        env = self._writer()
        self._env = None
        scrub_environment(
            env,
            self._tables,
            self.path,
            map_size=REGISTER_MAP_SIZE,
            keep=lambda table, key: not (table == _META and key == _SCRUB_PENDING),
        )
        self._open_env(self.path, create=True)


def _resident(account: str, value: bytes) -> Resident:
    try:
        return Resident.from_bytes(account, value)
    except FormatError as error:
        raise IntegrityError(f"the resident register is damaged: {error}") from None


def _account(key: bytes) -> str:
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        raise IntegrityError("the resident register is damaged: an account is not text") from None


def _conflict_message(conflicts: Sequence[Conflict]) -> str:
    count = f"{len(conflicts)} resident" + ("s" if len(conflicts) != 1 else "")
    lines = [f"{conflict.account}: {conflict.message}" for conflict in conflicts]
    return f"{count} cannot be stored; nothing was changed:\n  " + "\n  ".join(lines)
