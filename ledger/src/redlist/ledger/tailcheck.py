"""The tail check, run on every writable ``Log.open``: is the head an append builds on sound?

It re-reads the last ``count`` leaves (decoding each canonically, checking seq,
hash chain and time), compares their hashes with the stored level-0 Merkle nodes,
recomputes every stored node those leaves completed (which includes the right
border of the tree) from its children, and checks that the tree's root equals the
root in the latest checkpoint, whose signature it verifies with the log's key. It
also checks the head the next append builds on: the size, last leaf hash and last
time in the metadata, and the number of leaves and nodes stored. The cost is
``O(count + log n)`` reads however long the log, so opening stays fast. A failure
refuses the open with an ``IntegrityError`` naming the seq and the problem
(``integrity`` holds the vocabulary and the record checks it shares with the full
check).
"""

from __future__ import annotations

from pathlib import Path

from redlist.ledger import merkle
from redlist.ledger.entry import ZERO_HASH
from redlist.ledger.errors import IntegrityError
from redlist.ledger.integrity import (
    ProblemFound,
    check_head,
    check_latest,
    check_leaf_count,
    check_leaf_node,
    check_link,
    check_node,
    check_root,
    decode_leaf,
    expected_nodes,
    fail,
    guarded,
    leaf_bytes,
    misplaced_checkpoint,
    open_stored_checkpoint,
    read_head,
)
from redlist.ledger.store import StoreReader

#: Leaves ``check_tail`` re-reads by default: the last few batches of a busy node.
TAIL_LEAVES = 64


def check_tail(
    reader: StoreReader, *, count: int = TAIL_LEAVES, data_dir: Path | None = None
) -> None:
    """Check the newest ``count`` leaves and the tree's head; see the module docstring.

    With ``count`` 0 only the head is checked against the last leaf.

    Raises ``IntegrityError`` (with the seq, when one applies) on the first problem;
    ``data_dir`` only makes its advice name the directory to run the full check on.
    """
    try:
        _check_tail(reader, max(count, 0))
    except ProblemFound as found:
        problem = found.problem
        where = "DIR" if data_dir is None else str(data_dir)
        raise IntegrityError(
            f"the stored log fails its integrity check: "
            f"{problem.describe()}. Run `redlist-node check --data {where} --full` for a "
            "full report.",
            problem.seq,
        ) from None


def _check_tail(reader: StoreReader, count: int) -> None:
    head = read_head(reader)
    size = head.size
    start = max(0, size - count)
    prev_hash, prev_time = ZERO_HASH, 0
    if start > 0:  # the leaf just before the window anchors its chain
        anchor = leaf_bytes(reader, start - 1)
        prev_hash = merkle.leaf_hash(anchor)
        prev_time = decode_leaf(start - 1, anchor)[0].time
        check_leaf_node(reader, start - 1, prev_hash)
    for seq in range(start, size):
        raw = leaf_bytes(reader, seq)
        leaf = decode_leaf(seq, raw)[0]
        check_link(seq, leaf, prev_hash, prev_time)
        prev_hash, prev_time = merkle.leaf_hash(raw), leaf.time
        check_leaf_node(reader, seq, prev_hash)
    check_leaf_count(reader, size)
    check_head(head, prev_hash, prev_time)
    # Every node completed by an entry of the window, up to the right border.
    level = 1
    while (1 << level) <= size:
        first = max(0, ((start + (1 << level)) >> level) - 1)
        for index in range(first, size >> level):
            check_node(reader, level, index)
        level += 1
    stored_nodes = reader.counts().nodes
    if stored_nodes != expected_nodes(size):
        fail(
            "tree",
            f"a tree of {size} entries has {expected_nodes(size)} nodes, but "
            f"{stored_nodes} are stored",
        )
    try:
        root = merkle.root_at(reader.nodes(), size)
    except IntegrityError as exc:
        fail("tree", str(exc))
    stored = reader.checkpoint_record(size)
    if stored is None:
        fail("checkpoint", f"no checkpoint is stored for the log's size ({size})")
    check_root(
        open_stored_checkpoint(stored, head.verifier_key, size), root, "from the stored tree"
    )
    check_latest(head, stored)
    last = guarded("checkpoint", reader.last_checkpoint_size)
    if last is not None and last != size:
        fail("checkpoint", misplaced_checkpoint(last, size))


__all__ = ["TAIL_LEAVES", "check_tail"]
