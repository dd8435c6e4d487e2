"""Opening LMDB environments whose commits are durable: every store opens through this.

DESIGN 7 ("nothing acknowledged is ever lost") rests on LMDB syncing at each commit:
``sync`` and ``metasync`` on, its asynchronous flush and its writable memory map off.
The log, a witness's state, the recognitions, the review queue, the resident register
and the texts each spelt these flags out; they are now set here, once, and no caller
can turn them off (``tests/ledger/test_lmdbopen.py`` also refuses an ``lmdb.open``
anywhere else in the sources).
"""

from __future__ import annotations

from pathlib import Path

import lmdb

from redlist.ledger.errors import StoreError

#: LMDB's own defaults: reader slots, and the files' mode (less the umask).
DEFAULT_READERS = 126
LMDB_FILE_MODE = 0o755
#: Environment directories of personal data (the register, the texts, the review queue):
#: the node user's alone.
PERSONAL_DIRECTORY_MODE = 0o700
PERSONAL_FILE_MODE = 0o600


def open_durable(
    path: Path,
    *,
    map_size: int,
    max_dbs: int,
    create: bool = True,
    readonly: bool = False,
    max_readers: int = DEFAULT_READERS,
    file_mode: int = LMDB_FILE_MODE,
) -> lmdb.Environment:
    """The environment in directory ``path``, every commit synced before it returns.

    ``file_mode`` is the data and lock files' mode, less the umask. ``lmdb.Error`` passes
    to the caller, which names what it opens.
    """
    return lmdb.open(
        str(path),
        map_size=map_size,
        subdir=True,
        max_dbs=max_dbs,
        create=create,
        readonly=readonly,
        max_readers=max_readers,
        lock=True,
        # Durable commits: never trade them away for speed.
        sync=True,
        metasync=True,
        map_async=False,
        writemap=False,
        # Fresh pages hold zeros, never the process's freed memory (a key, a resident's
        # record): the personal stores' scrub relies on it, and no store's file may
        # carry what it was not given.
        meminit=True,
        mode=file_mode,
    )


def open_tables(
    path: Path,
    *,
    tables: tuple[bytes, ...],
    map_size: int,
    what: str,
    create: bool = True,
    personal: bool = False,
) -> tuple[lmdb.Environment, dict[bytes, lmdb._Database]]:
    """``open_durable`` on the directory ``path`` (made when ``create``) and its named
    tables; every refusal a ``StoreError`` naming ``what``, with nothing left open.

    ``personal``: the register, the texts and the review queue: the directory and files
    are the node user's alone, and without ``create`` the environment is opened
    read-only.
    """
    if create:
        try:
            if personal:
                path.mkdir(mode=PERSONAL_DIRECTORY_MODE, exist_ok=True)
            else:
                path.mkdir(exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {what} at {path}: {exc.strerror}") from None
    try:
        env = open_durable(
            path,
            map_size=map_size,
            max_dbs=len(tables),
            create=create,
            readonly=personal and not create,
            file_mode=PERSONAL_FILE_MODE if personal else LMDB_FILE_MODE,
        )
    except lmdb.Error as exc:
        raise StoreError(f"cannot open {what} at {path}: {exc}") from None
    try:
        return env, {name: env.open_db(name, create=create) for name in tables}
    except lmdb.Error as exc:
        env.close()
        raise StoreError(f"{what} at {path} is not usable: {exc}") from None


__all__ = [
    "DEFAULT_READERS",
    "LMDB_FILE_MODE",
    "PERSONAL_DIRECTORY_MODE",
    "PERSONAL_FILE_MODE",
    "open_durable",
    "open_tables",
]
