"""Opening a ledger's LMDB environment: the writer lock, the checks before any page is
read, and the tables (``LmdbStore.open``).

One process writes a ledger at a time: a writable open takes an exclusive ``flock`` on
``writer.lock`` in the environment's directory, released when the store closes or the
process dies. Before LMDB reads a page, a data file shorter than its own header says is
refused (LMDB would kill the process with SIGBUS), and so is a store of an earlier
format (with what to do). The environment is opened with durable commits (``sync``,
``metasync``): whatever a caller was told is committed survives a crash.
"""

from __future__ import annotations

import os
from pathlib import Path

import lmdb

from redlist.ledger.errors import IntegrityError, StoreError
from redlist.ledger.filelock import lock_file
from redlist.ledger.lmdbopen import open_durable
from redlist.ledger.storelayout import (
    FORMAT_MARKER,
    META_FORMAT,
    OLD_FORMAT_MARKERS,
    TABLE_NAMES,
    Tables,
)

#: Address space reserved for the map when no size is given (virtual, not disk).
DEFAULT_MAP_SIZE = 1 << 40
#: Concurrent read transactions (open streams, proofs) across all processes.
MAX_READERS = 1024


def open_environment(
    path: Path, *, create: bool, readonly: bool, map_size: int | None
) -> tuple[lmdb.Environment, Tables, int | None]:
    """The environment in directory ``path``, its tables, and the writer lock's descriptor
    (None when ``readonly``); see ``LmdbStore.open``. Every refusal is a ``StoreError``
    (a truncated data file an ``IntegrityError``), with nothing left open or locked."""
    if create and readonly:
        raise StoreError("a new ledger cannot be created read-only")
    if map_size is not None and map_size <= 0:
        raise StoreError(f"the map size must be a positive number of bytes, not {map_size}")
    if not create and not (path / "data.mdb").is_file():
        raise StoreError(f"{path} holds no ledger database (data.mdb is missing)")
    writer_lock = None if readonly else lock_writer(path, create)
    try:
        env = open_durable(
            path,
            map_size=map_size or DEFAULT_MAP_SIZE,
            max_dbs=len(TABLE_NAMES),
            create=create,
            readonly=readonly,
            max_readers=MAX_READERS,
        )
    except lmdb.Error as exc:
        unlock_writer(writer_lock)
        raise StoreError(f"cannot open the ledger database at {path}: {exc}") from None
    try:
        if not create:
            _refuse_truncated(env, path)
        # The marker first: an earlier format may lack tables this one has.
        handles = {"meta": env.open_db(b"meta", create=create)}
        if not create:
            _refuse_old_format(env, handles["meta"], path)
        handles |= {name: env.open_db(name.encode(), create=create) for name in TABLE_NAMES}
    except lmdb.NotFoundError:
        env.close()
        unlock_writer(writer_lock)
        raise StoreError(
            f"{path} is not a redlist ledger (a table is missing); was it made by "
            "'redlist-node init'?"
        ) from None
    except lmdb.Error as exc:
        env.close()
        unlock_writer(writer_lock)
        raise StoreError(f"cannot open the tables of the ledger at {path}: {exc}") from None
    except BaseException:
        unlock_writer(writer_lock)
        raise
    return env, Tables(**handles), writer_lock


#: The file a writable store holds an exclusive ``flock`` on for as long as it is open.
WRITER_LOCK_NAME = "writer.lock"


def lock_writer(path: Path, create: bool) -> int:
    """Take the environment's writer lock, or refuse: one writing process per ledger.

    LMDB keeps the log consistent with two writing processes, but two nodes serving
    one directory would each believe it is the only one (each signs checkpoints, each
    caches the tree's head). The lock is released when the store closes or the process
    dies (the kernel drops ``flock`` locks with the descriptor), so kill -9 leaves none.
    """
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return lock_file(
        path / WRITER_LOCK_NAME,
        busy=lambda: (
            f"the ledger at {path.parent} is already open for writing (a node serving it, "
            "or a command still running); stop it first, or use a read-only command such "
            "as export"
        ),
    )


def unlock_writer(descriptor: int | None) -> None:
    """Release the writer lock ``lock_writer`` took (None: a read-only store has none)."""
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


def _refuse_old_format(env: lmdb.Environment, meta: lmdb._Database, path: Path) -> None:
    """Refuse a store of an earlier format, saying what to do (a missing or damaged
    marker is left to the callers' checks, which call it damage)."""
    with env.begin() as txn:
        marker = txn.get(META_FORMAT, db=meta)
    if marker is not None and marker in OLD_FORMAT_MARKERS:
        env.close()
        raise StoreError(
            f"{path} holds a ledger of the earlier format {marker.decode()}; this version "
            f"reads {FORMAT_MARKER.decode()} only (sealed state records, deed dates and rule "
            "caps, accounts' entry lists linked by seq, a log-structured entry-id index). "
            "Earlier formats were never deployed and there is no migration: create the log "
            "again with 'redlist-node init'"
        )


__all__ = [
    "DEFAULT_MAP_SIZE",
    "MAX_READERS",
    "WRITER_LOCK_NAME",
    "lock_writer",
    "open_environment",
    "unlock_writer",
]
