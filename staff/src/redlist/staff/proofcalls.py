"""Proving that entries were recorded, for ``LedgerClient`` (mixed in): the leaves the
node says it holds are fetched and checked against the verified checkpoint's root.

Per entry submitted, ``prove_recorded`` fetches the leaf at the seq the node answered
(in runs of consecutive seqs, at most ``LEAVES_PER_CALL`` a call), checks that it holds
exactly the envelope sent, and checks its inclusion in the tree the checkpoint signs.
A run of leaves is proved by the inclusion proofs of its two ends and its own leaves
(``merklerange``, ADR 0050); where that does not reach the root, by each leaf's own
proof, asked ``PROOFS_IN_FLIGHT`` at a time, naming the first that fails. Every
failure is a ``VerificationError`` (check ``inclusion``) with the advice for an
unproved write (``advice.UNPROVED``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import grpc

from redlist.ledger import merkle, merklerange
from redlist.ledger.entry import Leaf
from redlist.ledger.errors import FormatError, ProofError, RedlistError, VerificationError
from redlist.ledger.i18n import _
from redlist.ledger.note.checkpoint import SignedCheckpoint
from redlist.staff.advice import UNPROVED
from redlist.v1 import ledger_pb2

#: Inclusion proofs asked for at once when proving entries recorded: enough to hide the
#: round trip, well under the calls a node serves one client at once (16 by default).
PROOFS_IN_FLIGHT = 8
#: Leaves asked for in one GetLeaves call when proving entries recorded.
LEAVES_PER_CALL = 1000


class ProofCalls:
    """Mixed into ``LedgerClient``: its stub, timeout, error reading, advice and leaves."""

    _stub: Any
    timeout: float
    _error: Callable[..., RedlistError]
    advice: Callable[[str], str]
    get_leaves: Callable[[int, int], Iterator[tuple[int, bytes]]]

    def prove_recorded(self, sent: Mapping[int, bytes], checkpoint: SignedCheckpoint) -> None:
        """Check that the log at ``checkpoint`` holds each envelope of ``sent`` at its seq.

        ``sent`` maps a seq the node answered to the envelope bytes sent for it. Per
        entry: the leaf at that seq (fetched in runs of consecutive seqs) holds
        exactly those bytes, and that leaf's hash is in the tree whose root
        ``checkpoint`` signs (``proved_leaves``). Raises ``VerificationError``
        (check ``inclusion``) at the first entry that fails.
        """
        unproved = self.advice(UNPROVED)
        self.proved_leaves(
            sent, checkpoint, lambda seq, data: _check_leaf(seq, data, sent[seq], unproved)
        )

    def proved_leaves(
        self,
        seqs: Iterable[int],
        checkpoint: SignedCheckpoint,
        check: Callable[[int, bytes], None] | None = None,
    ) -> dict[int, bytes]:
        """The leaves at ``seqs``, each proved to be in the log at ``checkpoint``.

        Leaves are fetched in runs of consecutive seqs (at most ``LEAVES_PER_CALL`` a
        call); ``check(seq, leaf)``, if given, looks at each before any proof is asked
        for. A run is proved by the inclusion proofs of its first and last leaves
        (``merklerange``, ADR 0050); where that does not reach ``checkpoint``'s root,
        by each leaf's own proof. Raises ``VerificationError`` (check ``inclusion``) at
        the first leaf whose inclusion proof does not reach it.
        """
        proved: dict[int, bytes] = {}
        unproved = self.advice(UNPROVED)
        for start, end in _runs(sorted(set(seqs))):
            for first_seq in range(start, end, LEAVES_PER_CALL):
                leaves = dict(self.get_leaves(first_seq, min(end, first_seq + LEAVES_PER_CALL)))
                if check is not None:
                    for seq, data in leaves.items():
                        check(seq, data)
                if not self._run_proved(leaves, checkpoint):
                    # Proofs are asked for a window at a time: one round trip's wait, not
                    # one per entry. The first entry whose proof fails is named.
                    window_seqs = list(leaves)
                    for first in range(0, len(window_seqs), PROOFS_IN_FLIGHT):
                        window = window_seqs[first : first + PROOFS_IN_FLIGHT]
                        proofs = self._inclusion_proofs(window, checkpoint.size)
                        for seq, hashes in zip(window, proofs, strict=True):
                            _check_inclusion(seq, leaves[seq], hashes, checkpoint, unproved)
                proved.update(leaves)
        return proved

    def _run_proved(self, leaves: Mapping[int, bytes], checkpoint: SignedCheckpoint) -> bool:
        """Whether the leaves, a run of consecutive seqs, are all in the tree
        ``checkpoint`` signs, by the inclusion proofs of the run's first and last leaf
        alone (``merklerange``, ADR 0050). False when that does not show it: each
        leaf's own proof then decides, and names the first that fails."""
        seqs = list(leaves)
        if len(seqs) < 3 or seqs != list(range(seqs[0], seqs[0] + len(seqs))):
            return False  # too short to save a call, or not one run
        first_proof, last_proof = self._inclusion_proofs([seqs[0], seqs[-1]], checkpoint.size)
        hashes = [merkle.leaf_hash(leaves[seq]) for seq in seqs]
        try:
            root = merklerange.range_root(checkpoint.size, seqs[0], hashes, first_proof, last_proof)
        except ProofError:
            return False
        return root == checkpoint.root

    def _inclusion_proofs(self, seqs: Sequence[int], tree_size: int) -> list[tuple[bytes, ...]]:
        """The node's inclusion proofs of ``seqs`` in the tree of ``tree_size``, in order."""
        calls = [
            (
                seq,
                self._stub.GetInclusionProof.future(
                    ledger_pb2.InclusionProofRequest(seq=seq, tree_size=tree_size),
                    timeout=self.timeout,
                ),
            )
            for seq in seqs
        ]
        proofs: list[tuple[bytes, ...]] = []
        try:
            for seq, call in calls:
                try:
                    proof = call.result()
                except grpc.RpcError as error:
                    raise self._error(error, f"GetInclusionProof for entry {seq}") from None
                if proof.tree_size not in (0, tree_size):
                    problem = _("its proof is for a log of {tree_size} entries").format(
                        tree_size=proof.tree_size
                    )
                    raise _not_recorded(seq, problem, self.advice(UNPROVED))
                proofs.append(tuple(proof.hashes))
        finally:
            for _sent, call in calls:
                call.cancel()  # a no-op for the answered ones
        return proofs


def _check_leaf(seq: int, data: bytes, envelope: bytes, advice_text: str) -> None:
    """The leaf the node sent for ``seq`` holds exactly ``envelope`` at ``seq``."""
    try:
        leaf = Leaf.from_bytes(data)
    except FormatError as error:
        problem = _("the entry it holds there cannot be read ({error})").format(error=error)
        raise _not_recorded(seq, problem, advice_text) from None
    if leaf.seq != seq or leaf.envelope != envelope:
        raise _not_recorded(seq, _("the entry it holds there is not the one sent"), advice_text)


def _check_inclusion(
    seq: int,
    data: bytes,
    hashes: Sequence[bytes],
    checkpoint: SignedCheckpoint,
    advice_text: str,
) -> None:
    """The proof ``hashes`` puts leaf ``data`` at ``seq`` in the tree ``checkpoint`` signs."""
    try:
        merkle.verify_inclusion(
            merkle.leaf_hash(data), seq, checkpoint.size, hashes, checkpoint.root
        )
    except ProofError as error:
        problem = _("its proof does not place that entry in the log it signed ({error})").format(
            error=error
        )
        raise _not_recorded(seq, problem, advice_text) from None


def _not_recorded(seq: int, problem: str, advice_text: str) -> VerificationError:
    return VerificationError(
        "inclusion",
        _("the node says it recorded this entry as number {seq}, but {problem}. {advice}").format(
            seq=seq, problem=problem, advice=advice_text
        ),
        seq=seq,
    )


def _runs(seqs: Sequence[int]) -> Iterator[tuple[int, int]]:
    """Sorted ``seqs`` as ``[start, end)`` runs of consecutive numbers."""
    for _key, group in itertools.groupby(enumerate(seqs), key=lambda pair: pair[1] - pair[0]):
        run = [seq for _index, seq in group]
        yield run[0], run[-1] + 1


__all__ = ["LEAVES_PER_CALL", "PROOFS_IN_FLIGHT", "ProofCalls"]
