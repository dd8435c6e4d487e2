"""A witness's durable state: per log, the last checkpoint it cosigned (DESIGN 8.2).

The state lives in its own LMDB environment, ``<data>/witness.lmdb/``, beside the
ledger's and never mixed with it: a town's node may witness other towns' logs
without its own log's storage knowing. One table, ``heads``:

==========  ==============================================  ==================================
table       key                                             value
==========  ==============================================  ==================================
``heads``   SHA-256 of the log's verifier key string        size (8 bytes, big-endian) ‖ root
            (origin and key: a log is both)                 (32 bytes) ‖ signed note (UTF-8)
==========  ==============================================  ==================================

:meth:`WitnessStore.swap` is the compare-and-swap the witness protocol needs: in one
write transaction it reads the stored size, refuses (``WitnessRefusal``,
``OLD_SIZE_MISMATCH``, with the stored size) when it is not the size the caller
decided from, and otherwise writes the new head. Commits are synchronous (LMDB's
``sync`` and ``metasync``), so when ``swap`` returns the head is on disk: a
cosignature is answered only after that, and a witness killed at any moment never
forgets a head it cosigned (so it never cosigns two heads of one size).

This module is part of the storage seam: nothing else touches this environment.
"""

from __future__ import annotations

import hashlib
from contextlib import suppress
from pathlib import Path

import lmdb

from redlist.ledger.errors import IntegrityError, StoreError
from redlist.ledger.merkle import HASH_SIZE
from redlist.ledger.note.keys import VerifierKey
from redlist.ledger.witness import Refusal, WitnessedHead, WitnessRefusal

#: The witness state's environment directory inside a node's data directory.
WITNESS_ENV_NAME = "witness.lmdb"
#: Address space reserved; a head is at most a note (1 MiB), one per configured log.
WITNESS_MAP_SIZE = 1 << 30
_HEADS = b"heads"
_SIZE_BYTES = 8


class WitnessStore:
    """The witness heads of one data directory. Open with :meth:`open`; close when done.

    Safe to share between threads: LMDB runs one write transaction at a time, and the
    compare happens inside it.
    """

    def __init__(self, env: lmdb.Environment, heads: lmdb._Database, path: Path) -> None:
        self._env = env
        self._heads = heads
        self.path = path

    @classmethod
    def open(cls, data_dir: Path) -> WitnessStore:
        """Open (creating when absent) ``data_dir/witness.lmdb``."""
        path = data_dir / WITNESS_ENV_NAME
        try:
            path.mkdir(exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the witness state {path}: {exc.strerror}") from None
        try:
            env = lmdb.open(
                str(path),
                map_size=WITNESS_MAP_SIZE,
                subdir=True,
                max_dbs=1,
                lock=True,
                # Durable before the reply: never trade this away for speed.
                sync=True,
                metasync=True,
                map_async=False,
                writemap=False,
            )
        except lmdb.Error as exc:
            raise StoreError(f"cannot open the witness state at {path}: {exc}") from None
        try:
            heads = env.open_db(_HEADS, create=True)
        except lmdb.Error as exc:
            env.close()
            raise StoreError(f"cannot open the witness state's table at {path}: {exc}") from None
        return cls(env, heads, path)

    def head(self, log_key: VerifierKey) -> WitnessedHead | None:
        """The head last cosigned for the log of ``log_key``; None when there is none."""
        try:
            with self._env.begin(db=self._heads) as txn:
                value = txn.get(_key(log_key))
        except lmdb.Error as exc:
            raise StoreError(f"cannot read the witness state at {self.path}: {exc}") from None
        return None if value is None else self._decode(value)

    def swap(self, log_key: VerifierKey, old_size: int, new: WitnessedHead) -> None:
        """Store ``new`` for the log of ``log_key`` if the stored size is ``old_size``.

        Nothing stored counts as size 0. Raises ``WitnessRefusal`` (``OLD_SIZE_MISMATCH``,
        ``stored_size`` set) when another head was stored meanwhile; returns only after
        the commit is on disk.
        """
        key = _key(log_key)
        value = new.size.to_bytes(_SIZE_BYTES, "big") + new.root + new.note.encode("utf-8")
        try:
            txn = self._env.begin(write=True, db=self._heads)
        except lmdb.Error as exc:
            raise StoreError(f"cannot write the witness state at {self.path}: {exc}") from None
        try:
            current = txn.get(key)
            stored = 0 if current is None else self._decode(current).size
            if stored != old_size:
                raise WitnessRefusal(
                    Refusal.OLD_SIZE_MISMATCH,
                    f"the witness holds size {stored}, not {old_size}: ask again from there",
                    stored_size=stored,
                )
            txn.put(key, value)
            txn.commit()
        except lmdb.Error as exc:
            raise StoreError(
                f"writing the witness state at {self.path} failed, nothing was stored: {exc}"
            ) from None
        finally:
            with suppress(lmdb.Error):
                txn.abort()

    def close(self) -> None:
        self._env.close()

    def _decode(self, value: bytes) -> WitnessedHead:
        if len(value) < _SIZE_BYTES + HASH_SIZE:
            raise IntegrityError(f"a head in the witness state at {self.path} is truncated")
        size = int.from_bytes(value[:_SIZE_BYTES], "big")
        root = bytes(value[_SIZE_BYTES : _SIZE_BYTES + HASH_SIZE])
        try:
            note = bytes(value[_SIZE_BYTES + HASH_SIZE :]).decode("utf-8")
        except UnicodeDecodeError:
            raise IntegrityError(f"a head in the witness state at {self.path} is damaged") from None
        return WitnessedHead(size, root, note)


def _key(log_key: VerifierKey) -> bytes:
    return hashlib.sha256(log_key.encode().encode("utf-8")).digest()
