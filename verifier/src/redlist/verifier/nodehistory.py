"""The node's history against what the verifier holds: Merkle proofs and pinned checkpoints.

Three checks of ``redlist.verifier.nodeaudit``, each a ``VerificationError`` when the
node's answer does not verify:

* ``check_extends``: the node's checkpoint extends one verified before (``PinnedHead``):
  not smaller (``rollback``), the same root at the same size, and otherwise a
  consistency proof that verifies (``consistency``); the two signed checkpoints are
  quoted as evidence;
* ``check_inclusion``: inclusion proofs of sampled entries against the checkpoint's
  root, from the leaf hashes a ``LeafObserver`` kept as the leaves streamed by;
* ``check_consistency_sample``: a consistency proof from a random earlier size,
  against the root recomputed from the node's own leaves.

The samples come from the operating system's random source (``sample_range``), so the
node cannot tell which entries will be asked about.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from redlist.ledger import merkle
from redlist.ledger.errors import ProofError, VerificationError
from redlist.ledger.i18n import _
from redlist.ledger.note.checkpoint import SignedCheckpoint
from redlist.proto.client import NodeClient

RANDOM = secrets.SystemRandom()


@dataclass(frozen=True)
class PinnedHead:
    """A checkpoint verified before (by an earlier run, or earlier in this one).

    ``source`` says where it is kept, for messages ("the state file").
    """

    checkpoint: SignedCheckpoint
    source: str

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root


def check_extends(client: NodeClient, pinned: PinnedHead, checkpoint: SignedCheckpoint) -> None:
    """The node's checkpoint must extend the pinned one; both are quoted if it does not."""
    if checkpoint.size < pinned.size:
        raise VerificationError(
            "rollback",
            f"the node at {client.address} serves a log of {checkpoint.size} entries, smaller "
            f"than the {pinned.size} entries verified before ({pinned.source}): the log was "
            "rolled back" + evidence(pinned, checkpoint),
        )
    if checkpoint.size == pinned.size:
        if checkpoint.root != pinned.root:
            raise VerificationError(
                "consistency",
                f"the node's checkpoint and {pinned.source} both cover {pinned.size} entries "
                "but with different roots: the log has shown two histories"
                + evidence(pinned, checkpoint),
            )
        return
    proof = client.get_consistency_proof(pinned.size, checkpoint.size)
    try:
        if proof.tree_size not in (0, checkpoint.size):
            raise ProofError(
                _("the proof is for a tree of {tree_size} entries").format(
                    tree_size=proof.tree_size
                )
            )
        merkle.verify_consistency(
            pinned.size, checkpoint.size, proof.hashes, pinned.root, checkpoint.root
        )
    except ProofError as exc:
        raise VerificationError(
            "consistency",
            f"the node's checkpoint of {checkpoint.size} entries does not extend the "
            f"checkpoint of {pinned.size} entries held in {pinned.source}: the history "
            f"verified earlier was rewritten ({exc})" + evidence(pinned, checkpoint),
        ) from None


def evidence(pinned: PinnedHead, checkpoint: SignedCheckpoint) -> str:
    return (
        "\nThe two signed checkpoints, kept as evidence:\n"
        f"--- verified before ({pinned.source}) ---\n{pinned.checkpoint.note}"
        f"--- served by the node now ---\n{checkpoint.note}"
    )


class LeafObserver:
    """Remembers what the later proof checks need from the leaves as they stream by:
    the leaf hashes of the sampled entries, and the root at the sampled tree size."""

    def __init__(self, seqs: Sequence[int], sample_size: int | None) -> None:
        self._wanted = frozenset(seqs)
        self.leaf_hashes: dict[int, bytes] = {}
        self._sample_size = sample_size
        self._tree = merkle.CompactRange()
        self.sample_root: bytes | None = None

    def watch(self, start: int, leaves: Iterator[bytes]) -> Iterator[bytes]:
        """``leaves`` (from seq ``start`` on), each seen on its way to the audit."""
        for seq, leaf in enumerate(leaves, start):
            self.see(seq, leaf)
            yield leaf

    def see(self, seq: int, leaf: bytes) -> None:
        if seq in self._wanted:
            self.leaf_hashes[seq] = merkle.leaf_hash(leaf)
        if self._sample_size is not None and seq < self._sample_size:
            self._tree.append(merkle.leaf_hash(leaf))
            if self._tree.end == self._sample_size:
                self.sample_root = self._tree.root()


def check_inclusion(
    client: NodeClient, checkpoint: SignedCheckpoint, leaf_hashes: dict[int, bytes]
) -> None:
    for seq in sorted(leaf_hashes):
        proof = client.get_inclusion_proof(seq, checkpoint.size)
        try:
            if proof.tree_size != checkpoint.size:
                raise ProofError(
                    _("the proof is for a tree of {tree_size} entries, not {size}").format(
                        tree_size=proof.tree_size, size=checkpoint.size
                    )
                )
            merkle.verify_inclusion(
                leaf_hashes[seq], seq, checkpoint.size, proof.hashes, checkpoint.root
            )
        except ProofError as exc:
            raise VerificationError(
                "inclusion",
                f"the node's inclusion proof for entry {seq} does not verify against its "
                f"checkpoint of {checkpoint.size} entries: {exc}",
                seq=seq,
            ) from None


def check_consistency_sample(
    client: NodeClient, checkpoint: SignedCheckpoint, size: int, root: bytes
) -> None:
    proof = client.get_consistency_proof(size, checkpoint.size)
    try:
        if proof.tree_size not in (0, checkpoint.size):
            raise ProofError(
                _("the proof is for a tree of {tree_size} entries").format(
                    tree_size=proof.tree_size
                )
            )
        merkle.verify_consistency(size, checkpoint.size, proof.hashes, root, checkpoint.root)
    except ProofError as exc:
        raise VerificationError(
            "consistency",
            f"the node's consistency proof from {size} to {checkpoint.size} entries does not "
            f"verify against the roots recomputed from its entries: {exc}",
        ) from None


def sample_range(start: int, end: int, count: int) -> list[int]:
    """Up to ``count`` distinct seqs of ``[start, end)``: the first, the last, random others."""
    if end <= start or count <= 0:
        return []
    chosen = {start, end - 1} if count >= 2 else {end - 1}
    others = end - start - len(chosen)
    wanted = min(count - len(chosen), others)
    while wanted > 0:
        seq = RANDOM.randrange(start, end)
        if seq not in chosen:
            chosen.add(seq)
            wanted -= 1
    return sorted(chosen)


__all__ = [
    "RANDOM",
    "LeafObserver",
    "PinnedHead",
    "check_consistency_sample",
    "check_extends",
    "check_inclusion",
    "evidence",
    "sample_range",
]
