"""The top of a log's Merkle tree, remembered between proofs (DESIGN 6). Pure.

An inclusion proof of a log of ``n`` entries reads ``log2(n)`` stored perfect subtrees,
one a level. The ones near the root are few and every proof reads them again: at 2^20
entries, the ten highest levels hold about 2,000 subtrees, yet each costs a look-up in
the store's largest table. A perfect subtree never changes once its last leaf is
appended, so its hash can be kept: ``UpperNodes`` keeps those of the ``LEVELS``
highest levels of the tree a proof is asked for, and ``CachedNodes`` reads through it.

Memory stays bounded whatever the log's length: the levels kept are the highest
``LEVELS`` of the tree (so ``2**LEVELS`` subtrees at most, fewer as the levels go up),
and the whole cache is emptied when it passes ``MAX_NODES``. Only subtrees the store
returned are kept, so a damaged store is still reported by the store's own reader.
"""

from __future__ import annotations

from redlist.ledger.merkle import NodeReader

#: The highest levels of a tree whose subtrees are kept: at 2^20 entries, a proof then
#: reads the store for its seven lowest levels only (fifteen kept levels were no faster).
LEVELS = 14
#: The most subtrees kept at once (about 6 MiB): twice what ``LEVELS`` levels hold, so
#: the cache is emptied only when proofs move on to a larger tree.
MAX_NODES = 1 << 15


class UpperNodes:
    """Hashes of perfect subtrees of the top ``LEVELS`` levels, shared between proofs.

    Safe to share between threads: a proof only adds subtrees, and a dictionary's
    single look-ups and stores are atomic.
    """

    def __init__(self) -> None:
        # Keyed by ``index << 6 | level`` (a level is below 64): one int, no tuple made.
        self._hashes: dict[int, bytes] = {}

    def __len__(self) -> int:
        return len(self._hashes)

    def reader(self, store: NodeReader, size: int) -> NodeReader:
        """A reader of ``store``'s subtrees for proofs in the tree of ``size`` leaves."""
        return CachedNodes(store, self, max(0, size.bit_length() - LEVELS))

    def get(self, level: int, index: int) -> bytes | None:
        return self._hashes.get(index << 6 | level)

    def keep(self, level: int, index: int, value: bytes) -> None:
        if len(self._hashes) >= MAX_NODES:
            self._hashes.clear()
        self._hashes[index << 6 | level] = value


class CachedNodes:
    """``merkle.NodeReader``: subtrees from ``lowest`` up come from ``upper`` when it
    holds them, everything else (and what it lacks) from ``store``."""

    def __init__(self, store: NodeReader, upper: UpperNodes, lowest: int) -> None:
        self._store = store
        self._upper = upper
        self._lowest = lowest
        self._kept_get = upper._hashes.get  # one proof asks it some twenty times

    def node(self, level: int, index: int) -> bytes:
        if level < self._lowest:
            return self._store.node(level, index)
        value = self._kept_get(index << 6 | level)
        if value is None:
            value = self._store.node(level, index)
            self._upper.keep(level, index, value)
        return value


__all__ = ["LEVELS", "MAX_NODES", "CachedNodes", "UpperNodes"]
