"""``nodecache``: proofs read through the kept top of the tree equal proofs read from the store."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redlist.ledger import nodecache
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


@settings(max_examples=200, deadline=None)
@given(
    asks=st.lists(
        st.tuples(st.integers(1, len(LEAVES)), st.integers(0, len(LEAVES) - 1)),
        min_size=1,
        max_size=20,
    )
)
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
