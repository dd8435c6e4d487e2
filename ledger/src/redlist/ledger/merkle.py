"""The log's Merkle tree: hashing, tree heads, proofs and compact ranges.

This is RFC 6962 / RFC 9162 section 2 over SHA-256, byte for byte:

* leaf hash = SHA-256(0x00 || leaf bytes), interior node = SHA-256(0x01 || left || right);
  the two prefixes keep a leaf from ever being mistaken for an interior node;
* the tree of ``n > 1`` leaves splits at ``k``, the largest power of two below ``n``:
  its root is ``node_hash(MTH(leaves[:k]), MTH(leaves[k:]))``; the empty tree's root is
  SHA-256 of the empty string;
* inclusion and consistency proofs are the RFC's audit paths, lowest hash first.

Storage model. A store keeps only *perfect* subtrees: ``(level, index)`` names the
subtree of ``2**level`` leaves covering ``[index << level, (index + 1) << level)``.
A perfect subtree never changes once its last leaf is appended, so it can be written
once and read forever. A tree whose size is not a power of two also has subtrees on
its right border that are not perfect ("ephemeral"); their hashes are computed on
demand from the perfect subtrees of the binary decomposition of what they cover.
Every function here that takes a :class:`NodeReader` reads ``O(log n)`` nodes and
never rehashes leaves.

The module is pure (no I/O). Every refusal is a :class:`ProofError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Protocol

from redlist.ledger.errors import ProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "MemoryTree",
    "NodeReader",
    "consistency_proof",
    "consistency_roots",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "nodes_to_store",
    "root_at",
    "root_of",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()

# Hash states with the domain-separation prefix already absorbed; copying one is
# measurably cheaper than hashing a freshly concatenated buffer, and proofs are hot.
_LEAF_PREFIXED = hashlib.sha256(b"\x00")
_NODE_PREFIXED = hashlib.sha256(b"\x01")


def leaf_hash(leaf: bytes) -> bytes:
    """SHA-256(0x00 || leaf): the hash of one log leaf (the exact stored bytes)."""
    state = _LEAF_PREFIXED.copy()
    state.update(leaf)
    return state.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node."""
    state = _NODE_PREFIXED.copy()
    state.update(left)
    state.update(right)
    return state.digest()


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of a whole list of leaf hashes, straight from the RFC definition.

    This is the reference implementation: it touches every leaf, so it is meant for
    tests and small trees. Stores use :func:`root_at`.
    """
    count = len(leaf_hashes)
    if count == 0:
        return EMPTY_ROOT
    if count == 1:
        return leaf_hashes[0]
    split = 1 << ((count - 1).bit_length() - 1)  # largest power of two below count
    return node_hash(root_of(leaf_hashes[:split]), root_of(leaf_hashes[split:]))


class NodeReader(Protocol):
    """Read access to the perfect subtrees of a tree (what a store keeps)."""

    def node(self, level: int, index: int) -> bytes:
        """The hash of the perfect subtree ``(level, index)``.

        It covers leaves ``[index << level, (index + 1) << level)``; level 0 holds the
        leaf hashes. Callers here only ask for subtrees whose leaves have all been
        appended.
        """
        ...


def nodes_to_store(
    index: int, leaf_hash: bytes, reader: NodeReader
) -> list[tuple[int, int, bytes]]:
    """The perfect subtrees ``(level, index, hash)`` completed by appending leaf ``index``.

    Level 0 (the leaf itself) comes first, then one node per level for as long as the
    new subtree is a right child; each step reads its left sibling, so the reads are
    the number of trailing one bits of ``index``. ``reader`` must already hold leaves
    ``[0, index)``; a store writes the returned nodes in the same transaction as the leaf.
    """
    _check_hash(leaf_hash, "leaf hash")
    if index < 0:
        raise ProofError(f"leaf index {index} is negative")
    subtree_hash = leaf_hash
    completed = [(0, index, subtree_hash)]
    level = 0
    position = index
    read = reader.node
    while position & 1:
        subtree_hash = node_hash(read(level, position - 1), subtree_hash)
        position >>= 1
        level += 1
        completed.append((level, position, subtree_hash))
    return completed


def root_at(reader: NodeReader, size: int) -> bytes:
    """The root of the first ``size`` leaves, from ``popcount(size)`` perfect subtrees."""
    if size < 0:
        raise ProofError(f"tree size {size} is negative")
    if size == 0:
        return EMPTY_ROOT
    return _range_root(reader, 0, size)


def inclusion_proof(reader: NodeReader, index: int, size: int) -> list[bytes]:
    """The audit path proving leaf ``index`` is in the tree of the first ``size`` leaves.

    Lowest level first, as RFC 9162 section 2.1.3.1 orders it.
    """
    _check_leaf_position(index, size)
    return _audit_path(reader, index, size, 0)


def consistency_proof(reader: NodeReader, size1: int, size2: int) -> list[bytes]:
    """The proof that the tree of ``size1`` leaves is a prefix of the tree of ``size2``.

    Empty when ``size1`` is 0 or equals ``size2`` (nothing to prove; see
    :func:`verify_consistency`). Otherwise it is RFC 9162 section 2.1.4.1's proof,
    built directly: the largest perfect subtree ending at ``size1`` (left out when it is
    the whole old tree, because the verifier already has that root), then that
    subtree's audit path in the new tree.
    """
    _check_sizes(size1, size2)
    if size1 == 0 or size1 == size2:
        return []
    level = _trailing_zeros(size1)
    proof = [] if size1 == 1 << level else [reader.node(level, (size1 >> level) - 1)]
    proof.extend(_audit_path(reader, size1 - 1, size2, level))
    return proof


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``proof`` puts ``leaf_hash`` at ``index`` in the tree (``size``, ``root``).

    Returns nothing on success and raises :class:`ProofError` otherwise.
    """
    _check_leaf_position(index, size)
    _check_hash(leaf_hash, "leaf hash")
    _check_hash(root, "root hash")
    last = size - 1
    inner = (index ^ last).bit_length()
    border = (index >> inner).bit_count()
    _check_proof_shape(
        proof,
        inner + border,
        f"inclusion proof for leaf {index} in a tree of {size} leaves",
    )
    computed = leaf_hash
    for level in range(inner):
        sibling = proof[level]
        if (index >> level) & 1:
            computed = node_hash(sibling, computed)
        else:
            computed = node_hash(computed, sibling)
    for sibling in proof[inner:]:
        computed = node_hash(sibling, computed)
    if computed != root:
        raise ProofError(
            f"leaf {index} is not proven to be in the tree of {size} leaves: "
            f"the proof leads to root {computed.hex()}, the expected root is {root.hex()}"
        )


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree (``size1``, ``root1``) is a prefix of the tree (``size2``, ``root2``).

    Our rule for the degenerate cases (RFC 9162 leaves them to the application):

    * ``size1 > size2`` is always refused: a log never shrinks;
    * ``size1 == size2`` needs an empty proof and ``root1 == root2`` (compared as given);
    * ``size1 == 0 < size2`` needs an empty proof and nothing else: the empty tree is a
      prefix of every tree, so ``root1`` and ``root2`` are not examined. This is C2SP
      tlog-witness's rule; some libraries refuse size 0 instead.

    Returns nothing on success and raises :class:`ProofError` otherwise.
    """
    _check_sizes(size1, size2)
    if size1 == size2:
        if proof:
            raise ProofError(
                f"a consistency proof between two trees of {size1} leaves must be empty, "
                f"it has {len(proof)} hashes"
            )
        if root1 != root2:
            raise ProofError(
                f"two different roots for the same tree size {size1}: "
                f"{root1.hex()} and {root2.hex()}; the log has shown two histories"
            )
        return
    if size1 == 0:
        if proof:
            raise ProofError(
                f"a consistency proof from the empty tree must be empty, it has {len(proof)} hashes"
            )
        return
    _check_hash(root1, "old root hash")
    _check_hash(root2, "new root hash")
    seeded = size1 == 1 << _trailing_zeros(size1)
    # The RFC form leaves out the seed when it is the old root itself.
    expected = _consistency_path_length(size1, size2) - (1 if seeded else 0)
    _check_proof_shape(proof, expected, f"consistency proof from {size1} to {size2} leaves")
    old, new = consistency_roots(size1, size2, [root1, *proof] if seeded else proof)
    if old != root1:
        raise ProofError(
            f"consistency proof from {size1} to {size2} leaves does not reproduce the old root: "
            f"got {old.hex()}, expected {root1.hex()}"
        )
    if new != root2:
        raise ProofError(
            f"consistency proof from {size1} to {size2} leaves does not reproduce the new root: "
            f"got {new.hex()}, expected {root2.hex()}; the new tree does not extend the old one"
        )


def consistency_roots(size1: int, size2: int, path: Sequence[bytes]) -> tuple[bytes, bytes]:
    """The roots at ``size1`` and ``size2`` that a consistency ``path`` reproduces.

    ``path`` is the RFC 9162 proof with its seed always first: when ``size1`` is a power
    of two the RFC leaves the seed out (it is the old root itself), and here it must be
    given. Used by :func:`verify_consistency`, and by split-view evidence: a path that
    reproduces a log's new root and another old root than the log signed proves that
    the log's tree at ``size1`` was not the one it signed. ``0 < size1 < size2``.
    """
    if not 0 < size1 < size2:
        raise ProofError(f"consistency roots need 0 < size1 < size2, not {size1} and {size2}")
    level = _trailing_zeros(size1)
    last1 = size1 - 1
    inner = (last1 ^ (size2 - 1)).bit_length()
    expected = _consistency_path_length(size1, size2)
    _check_proof_shape(path, expected, f"consistency path from {size1} to {size2} leaves")
    old = new = path[0]
    position = 1
    for path_level in range(level, inner):
        sibling = path[position]
        position += 1
        if (last1 >> path_level) & 1:
            old = node_hash(sibling, old)
            new = node_hash(sibling, new)
        else:
            # A right sibling exists only in the new tree: the old tree's border stops here.
            new = node_hash(new, sibling)
    for sibling in path[position:]:
        old = node_hash(sibling, old)
        new = node_hash(sibling, new)
    return old, new


class CompactRange:
    """The hashes of the perfect subtrees that make up leaves ``[0, end)``, largest first.

    There is one subtree per one bit of ``end`` (a subtree of ``2**k`` leaves for bit
    ``k``), so the range is ``O(log n)`` hashes, yet it is enough to append further leaves
    and to compute the root at any later size. This is the bundle's ``left`` field.
    Only ranges starting at leaf 0 are supported; they are the only ones with a root.
    """

    __slots__ = ("_end", "_hashes")

    def __init__(self) -> None:
        """An empty range (no leaves)."""
        self._end = 0
        self._hashes: list[bytes] = []

    @classmethod
    def from_hashes(cls, end: int, hashes: Sequence[bytes]) -> CompactRange:
        """A range of ``end`` leaves from its subtree hashes (largest first)."""
        if end < 0:
            raise ProofError(f"a compact range cannot end at the negative leaf count {end}")
        expected = end.bit_count()
        if len(hashes) != expected:
            raise ProofError(
                f"a compact range of {end} leaves has {expected} subtree hashes, got {len(hashes)}"
            )
        for position, subtree_hash in enumerate(hashes):
            _check_hash(subtree_hash, f"compact range hash {position}")
        compact = cls()
        compact._end = end
        compact._hashes = [bytes(subtree_hash) for subtree_hash in hashes]
        return compact

    @classmethod
    def from_reader(cls, reader: NodeReader, end: int) -> CompactRange:
        """The range ``[0, end)`` of a stored tree (reads ``popcount(end)`` nodes)."""
        if end < 0:
            raise ProofError(f"a compact range cannot end at the negative leaf count {end}")
        return cls.from_hashes(
            end,
            [reader.node(level, start >> level) for level, start in _decompose(0, end)],
        )

    @property
    def end(self) -> int:
        """The number of leaves covered."""
        return self._end

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The subtree hashes, largest subtree first."""
        return tuple(self._hashes)

    def append(self, leaf_hash: bytes) -> None:
        """Extend the range by one leaf, merging the equal-sized subtrees it completes."""
        if len(leaf_hash) != HASH_SIZE:  # ``_check_hash`` inline: this runs for every leaf
            _check_hash(leaf_hash, "leaf hash")
        subtree_hash = leaf_hash
        remaining = self._end
        hashes = self._hashes
        while remaining & 1:
            state = _NODE_PREFIXED.copy()  # ``node_hash`` inline, as above
            state.update(hashes.pop())
            state.update(subtree_hash)
            subtree_hash = state.digest()
            remaining >>= 1
        hashes.append(subtree_hash)
        self._end += 1

    def append_completing(self, leaf_hash: bytes) -> list[tuple[int, int, bytes]]:
        """``append``, returning the perfect subtrees ``(level, index, hash)`` the leaf
        completes: what ``nodes_to_store`` gives for it, from the range's own hashes
        (the left siblings it merges) instead of reads of a stored tree."""
        _check_hash(leaf_hash, "leaf hash")
        position = self._end
        subtree_hash = leaf_hash
        completed = [(0, position, subtree_hash)]
        hashes = self._hashes
        level = 0
        while position & 1:
            subtree_hash = node_hash(hashes.pop(), subtree_hash)
            position >>= 1
            level += 1
            completed.append((level, position, subtree_hash))
        hashes.append(subtree_hash)
        self._end += 1
        return completed

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append each leaf hash in turn."""
        for one_leaf_hash in leaf_hashes:
            self.append(one_leaf_hash)

    def root(self) -> bytes:
        """The root of the tree of the first ``end`` leaves."""
        return _fold_right(self._hashes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._end == other._end and self._hashes == other._hashes

    def __hash__(self) -> int:
        return hash((self._end, tuple(self._hashes)))

    def __repr__(self) -> str:
        return f"CompactRange(end={self._end}, hashes={len(self._hashes)})"


class MemoryTree:
    """A tree held in memory: every perfect subtree in a dict, leaves appended one by one.

    It is a :class:`NodeReader`, so the proof functions work on it directly. Used by
    tests and by callers that need a tree without a store.
    """

    __slots__ = ("_nodes", "_size")

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._nodes: dict[tuple[int, int], bytes] = {}
        self._size = 0
        for one_leaf_hash in leaf_hashes:
            self.append(one_leaf_hash)

    @property
    def size(self) -> int:
        """The number of leaves appended."""
        return self._size

    def append(self, leaf_hash: bytes) -> int:
        """Append one leaf hash; returns its index."""
        index = self._size
        for level, position, subtree_hash in nodes_to_store(index, leaf_hash, self):
            self._nodes[level, position] = subtree_hash
        self._size = index + 1
        return index

    def node(self, level: int, index: int) -> bytes:
        """The perfect subtree ``(level, index)``; refused when it is not complete yet."""
        try:
            return self._nodes[level, index]
        except KeyError:
            raise ProofError(
                f"the tree has {self._size} leaves, so it has no complete subtree "
                f"of {1 << level} leaves starting at leaf {index << level}"
            ) from None

    def root(self) -> bytes:
        """The root of the whole tree."""
        return root_at(self, self._size)


def _decompose(begin: int, end: int) -> list[tuple[int, int]]:
    """``(level, first leaf)`` of the perfect subtrees covering ``[begin, end)``, largest first.

    ``begin`` must be a multiple of a power of two at least ``end - begin`` (true for 0,
    and for the right sibling of any node on an audit path), so the pieces are aligned.
    """
    pieces = []
    start = begin
    remaining = end - begin
    while remaining:
        level = remaining.bit_length() - 1
        pieces.append((level, start))
        start += 1 << level
        remaining -= 1 << level
    return pieces


def _range_root(reader: NodeReader, begin: int, end: int) -> bytes:
    """The hash of the (possibly ephemeral) subtree over ``[begin, end)``; see _decompose."""
    read = reader.node
    return _fold_right([read(level, start >> level) for level, start in _decompose(begin, end)])


def _fold_right(subtree_hashes: Sequence[bytes]) -> bytes:
    """Join subtree hashes, largest first, into one root: the smaller ones merge first."""
    if not subtree_hashes:
        return EMPTY_ROOT
    combined = subtree_hashes[-1]
    for position in range(len(subtree_hashes) - 2, -1, -1):
        combined = node_hash(subtree_hashes[position], combined)
    return combined


def _audit_path(reader: NodeReader, index: int, size: int, from_level: int) -> list[bytes]:
    """The siblings, from ``from_level`` up, on the path from leaf ``index`` to the root.

    Below level ``inner`` (where the paths of ``index`` and of the last leaf part) every
    sibling is a perfect subtree, except the one at ``inner - 1``: the right sibling that
    holds the last leaf, possibly ephemeral. From ``inner`` up the path runs along the
    right border, where only left siblings exist. ``from_level`` is 0 (inclusion) or
    below ``inner`` (consistency, where the path starts at the old tree's last subtree).
    """
    read = reader.node
    inner = (index ^ (size - 1)).bit_length()
    path = [read(level, (index >> level) ^ 1) for level in range(from_level, inner - 1)]
    if inner > from_level:
        sibling_start = ((index >> (inner - 1)) | 1) << (inner - 1)
        path.append(_range_root(reader, sibling_start, size))
    upper = index >> inner
    level = inner
    while upper:
        if upper & 1:
            path.append(read(level, upper - 1))
        upper >>= 1
        level += 1
    return path


def _trailing_zeros(value: int) -> int:
    return (value & -value).bit_length() - 1


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} must be {HASH_SIZE} bytes, got {len(value)}")


def _check_leaf_position(index: int, size: int) -> None:
    if size <= 0:
        raise ProofError(f"a tree of {size} leaves has no leaf {index} to prove")
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is outside the tree of {size} leaves")


def _check_sizes(size1: int, size2: int) -> None:
    if size1 < 0 or size2 < 0:
        raise ProofError(f"tree sizes cannot be negative (got {size1} and {size2})")
    if size1 > size2:
        raise ProofError(
            f"the old tree ({size1} leaves) is larger than the new one ({size2} leaves); "
            "a log never shrinks"
        )


def _consistency_path_length(size1: int, size2: int) -> int:
    """Hashes in a consistency path, seed included, from ``size1`` to ``size2`` leaves."""
    last1 = size1 - 1
    inner = (last1 ^ (size2 - 1)).bit_length()
    return 1 + (inner - _trailing_zeros(size1)) + (last1 >> inner).bit_count()


def _check_proof_shape(proof: Sequence[bytes], expected: int, what: str) -> None:
    if len(proof) != expected:
        raise ProofError(f"{what} must have {expected} hashes, got {len(proof)}")
    for position, proof_hash in enumerate(proof):
        _check_hash(proof_hash, f"hash {position} of the {what}")
