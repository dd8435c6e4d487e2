"""``nodecache``: proofs read through the kept top of the tree equal proofs read from the store."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redlist.ledger import nodecache
from redlist.ledger.errors import ProofError
from redlist.ledger.merkle import MemoryTree, consistency_proof, inclusion_proof, leaf_hash
from redlist.ledger.nodecache import UpperNodes

LEAVES = [leaf_hash(b"leaf %d" % index) for index in range(5000)]
TREE = MemoryTree(LEAVES)


class Store:
    """The tree as a store: counts reads, and refuses subtrees not complete in ``size``."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.reads = 0

    def node(self, level: int, index: int) -> bytes:
        assert (index + 1) << level <= self.size, f"({level}, {index}) beyond {self.size}"
        self.reads += 1
        return TREE.node(level, index)

    def siblings(self, index: int, levels: int) -> list[bytes]:
        return [self.node(level, (index >> level) ^ 1) for level in range(levels)]


def _asks(most: int) -> st.SearchStrategy[list[tuple[int, int]]]:
    """Up to ``most`` proofs to ask for: (tree size, leaf index) pairs."""
    return st.lists(
        st.tuples(st.integers(1, len(LEAVES)), st.integers(0, len(LEAVES) - 1)),
        min_size=1,
        max_size=most,
    )


@settings(max_examples=200, deadline=None)
@given(asks=_asks(20))
def test_proofs_through_the_cache_are_the_store_s_proofs(asks: list[tuple[int, int]]) -> None:
    upper = UpperNodes()  # shared by every proof, of trees of growing and shrinking sizes
    for size, position in asks:
        index = position % size
        store = Store(size)
        assert inclusion_proof(upper.reader(store, size), index, size) == inclusion_proof(
            Store(size), index, size
        )
        first = index + 1
        assert consistency_proof(upper.reader(store, size), first, size) == consistency_proof(
            Store(size), first, size
        )
    assert len(upper) <= nodecache.MAX_NODES


def test_the_top_of_the_tree_is_read_once_and_the_cache_stays_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(nodecache, "LEVELS", 11)  # so that 5,000 leaves have levels below
    upper = UpperNodes()
    size = len(LEAVES)
    first, again = Store(size), Store(size)
    inclusion_proof(upper.reader(first, size), 1234, size)
    inclusion_proof(upper.reader(again, size), 1234, size)
    assert again.reads < first.reads  # the kept levels came from the cache
    # Below the kept levels (the two lowest for 5,000 leaves) the store is read again.
    assert 0 < again.reads <= size.bit_length() - nodecache.LEVELS
    monkeypatch.setattr(nodecache, "MAX_NODES", 8)
    small = UpperNodes()
    for index in range(0, size, 7):
        inclusion_proof(small.reader(Store(size), size), index, size)
        assert len(small) <= 8


@pytest.mark.parametrize(
    ("levels", "bound"), [(14, 1 << 15), (3, 1 << 15), (1, 1 << 15), (2, 4), (5, 1)]
)
@settings(max_examples=100, deadline=None)
@given(asks=_asks(40))
def test_proofs_built_in_one_pass_are_the_reference_proofs(
    levels: int, bound: int, asks: list[tuple[int, int]]
) -> None:
    """Random sizes and leaves, each asked twice (the second from what was kept), with
    few kept levels (so that the store gives the lowest siblings) and tiny bounds."""
    saved = nodecache.LEVELS, nodecache.MAX_NODES, nodecache.MAX_PATHS, nodecache.MAX_TAILS
    nodecache.LEVELS = levels
    nodecache.MAX_NODES = nodecache.MAX_PATHS = nodecache.MAX_TAILS = bound
    try:
        upper = UpperNodes()
        for size, position in asks + asks:
            index = position % size
            assert upper.inclusion_proof(Store(size), index, size) == inclusion_proof(
                TREE, index, size
            )
            assert len(upper) <= bound
            assert len(upper._paths) <= bound and len(upper._tails) <= bound
    finally:
        nodecache.LEVELS, nodecache.MAX_NODES, nodecache.MAX_PATHS, nodecache.MAX_TAILS = saved


def test_a_proof_built_in_one_pass_refuses_a_leaf_outside_the_tree() -> None:
    upper = UpperNodes()
    for index, size in [(5, 5), (-1, 5), (0, 0)]:
        with pytest.raises(ProofError):
            upper.inclusion_proof(Store(max(size, 0)), index, size)


def test_a_warm_proof_reads_only_the_levels_below_the_kept_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(nodecache, "LEVELS", 10)  # 4,096 leaves: levels 0 to 2 are read
    upper = UpperNodes()
    size = 4096
    upper.inclusion_proof(Store(size), 1234, size)
    again = Store(size)
    assert upper.inclusion_proof(again, 1234, size) == inclusion_proof(TREE, 1234, size)
    assert again.reads == 3
    neighbour = Store(size)  # another leaf in the same subtree of level 3: the same path
    upper.inclusion_proof(neighbour, 1233, size)
    assert neighbour.reads == 3
