"""Files of the environments that hold personal data: locks, flushes, and scrubbing.

Edge helpers of :mod:`redlist.ledger.registerstore` (the resident register) and
:mod:`redlist.ledger.textstore` (free texts), kept apart so that each store reads as its
rules and this module as plain file handling. Both erase the same way
(docs/adr/0025): :func:`scrub_environment` copies the live records one by one into a
fresh environment, swaps it in, and shreds the old files; :func:`recover_scrub` finishes
what a process that died during a scrub left.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import lmdb

from redlist.ledger import filelock
from redlist.ledger.errors import StoreError
from redlist.ledger.lmdbopen import PERSONAL_DIRECTORY_MODE, PERSONAL_FILE_MODE, open_durable
from redlist.ledger.syncdir import sync_directory

NEW_SUFFIX = ".new"
OLD_SUFFIX = ".old"


def read_value(env: lmdb.Environment, table: lmdb._Database, key: bytes, what: str) -> bytes | None:
    """One value of ``table`` (a copy), or None; ``StoreError`` naming ``what``."""
    try:
        with env.begin(db=table) as txn:
            value = txn.get(key)
    except lmdb.Error as exc:
        raise StoreError(f"cannot read {what}: {exc}") from None
    return None if value is None else bytes(value)


def read_items(
    env: lmdb.Environment, table: lmdb._Database, what: str
) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of ``table``, copied in one read transaction."""
    try:
        with env.begin(db=table) as txn:
            return [(bytes(key), bytes(value)) for key, value in txn.cursor()]
    except lmdb.Error as exc:
        raise StoreError(f"cannot read {what}: {exc}") from None


def scrub_environment(
    env: lmdb.Environment,
    tables: Mapping[bytes, lmdb._Database],
    path: Path,
    *,
    map_size: int,
    keep: Callable[[bytes, bytes], bool],
) -> None:
    """Rewrite ``env`` (at ``path``) so that no file holds a record it no longer has.

    Every record of ``tables`` for which ``keep(table, key)`` is true is copied, one by
    one, into a fresh environment ``path.new``; ``env`` is closed; the fresh one replaces
    ``path`` by two renames; the old files are overwritten with zeros and deleted. The
    caller opens ``path`` again afterwards.
    """
    fresh = sibling(path, NEW_SUFFIX)
    old = sibling(path, OLD_SUFFIX)
    remove_tree(fresh)
    fresh.mkdir(mode=PERSONAL_DIRECTORY_MODE)
    target = open_durable(
        fresh, map_size=map_size, max_dbs=len(tables), file_mode=PERSONAL_FILE_MODE
    )
    try:
        with env.begin() as source, target.begin(write=True) as txn:
            for name, table in tables.items():
                copy = target.open_db(name, txn=txn, create=True)
                for key, value in source.cursor(db=table):
                    if keep(name, bytes(key)):
                        txn.put(bytes(key), bytes(value), db=copy)
        target.sync(True)
    finally:
        target.close()
    env.close()
    sync_directory(fresh)
    os.rename(path, old)
    os.rename(fresh, path)
    sync_directory(path.parent)
    shred(old)


def recover_scrub(path: Path) -> None:
    """Finish what a writer that died during a scrub of ``path`` left (call it under the
    store's exclusive lock, before opening ``path``)."""
    fresh = sibling(path, NEW_SUFFIX)
    if fresh.exists():
        if path.exists():
            remove_tree(fresh)  # the copy was not finished: the scrub starts again
        else:
            os.rename(fresh, path)  # died between the two renames
            sync_directory(path.parent)
    shred(sibling(path, OLD_SUFFIX))


def sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def remove_tree(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


def shred(path: Path) -> None:
    """Overwrite every file of ``path`` with zeros, flush, and delete it all."""
    if not path.exists():
        return
    for file in sorted(path.iterdir()):
        if file.is_file():
            size = file.stat().st_size
            with file.open("r+b") as handle:
                zeros = bytes(1 << 20)
                for _ in range(0, size, len(zeros)):
                    handle.write(zeros)
                handle.truncate(size)
                handle.flush()
                os.fsync(handle.fileno())
    shutil.rmtree(path)
    sync_directory(path.parent)


def lock_file(
    path: Path, *, exclusive: bool, wait_s: float, what: str = "the resident register"
) -> int:
    """The lock of ``what`` (``filelock.lock_file``): exclusive to change it, shared to
    read it, waiting up to ``wait_s`` seconds for another command."""
    doing = "changing" if not exclusive else "reading or changing"
    return filelock.lock_file(
        path,
        exclusive=exclusive,
        wait_s=wait_s,
        busy=lambda: (
            f"another command is {doing} {what} in {path.parent} "
            f"(waited {wait_s:g} s); try again when it has finished"
        ),
    )
