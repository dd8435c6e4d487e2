"""A run of consecutive leaves proved at once: its two boundary proofs and its leaves.

The inclusion proof of leaf ``i`` in a tree of ``size`` leaves (RFC 9162 2.1.3) is
the hash of every subtree beside ``i``'s path, lowest first. For a run of leaves
``[first, end)`` held whole, every such subtree of every leaf of the run either lies
inside the run (computed here from its leaves) or lies wholly to its left (then it
is beside ``first``'s path too) or wholly to its right (then beside ``end - 1``'s). So
the proofs of the run's first and last leaves and the run's leaves give the root of
the whole tree: one root compared where ``end - first`` proofs were asked for.

Every leaf of the run goes into the root computed here: no subtree that overlaps the
run is ever taken from a proof. A run whose computed root is the signed root is
therefore in the signed tree at those positions, leaf for leaf, as each leaf's own
proof would show (ADR 0050). The module is pure; every refusal is a ``ProofError``.
"""

from __future__ import annotations

from collections.abc import Sequence

from redlist.ledger.errors import ProofError
from redlist.ledger.merkle import HASH_SIZE, node_hash

__all__ = ["path_ranges", "range_root"]


def path_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaves ``[begin, end)`` each hash of leaf ``index``'s inclusion proof in a
    tree of ``size`` leaves covers, in the proof's order (lowest first)."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size} leaves")
    ranges: list[tuple[int, int]] = []
    begin, end = 0, size
    while end - begin > 1:
        split = begin + _largest_power_below(end - begin)
        if index < split:
            ranges.append((split, end))
            end = split
        else:
            ranges.append((begin, split))
            begin = split
    ranges.reverse()
    return ranges


def range_root(
    size: int,
    first: int,
    leaf_hashes: Sequence[bytes],
    first_proof: Sequence[bytes],
    last_proof: Sequence[bytes],
) -> bytes:
    """The root of the tree of ``size`` leaves whose leaves from ``first`` on hash to
    ``leaf_hashes``, with the subtrees beside the run from the inclusion proofs of its
    first leaf (``first_proof``) and its last (``last_proof``).

    Compare it with the signed root: equal, every leaf of the run is in that tree at
    its position. ``ProofError`` when a proof has the wrong shape or the two proofs
    disagree about a subtree.
    """
    end = first + len(leaf_hashes)
    if not leaf_hashes or first < 0 or end > size:
        raise ProofError(f"leaves {first} to {end - 1} are not a run of a tree of {size} leaves")
    for value in leaf_hashes:
        _check_hash(value)
    beside: dict[tuple[int, int], bytes] = {}
    for index, proof in ((first, first_proof), (end - 1, last_proof)):
        ranges = path_ranges(index, size)
        if len(proof) != len(ranges):
            raise ProofError(
                f"the inclusion proof for leaf {index} in a tree of {size} leaves has "
                f"{len(proof)} hashes, not {len(ranges)}"
            )
        for (begin, stop), value in zip(ranges, proof, strict=True):
            _check_hash(value)
            if stop > first and begin < end:
                continue  # it overlaps the run: computed from the run's own leaves
            if beside.setdefault((begin, stop), value) != value:
                raise ProofError(
                    f"the proofs of leaves {first} and {end - 1} disagree about the "
                    f"subtree of leaves {begin} to {stop - 1}"
                )

    def subtree(begin: int, stop: int) -> bytes:
        if stop <= first or begin >= end:
            found = beside.get((begin, stop))
            if found is None:  # unreachable for proofs of the right shape
                raise ProofError(f"no proof gives the subtree of leaves {begin} to {stop - 1}")
            return found
        if stop - begin == 1:
            return leaf_hashes[begin - first]
        split = begin + _largest_power_below(stop - begin)
        return node_hash(subtree(begin, split), subtree(split, stop))

    return subtree(0, size)


def _largest_power_below(count: int) -> int:
    """The largest power of two below ``count`` (``count`` > 1)."""
    return 1 << ((count - 1).bit_length() - 1)


def _check_hash(value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ProofError(f"a hash must be {HASH_SIZE} bytes")
