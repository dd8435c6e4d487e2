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

``UpperNodes.inclusion_proof`` is the proof the node serves, built in one pass. An
audit path (``merkle._audit_path``) of leaf ``index`` in the tree of ``size`` leaves
parts from the last leaf's path at level ``inner = (index ^ (size - 1)).bit_length()``:

* below ``inner - 1`` each sibling is the perfect subtree ``(level, (index >> level) ^ 1)``.
  Those under the kept levels come from the store in one call (``StoredPath.siblings``).
  Those on the kept levels depend only on the subtree holding ``index`` at the lowest
  kept level and on ``inner``: they are kept together as one tuple, a *path* (at most
  ``MAX_PATHS``), filled through the kept subtrees;
* the rest, the right sibling at ``inner - 1`` (possibly ephemeral: hashed from the
  subtrees of what it covers) and the left siblings along the right border above, is
  the *tail*. Leaf ``index`` and the last leaf agree above bit ``inner - 1``, so the
  tail depends on ``(size, inner)`` only: the first proof with a new pair is built by
  ``merkle.inclusion_proof`` and its tail kept (at most ``MAX_TAILS``).

So a proof at 2^20 entries is one call to the store for seven subtrees, two dictionary
look-ups and two list extensions. Like the subtrees, paths and tails are emptied all
at once when full, and only hold what the store returned or what was hashed from it.
"""

from __future__ import annotations

from typing import Protocol

from redlist.ledger import merkle
from redlist.ledger.merkle import NodeReader

#: The highest levels of a tree whose subtrees are kept: at 2^20 entries, a proof then
#: reads the store for its seven lowest levels only (fifteen kept levels were no faster).
LEVELS = 14
#: The most subtrees kept at once (about 6 MiB): twice what ``LEVELS`` levels hold, so
#: the cache is emptied only when proofs move on to a larger tree.
MAX_NODES = 1 << 15
#: The most paths through the kept levels kept at once (about 6 MiB; each a tuple of
#: fewer than ``LEVELS`` kept subtrees): a tree of 2^20 entries has 2^13 of them, one
#: of 2^21 - 1 entries 2^14, so twice that leaves room for proofs at other sizes.
MAX_PATHS = 1 << 15
#: The most proof tails kept at once (``(size, inner)`` pairs, each at most 64 hashes that
#: are mostly kept subtrees already): a proof at 2^20 entries has one of 20 tails.
MAX_TAILS = 1 << 10


class StoredPath(NodeReader, Protocol):
    """A store's subtrees, and the lowest siblings of a leaf's audit path in one call."""

    def siblings(self, index: int, levels: int) -> list[bytes]:
        """The perfect subtrees ``(level, (index >> level) ^ 1)`` for ``level`` in
        ``range(levels)``, lowest first: the siblings of leaf ``index``'s path."""
        ...


class UpperNodes:
    """Hashes of perfect subtrees of the top ``LEVELS`` levels, shared between proofs.

    Safe to share between threads: a proof only adds subtrees, and a dictionary's
    single look-ups and stores are atomic.
    """

    def __init__(self) -> None:
        # Keyed by ``index << 6 | level`` (a level is below 64): one int, no tuple made.
        self._hashes: dict[int, bytes] = {}
        # The kept levels of audit paths, keyed by ``(index >> lowest) << 14 | lowest << 7
        # | inner`` (see ``inclusion_proof``; ``inner`` may be 64, so seven bits).
        self._paths: dict[int, tuple[bytes, ...]] = {}
        # Proof tails, keyed by ``size << 7 | inner``.
        self._tails: dict[int, tuple[bytes, ...]] = {}

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

    def inclusion_proof(self, store: StoredPath, index: int, size: int) -> list[bytes]:
        """``merkle.inclusion_proof`` of leaf ``index`` in the tree of ``size`` leaves,
        the same hashes, read from ``store`` and the kept levels (see the module's
        docstring): one call to the store for the levels under the kept ones, a
        dictionary look-up a kept level, and the tail kept for ``(size, inner)``.

        A position outside the tree goes to ``merkle.inclusion_proof``, which refuses
        it with its ``ProofError``.
        """
        if not 0 <= index < size:
            return merkle.inclusion_proof(store, index, size)
        inner = (index ^ (size - 1)).bit_length()
        tail = self._tails.get(size << 7 | inner)
        if tail is None:
            return self._first_of_tail(store, index, size, inner)
        perfect = inner - 1  # the perfect siblings of levels [0, perfect)
        lowest = size.bit_length() - LEVELS
        if lowest >= perfect:
            path = store.siblings(index, perfect) if perfect > 0 else []
        else:
            if lowest > 0:
                path = store.siblings(index, lowest)
            else:
                path, lowest = [], 0
            # The kept siblings depend on the subtree of ``index`` at ``lowest``, and
            # on ``inner`` where they stop.
            key = (index >> lowest) << 14 | lowest << 7 | inner
            kept = self._paths.get(key)
            if kept is None:
                kept = self._keep_path(store, index, lowest, perfect, key)
            path += kept
        path += tail
        return path

    def _keep_path(
        self, store: NodeReader, index: int, lowest: int, perfect: int, key: int
    ) -> tuple[bytes, ...]:
        """The siblings of ``index``'s path on levels ``[lowest, perfect)``, kept."""
        kept = self._hashes.get
        values = []
        for level in range(lowest, perfect):
            position = (index >> level) ^ 1
            value = kept(position << 6 | level)
            if value is None:
                value = store.node(level, position)
                self.keep(level, position, value)
            values.append(value)
        paths = self._paths
        if len(paths) >= MAX_PATHS:
            paths.clear()
        paths[key] = path = tuple(values)
        return path

    def _first_of_tail(self, store: StoredPath, index: int, size: int, inner: int) -> list[bytes]:
        """The general path's proof, whose tail is then kept for ``(size, inner)``."""
        proof = merkle.inclusion_proof(self.reader(store, size), index, size)
        tails = self._tails
        if len(tails) >= MAX_TAILS:
            tails.clear()
        tails[size << 7 | inner] = tuple(proof[max(inner - 1, 0) :])
        return proof


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


__all__ = [
    "LEVELS",
    "MAX_NODES",
    "MAX_PATHS",
    "MAX_TAILS",
    "CachedNodes",
    "StoredPath",
    "UpperNodes",
]
