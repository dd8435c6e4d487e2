"""Inclusion proofs from a real store (``Log.inclusion_proof``) are the reference proofs.

The log is small, so the kept levels (``nodecache.LEVELS``) are lowered for these tests:
the lowest siblings then come from LMDB in one call, the others from what was kept.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.builders import Town, create_log
from tests.rawstore import ENV_DIR_NAME, node_key, raw_tables

from redlist.ledger import merkle, nodecache
from redlist.ledger.errors import IntegrityError, ProofError
from redlist.ledger.log import Log

SIZE = 70


@pytest.fixture(scope="module")
def grown(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[bytes]]]:
    """A log of 70 entries appended in batches of growing size, and its leaf hashes."""
    town = Town.generate()
    data = tmp_path_factory.mktemp("proofs") / "data"
    with create_log(data, town, setup=True) as log:
        batch = 1
        while log.size < SIZE:
            count = min(batch, SIZE - log.size)
            log.append(
                [town.award(f"resident-{n % 3}", "clean-pond") for n in range(count)],
                now_ms=town.now_ms,
            )
            batch += 1
        leaf_hashes = [merkle.leaf_hash(leaf) for _, leaf in log.leaves(0, SIZE)]
    yield data, leaf_hashes


@pytest.mark.parametrize("levels", [1, 2, 3, 5, nodecache.LEVELS])
def test_every_proof_from_the_store_is_the_reference_proof(
    grown: tuple[Path, list[bytes]], levels: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, leaf_hashes = grown
    monkeypatch.setattr(nodecache, "LEVELS", levels)
    tree = merkle.MemoryTree(leaf_hashes)
    asks = [(seq, size) for size in range(1, SIZE + 1) for seq in range(size)]
    random.Random(levels).shuffle(asks)  # noqa: S311
    with Log.open(data, readonly=True) as log:
        for seq, size in asks + asks:  # the second time from what was kept
            assert log.inclusion_proof(seq, size) == merkle.inclusion_proof(tree, seq, size)


def test_a_size_beyond_the_log_is_refused_after_proofs_in_smaller_trees(
    grown: tuple[Path, list[bytes]],
) -> None:
    data, _ = grown
    with Log.open(data, readonly=True) as log:
        log.inclusion_proof(3, SIZE)
        for seq, size in [(3, SIZE + 1), (SIZE, SIZE), (0, 0), (0, -1)]:
            with pytest.raises(ProofError):
                log.inclusion_proof(seq, size)


def test_a_tree_appended_after_the_last_proof_is_proven(tmp_path: Path, town: Town) -> None:
    with create_log(tmp_path / "data", town, setup=True) as log:
        size = log.size
        log.inclusion_proof(0, size)
        with pytest.raises(ProofError, match="no tree of size"):
            log.inclusion_proof(0, size + 1)
        log.append([town.award("resident-1", "clean-pond")], now_ms=town.now_ms)
        leaf_hashes = [merkle.leaf_hash(leaf) for _, leaf in log.leaves(0, size + 1)]
        proof = log.inclusion_proof(size, size + 1)
        assert proof == merkle.inclusion_proof(merkle.MemoryTree(leaf_hashes), size, size + 1)


def test_a_missing_subtree_below_the_kept_levels_is_reported(
    tmp_path: Path, town: Town, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nodecache, "LEVELS", 2)
    data = tmp_path / "data"
    with create_log(data, town, setup=True) as log:
        log.append([town.award("resident-1", "clean-pond") for _ in range(16)], now_ms=town.now_ms)
        size = log.size
    with raw_tables(data / ENV_DIR_NAME) as tables:
        tables.delete("nodes", node_key(1, 2))  # leaves 4 and 5: on the path of leaf 6
    with (
        Log.open(data, readonly=True) as log,
        pytest.raises(IntegrityError, match="lacks the subtree of 2 leaves starting at leaf 4"),
    ):
        log.inclusion_proof(6, size)


@pytest.fixture
def town() -> Town:
    return Town.generate()
