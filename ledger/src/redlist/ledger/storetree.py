"""The stored Merkle tree, read: the perfect subtrees of the ``nodes`` table.

``LmdbNodeReader`` reads them within any read transaction (``StoreReader.nodes``);
``TreeSnapshot`` is the tree of a transaction begun for one inclusion proof
(``LmdbStore.read_tree``), whose default table is ``nodes``, so its look-ups need
neither a table argument nor a cursor. A subtree the table lacks, which only a damaged
store does, is an ``IntegrityError`` naming the leaves it covers.
"""

from __future__ import annotations

from typing import cast

import lmdb

from redlist.ledger.errors import IntegrityError
from redlist.ledger.storelayout import META_SIZE, NODE_KEY, Tables, int_from_key


class LmdbNodeReader:
    """``merkle.NodeReader`` over the ``nodes`` table of one transaction."""

    __slots__ = ("_get", "_key")

    def __init__(self, txn: lmdb.Transaction[bytes], tables: Tables) -> None:
        # One cursor for every read of a proof: a proof is some twenty look-ups, and a
        # cursor's ``get`` is cheaper than the transaction's with its table argument.
        self._get = txn.cursor(db=tables.nodes).get
        self._key = NODE_KEY.pack  # ``node_key``, for positions inside the tree

    def node(self, level: int, index: int) -> bytes:
        value = self._get(self._key(level, index))
        if value is None:
            raise _lacks(level, index)
        return value

    def siblings(self, index: int, levels: int) -> list[bytes]:
        """``nodecache.StoredPath``: the siblings of leaf ``index``'s path on the
        ``levels`` lowest levels, in one call (the lowest levels of a proof)."""
        get, key = self._get, self._key
        values = [get(key(level, (index >> level) ^ 1)) for level in range(levels)]
        if None in values:
            level = values.index(None)
            raise _lacks(level, (index >> level) ^ 1)
        return cast("list[bytes]", values)  # no None left


class TreeSnapshot(LmdbNodeReader):
    """The tree of one read transaction whose default table is ``nodes``
    (``LmdbStore.read_tree``): its size, and its subtrees read without a cursor."""

    __slots__ = ("_meta_table", "_txn")

    def __init__(self, txn: lmdb.Transaction[bytes], meta: lmdb._Database) -> None:
        self._get = txn.get
        self._key = NODE_KEY.pack
        self._txn = txn
        self._meta_table = meta

    def size(self) -> int:
        """The number of leaves committed (``StoreReader.size``)."""
        value = self._txn.get(META_SIZE, db=self._meta_table)
        return 0 if value is None else int_from_key(value)


def _lacks(level: int, index: int) -> IntegrityError:
    return IntegrityError(
        f"the stored Merkle tree lacks the subtree of {1 << level} leaves starting at "
        f"leaf {index << level}"
    )


__all__ = ["LmdbNodeReader", "TreeSnapshot"]
