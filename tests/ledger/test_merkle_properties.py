"""Properties of the Merkle tree, checked against the RFC 9162 definitions written out here.

Small trees are checked exhaustively, larger ones (up to ``MAX_SIZE`` leaves) by sampling.
The references below follow the RFC's recursive definitions literally (slow, obviously
right); the module under test uses iterative O(log n) algorithms over perfect subtrees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redlist.ledger.errors import ProofError
from redlist.ledger.merkle import (
    CompactRange,
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    nodes_to_store,
    root_at,
    root_of,
    verify_consistency,
    verify_inclusion,
)

MAX_SIZE = 300
EXHAUSTIVE_SIZE = 64  # every (index, size) and (size1, size2) pair up to here
LEAVES = [leaf_hash(b"leaf %d" % index) for index in range(MAX_SIZE)]
TREE = MemoryTree(LEAVES)
ROOTS = [root_of(LEAVES[:size]) for size in range(MAX_SIZE + 1)]
FOREIGN = leaf_hash(b"a hash from some other tree")


# --- RFC 9162 references -----------------------------------------------------------------


def _split(count: int) -> int:
    """The largest power of two strictly below ``count`` (count >= 2)."""
    split = 1
    while split * 2 < count:
        split *= 2
    return split


def reference_path(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 section 2.1.3.1."""
    if len(leaves) == 1:
        return []
    split = _split(len(leaves))
    if index < split:
        return [*reference_path(index, leaves[:split]), root_of(leaves[split:])]
    return [*reference_path(index - split, leaves[split:]), root_of(leaves[:split])]


def reference_subproof(size1: int, leaves: Sequence[bytes], whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 9162 section 2.1.4.1."""
    if size1 == len(leaves):
        return [] if whole else [root_of(leaves)]
    split = _split(len(leaves))
    if size1 <= split:
        return [*reference_subproof(size1, leaves[:split], whole), root_of(leaves[split:])]
    return [*reference_subproof(size1 - split, leaves[split:], False), root_of(leaves[:split])]


def rfc_accepts_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """The verification procedure of RFC 9162 section 2.1.3.2, step by step."""
    if index >= size:
        return False
    first, last, result = index, size - 1, leaf
    for sibling in proof:
        if last == 0:
            return False
        if first & 1 or first == last:
            result = node_hash(sibling, result)
            if not first & 1:
                while first and not first & 1:
                    first >>= 1
                    last >>= 1
        else:
            result = node_hash(result, sibling)
        first >>= 1
        last >>= 1
    return last == 0 and result == root


def rfc_accepts_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> bool:
    """The verification procedure of RFC 9162 section 2.1.4.2, for 0 < size1 < size2."""
    if not proof:
        return False
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    first, last = size1 - 1, size2 - 1
    while first & 1:
        first >>= 1
        last >>= 1
    old = new = path[0]
    for sibling in path[1:]:
        if last == 0:
            return False
        if first & 1 or first == last:
            old = node_hash(sibling, old)
            new = node_hash(sibling, new)
            if not first & 1:
                while first and not first & 1:
                    first >>= 1
                    last >>= 1
        else:
            new = node_hash(new, sibling)
        first >>= 1
        last >>= 1
    return old == root1 and new == root2 and last == 0


# --- helpers ---------------------------------------------------------------------------------


class CountingReader:
    """Wraps a tree; records reads and refuses any subtree not complete within ``size`` leaves."""

    def __init__(self, tree: MemoryTree, size: int) -> None:
        self.tree = tree
        self.size = size
        self.reads = 0

    def node(self, level: int, index: int) -> bytes:
        assert (index + 1) << level <= self.size, (
            f"read ({level}, {index}) beyond {self.size} leaves"
        )
        self.reads += 1
        return self.tree.node(level, index)


def flip_bit(value: bytes, bit: int) -> bytes:
    altered = bytearray(value)
    altered[bit // 8 % len(altered)] ^= 1 << (bit % 8)
    return bytes(altered)


def tampered_proofs(proof: Sequence[bytes]) -> Iterator[tuple[str, list[bytes]]]:
    """Every single-hash change, every single drop, and an extra hash at every position."""
    for position in range(len(proof)):
        for bit in (0, 131, 255):
            altered = list(proof)
            altered[position] = flip_bit(proof[position], bit)
            yield f"bit {bit} of hash {position} flipped", altered
        yield f"hash {position} dropped", [*proof[:position], *proof[position + 1 :]]
    for position in range(len(proof) + 1):
        for extra in (FOREIGN, proof[position - 1] if position else FOREIGN):
            yield f"extra hash at {position}", [*proof[:position], extra, *proof[position:]]


def refuses(verify: Callable[..., None], *arguments: object) -> bool:
    """True when ``verify(*arguments)`` raises ProofError, False when it returns."""
    try:
        verify(*arguments)
    except ProofError:
        return True
    return False


def other_values(value: int, limit: int) -> set[int]:
    """Nearby and bit-twiddled neighbours of ``value`` in ``[0, limit)``, without ``value``."""
    candidates = {
        value - 1,
        value + 1,
        value ^ 1,
        value ^ 2,
        value * 2,
        value // 2,
        value + 8,
        limit - 1,
    }
    return {candidate for candidate in candidates if 0 <= candidate < limit and candidate != value}


# --- the properties ----------------------------------------------------------------------------


def check_inclusion(index: int, size: int) -> None:
    reader = CountingReader(TREE, size)
    proof = inclusion_proof(reader, index, size)
    assert proof == reference_path(index, LEAVES[:size])
    assert reader.reads <= 2 * size.bit_length()
    leaf, root = LEAVES[index], ROOTS[size]
    verify_inclusion(leaf, index, size, proof, root)

    for what, altered in tampered_proofs(proof):
        assert refuses(verify_inclusion, leaf, index, size, altered, root), what
    assert refuses(verify_inclusion, FOREIGN, index, size, proof, root)
    assert refuses(verify_inclusion, leaf, index, size, proof, flip_bit(root, 7))
    assert refuses(verify_inclusion, leaf, index, size, proof, ROOTS[size - 1])
    for other_index in {*other_values(index, size), size, size + 1}:
        assert refuses(verify_inclusion, leaf, other_index, size, proof, root), other_index
    # The proof does not encode the tree size: a proof for size n can also fit another size
    # with the same path shape. The signed checkpoint binds size and root together; here we
    # require exactly the RFC verifier's verdict for every other size.
    for other_size in other_values(size, MAX_SIZE + 1) - {0}:
        ours = not refuses(verify_inclusion, leaf, index, other_size, proof, root)
        assert ours == rfc_accepts_inclusion(leaf, index, other_size, proof, root), other_size


def check_consistency(size1: int, size2: int) -> None:
    reader = CountingReader(TREE, size2)
    proof = consistency_proof(reader, size1, size2)
    root1, root2 = ROOTS[size1], ROOTS[size2]
    if size1 == 0 or size1 == size2:
        assert proof == []
    else:
        assert proof == reference_subproof(size1, LEAVES[:size2], True)
    assert reader.reads <= 2 * size2.bit_length() + 1
    verify_consistency(size1, size2, proof, root1, root2)

    for what, altered in tampered_proofs(proof):
        assert refuses(verify_consistency, size1, size2, altered, root1, root2), what
    if not proof:
        assert refuses(verify_consistency, size1, size2, [FOREIGN], root1, root2)
    if size1 == 0 < size2:
        # Our size-0 rule: with an empty proof, neither root is examined.
        verify_consistency(size1, size2, proof, flip_bit(root1, 9), flip_bit(root2, 9))
    else:
        assert refuses(verify_consistency, size1, size2, proof, flip_bit(root1, 9), root2)
        assert refuses(verify_consistency, size1, size2, proof, root1, flip_bit(root2, 9))
    if 0 < size1 < size2:
        assert refuses(verify_consistency, size1, size2, proof, root2, root1)
        # As with inclusion, the sizes are bound by the signed checkpoints, not the proof;
        # for other sizes we require exactly the RFC verifier's verdict.
        for other1 in other_values(size1, size2) - {0}:
            ours = not refuses(verify_consistency, other1, size2, proof, root1, root2)
            assert ours == rfc_accepts_consistency(other1, size2, proof, root1, root2), other1
        for other2 in other_values(size2, MAX_SIZE + 1) - set(range(size1 + 1)):
            ours = not refuses(verify_consistency, size1, other2, proof, root1, root2)
            assert ours == rfc_accepts_consistency(size1, other2, proof, root1, root2), other2
        assert refuses(verify_consistency, size2, size1, proof, root2, root1)


def test_inclusion_exhaustively_for_small_trees() -> None:
    for size in range(1, EXHAUSTIVE_SIZE + 1):
        for index in range(size):
            check_inclusion(index, size)


def test_consistency_exhaustively_for_small_trees() -> None:
    for size2 in range(EXHAUSTIVE_SIZE + 1):
        for size1 in range(size2 + 1):
            check_consistency(size1, size2)


@st.composite
def index_and_size(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(min_value=EXHAUSTIVE_SIZE + 1, max_value=MAX_SIZE))
    return draw(st.integers(min_value=0, max_value=size - 1)), size


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    size2 = draw(st.integers(min_value=EXHAUSTIVE_SIZE + 1, max_value=MAX_SIZE))
    return draw(st.integers(min_value=0, max_value=size2)), size2


@settings(max_examples=200, deadline=None)
@given(index_and_size())
def test_inclusion_in_larger_trees(pair: tuple[int, int]) -> None:
    check_inclusion(*pair)


@settings(max_examples=200, deadline=None)
@given(two_sizes())
def test_consistency_in_larger_trees(pair: tuple[int, int]) -> None:
    check_consistency(*pair)


def test_roots_agree_with_the_definition_at_every_size() -> None:
    compact = CompactRange()
    for size in range(MAX_SIZE + 1):
        reader = CountingReader(TREE, size)
        assert root_at(reader, size) == ROOTS[size], size
        assert reader.reads == size.bit_count()
        assert compact.root() == ROOTS[size], size
        assert compact.end == size and len(compact.hashes) == size.bit_count()
        if size < MAX_SIZE:
            compact.append(LEAVES[size])


def test_a_compact_range_completes_the_subtrees_a_stored_tree_would() -> None:
    """append_completing gives what nodes_to_store reads and hashes, leaf after leaf."""
    tree = MemoryTree()
    compact = CompactRange()
    for index in range(130):
        expected = nodes_to_store(index, LEAVES[index], tree)
        assert compact.append_completing(LEAVES[index]) == expected, index
        tree.append(LEAVES[index])
        assert compact.end == index + 1 and compact.root() == ROOTS[index + 1]
    started = CompactRange.from_reader(tree, 77)  # from a stored tree, as the node does
    assert started.append_completing(LEAVES[77]) == nodes_to_store(77, LEAVES[77], tree)


def test_memory_tree_holds_exactly_the_perfect_subtrees() -> None:
    """Built through nodes_to_store, every complete subtree is stored and none other."""
    tree = MemoryTree()
    for size in range(1, 130):
        reader = CountingReader(tree, size - 1)
        completed = nodes_to_store(size - 1, LEAVES[size - 1], reader)
        trailing_ones = ((size - 1) ^ size).bit_length() - 1
        assert reader.reads == trailing_ones
        assert [(level, index) for level, index, _ in completed] == [
            (level, (size - 1) >> level) for level in range(trailing_ones + 1)
        ]
        tree.append(LEAVES[size - 1])
        for level in range(size.bit_length()):
            for index in range(size >> level):
                expected = root_of(LEAVES[index << level : (index + 1) << level])
                assert tree.node(level, index) == expected, (size, level, index)
            with pytest.raises(ProofError):
                tree.node(level, size >> level)
        assert tree.size == size


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=MAX_SIZE), st.data())
def test_compact_range_resumes_from_its_hashes(start: int, data: st.DataObject) -> None:
    """What a bundle does: take [0, start) from a store, carry on with the leaves after it."""
    end = data.draw(st.integers(min_value=start, max_value=MAX_SIZE))
    reader = CountingReader(TREE, start)
    left = CompactRange.from_reader(reader, start)
    assert reader.reads == start.bit_count()
    assert left.root() == ROOTS[start]
    resumed = CompactRange.from_hashes(left.end, left.hashes)
    assert resumed == left
    resumed.extend(LEAVES[start:end])
    assert resumed.root() == ROOTS[end]
    assert resumed == CompactRange.from_reader(TREE, end)


@pytest.mark.parametrize("size", [2**40, 2**40 + 1, 2**41 - 1, 3 * 2**38 + 12345])
def test_proofs_read_logarithmically_many_nodes_in_huge_trees(size: int) -> None:
    """No leaf rehashing and no O(log^2 n) reads, even for a trillion leaves."""

    class SyntheticReader:
        def __init__(self) -> None:
            self.reads = 0

        def node(self, level: int, index: int) -> bytes:
            assert (index + 1) << level <= size
            self.reads += 1
            return leaf_hash(b"%d/%d" % (level, index))

    bound = 2 * size.bit_length() + 1
    for index in (0, 1, size // 3, size // 2, size - 2, size - 1):
        reader = SyntheticReader()
        proof = inclusion_proof(reader, index, size)
        assert reader.reads <= bound and len(proof) <= size.bit_length()
        reader = SyntheticReader()
        consistency_proof(reader, index + 1, size)
        assert reader.reads <= bound
    reader = SyntheticReader()
    root_at(reader, size)
    assert reader.reads == size.bit_count()
