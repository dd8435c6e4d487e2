"""A run of leaves proved by its two boundary proofs (``merklerange``, ADR 0050)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redlist.ledger import merkle
from redlist.ledger.errors import ProofError
from redlist.ledger.merklerange import path_ranges, range_root


def _leaves(count: int, salt: int = 0) -> list[bytes]:
    return [merkle.leaf_hash(b"leaf %d/%d" % (salt, number)) for number in range(count)]


@st.composite
def _runs(draw: st.DrawFn) -> tuple[int, int, int]:
    size = draw(st.integers(1, 300))
    first = draw(st.integers(0, size - 1))
    end = draw(st.integers(first + 1, size))
    return size, first, end


def _proved(
    size: int, first: int, end: int
) -> tuple[list[bytes], merkle.MemoryTree, list[bytes], list[bytes]]:
    """A tree's leaves, the tree, and the proofs of the run's first and last leaves."""
    leaves = _leaves(size)
    tree = merkle.MemoryTree(leaves)
    return (
        leaves,
        tree,
        merkle.inclusion_proof(tree, first, size),
        merkle.inclusion_proof(tree, end - 1, size),
    )


@given(_runs())
@settings(max_examples=300, deadline=None)
def test_a_run_and_its_boundary_proofs_give_the_trees_root(run: tuple[int, int, int]) -> None:
    size, first, end = run
    leaves, tree, first_proof, last_proof = _proved(size, first, end)
    assert range_root(size, first, leaves[first:end], first_proof, last_proof) == tree.root()


@given(_runs(), st.data())
@settings(max_examples=300, deadline=None)
def test_any_changed_leaf_of_the_run_changes_the_root(
    run: tuple[int, int, int], data: st.DataObject
) -> None:
    size, first, end = run
    leaves, tree, first_proof, last_proof = _proved(size, first, end)
    changed = data.draw(st.integers(first, end - 1))
    forged = leaves[first:end]
    forged[changed - first] = hashlib.sha256(b"forged").digest()
    assert range_root(size, first, forged, first_proof, last_proof) != tree.root()
    # Nor does moving the run (a leaf claimed at another position) keep the root.
    if end < size:
        moved = range_root(
            size,
            first + 1,
            leaves[first:end],
            merkle.inclusion_proof(tree, first + 1, size),
            merkle.inclusion_proof(tree, end, size),
        )
        assert moved != tree.root()


@given(_runs())
@settings(max_examples=200, deadline=None)
def test_the_ranges_are_those_of_the_proof(run: tuple[int, int, int]) -> None:
    size, index, _end = run
    leaves = _leaves(size)
    tree = merkle.MemoryTree(leaves)
    proof = merkle.inclusion_proof(tree, index, size)
    ranges = path_ranges(index, size)
    assert len(ranges) == len(proof)
    for (begin, end), value in zip(ranges, proof, strict=True):
        assert not begin <= index < end  # beside the path, never on it
        assert merkle.root_of(leaves[begin:end]) == value


def test_proofs_of_the_wrong_shape_or_that_disagree_are_refused() -> None:
    leaves, _tree, first_proof, last_proof = _proved(13, 2, 6)
    with pytest.raises(ProofError, match="has 3 hashes, not 4"):
        range_root(13, 2, leaves[2:6], first_proof[:-1], last_proof)
    # Both proofs name the subtree of leaves 8 to 12: a node that answers two of them
    # differently is refused by name.
    other = [*last_proof[:-1], hashlib.sha256(b"other").digest()]
    with pytest.raises(ProofError, match="disagree about the subtree of leaves 8 to 12"):
        range_root(13, 2, leaves[2:6], first_proof, other)
    with pytest.raises(ProofError, match="not a run"):
        range_root(13, 10, leaves[10:14] + leaves[:1], first_proof, last_proof)
    with pytest.raises(ProofError, match="32 bytes"):
        range_root(13, 2, [b"short", *leaves[3:6]], first_proof, last_proof)
