"""A witness's decision on a checkpoint (C2SP tlog-witness; DESIGN 8.2, 8.5). Pure.

A witness keeps, for each log it watches (origin and log key), the last checkpoint it
cosigned. Asked to cosign a newer one, it is given the size it last cosigned
(``old_size``) and a consistency proof from that size to the new one. This module
decides, with no storage, clock or network:

* :func:`add_checkpoint` returns the witness's new :class:`WitnessedHead`, or raises a
  :class:`WitnessRefusal` whose ``reason`` the caller maps to its protocol's status;
* a refusal that proves the log showed two histories carries
  :class:`SplitViewEvidence`: both signed notes and the proof that failed, which anyone
  can check offline with :func:`check_evidence` and the log key alone.

The caller stores the new head with a compare-and-swap on the old size, durably, before
it returns the cosignature: a witness must never cosign two heads of one size.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from redlist.ledger import merkle
from redlist.ledger.errors import NoteError, ProofError, RedlistError
from redlist.ledger.note.checkpoint import SignedCheckpoint, open_checkpoint
from redlist.ledger.note.keys import VerifierKey

#: What an evidence file says it is (its "format" member).
EVIDENCE_FORMAT = "redlist-split-view/1"
#: A consistency proof between trees of fewer than 2^64 leaves has at most 65 hashes
#: (RFC 9162: its path from the old tree's border to the new root, seed included).
MAX_PROOF_HASHES = 65


class Refusal(Enum):
    """Why a witness refuses a checkpoint (DESIGN 8.2 names the gRPC status for each)."""

    #: The checkpoint's origin is not a log the witness is configured for: NOT_FOUND.
    #: (Decided by the caller, which holds the configuration; never by ``add_checkpoint``.)
    UNKNOWN_LOG = "unknown-log"
    #: The log's signature does not verify: PERMISSION_DENIED.
    BAD_SIGNATURE = "bad-signature"
    #: ``old_size`` is larger than the checkpoint, or the proof is malformed: INVALID_ARGUMENT.
    BAD_REQUEST = "bad-request"
    #: ``old_size`` is not the size the witness holds: ABORTED, with that size.
    OLD_SIZE_MISMATCH = "old-size-mismatch"
    #: The proof fails, or one size has two roots: FAILED_PRECONDITION, with evidence.
    INCONSISTENT = "inconsistent"


class WitnessRefusal(RedlistError):
    """The witness will not cosign; ``reason`` says why, ``evidence`` when it is proof."""

    def __init__(
        self,
        reason: Refusal,
        message: str,
        *,
        stored_size: int | None = None,
        evidence: SplitViewEvidence | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.stored_size = stored_size
        self.evidence = evidence


@dataclass(frozen=True)
class WitnessedHead:
    """The checkpoint a witness last cosigned for one log: its size, root and signed note."""

    size: int
    root: bytes
    note: str


@dataclass(frozen=True)
class SplitViewEvidence:
    """Two checkpoints of one log, both signed by its key, that cannot both be true.

    ``earlier`` is the one the witness held, ``later`` the one it was shown; ``proof`` is
    the consistency proof it was given from the earlier size to the later (empty when the
    sizes are equal and the roots differ).
    """

    origin: str
    earlier: str
    later: str
    proof: tuple[bytes, ...]

    def to_text(self) -> str:
        """The evidence file's text: a small JSON object, both notes verbatim."""
        value = {
            "format": EVIDENCE_FORMAT,
            "origin": self.origin,
            "earlier": self.earlier,
            "later": self.later,
            "proof": [base64.b64encode(node).decode("ascii") for node in self.proof],
        }
        return json.dumps(value, ensure_ascii=False, indent=2) + "\n"

    @classmethod
    def from_text(cls, text: str) -> SplitViewEvidence:
        """Parse an evidence file; ``NoteError`` when it is not one."""
        try:
            value = json.loads(text)
        except ValueError as error:
            raise NoteError(f"the evidence file is not JSON: {error}") from None
        if not isinstance(value, dict) or value.get("format") != EVIDENCE_FORMAT:
            raise NoteError(f"the evidence file is not of format {EVIDENCE_FORMAT}")
        fields = ("origin", "earlier", "later")
        if not all(isinstance(value.get(name), str) for name in fields):
            raise NoteError("the evidence file must name the origin and hold both notes as text")
        raw_proof = value.get("proof")
        if not isinstance(raw_proof, list) or len(raw_proof) > MAX_PROOF_HASHES:
            raise NoteError("the evidence file's proof must be a list of base64 hashes")
        proof = []
        for item in raw_proof:
            try:
                node = base64.b64decode(item, validate=True) if isinstance(item, str) else b""
            except ValueError:
                node = b""
            if len(node) != merkle.HASH_SIZE:
                raise NoteError("the evidence file's proof holds something that is not a hash")
            proof.append(node)
        return cls(value["origin"], value["earlier"], value["later"], tuple(proof))


def add_checkpoint(
    held: WitnessedHead | None,
    old_size: int,
    proof: Sequence[bytes],
    note: str,
    log_key: VerifierKey,
) -> WitnessedHead:
    """Decide on ``note``, a checkpoint of the log of ``log_key``; return the new head.

    ``held`` is what the witness holds for that log (None: nothing yet, as if size 0).
    Raises :class:`WitnessRefusal`.
    """
    try:
        checkpoint = open_checkpoint(note, log_key)
    except NoteError as error:
        raise WitnessRefusal(Refusal.BAD_SIGNATURE, str(error)) from None
    if old_size > checkpoint.size:
        raise WitnessRefusal(
            Refusal.BAD_REQUEST,
            f"old size {old_size} is larger than the checkpoint's size {checkpoint.size}",
        )
    held_size = 0 if held is None else held.size
    if old_size != held_size:
        raise WitnessRefusal(
            Refusal.OLD_SIZE_MISMATCH,
            f"the witness holds size {held_size}, not {old_size}: ask again from there",
            stored_size=held_size,
        )
    if len(proof) > MAX_PROOF_HASHES:
        raise WitnessRefusal(Refusal.BAD_REQUEST, f"a proof of {len(proof)} hashes is too long")
    if held is None:
        # Nothing held: the empty tree is consistent with every tree, by the empty proof.
        if proof:
            raise WitnessRefusal(Refusal.BAD_REQUEST, "the proof from size 0 must be empty")
        return WitnessedHead(checkpoint.size, checkpoint.root, note)
    problem = _inconsistency(held.size, held.root, checkpoint, proof)
    if problem is not None:
        evidence = SplitViewEvidence(checkpoint.origin, held.note, note, tuple(proof))
        raise WitnessRefusal(Refusal.INCONSISTENT, problem, evidence=evidence)
    return WitnessedHead(checkpoint.size, checkpoint.root, note)


@dataclass(frozen=True)
class SplitProof:
    """What split-view evidence proves: two roots for one size (``earlier == later``), or
    a tree of ``later`` entries that does not extend the tree of ``earlier`` the log
    signed before. ``str`` says it in English; ``splitwords`` in the reader's language."""

    earlier: int
    later: int

    def __str__(self) -> str:
        if self.earlier == self.later:
            return _two_roots(self.later)
        return (
            f"the log's tree of {self.later} entries does not extend the tree of "
            f"{self.earlier} entries it signed before: the log rewrote its history or "
            "shows two histories"
        )


def check_evidence(evidence: SplitViewEvidence, log_key: VerifierKey) -> SplitProof | None:
    """What ``evidence`` proves against the log of ``log_key``, or None if nothing.

    Both notes must verify with the log key (a note that does not proves nothing about
    the log). Then it proves that the log showed two histories when

    * both checkpoints have one size and two roots, or
    * the proof, taken as a consistency path with its seed first
      (``merkle.consistency_roots``), reproduces the later checkpoint's root and
      another root at the earlier size than the one the log signed: the later tree
      does not extend the earlier one.

    A proof that reproduces neither proves nothing by itself (anyone can write hashes
    into a file); the log must then show a consistency proof between the two, and if it
    cannot, that is the proof.
    """
    try:
        earlier = open_checkpoint(evidence.earlier, log_key)
        later = open_checkpoint(evidence.later, log_key)
    except NoteError:
        return None
    if earlier.size > later.size:
        earlier, later = later, earlier
    if earlier.size == later.size:
        return SplitProof(earlier.size, later.size) if earlier.root != later.root else None
    if earlier.size == 0:
        return None  # the empty tree is a prefix of every tree
    try:
        old, new = merkle.consistency_roots(earlier.size, later.size, evidence.proof)
    except ProofError:
        return None
    if new == later.root and old != earlier.root:
        return SplitProof(earlier.size, later.size)
    return None


def _two_roots(size: int) -> str:
    return f"two checkpoints of size {size} with different roots: the log shows two histories"


def _inconsistency(
    size: int, root: bytes, later: SignedCheckpoint, proof: Sequence[bytes]
) -> str | None:
    if later.size == size:
        return _two_roots(size) if later.root != root else None
    try:
        merkle.verify_consistency(size, later.size, proof, root, later.root)
    except ProofError as error:
        return (
            f"the checkpoint of size {later.size} is not shown consistent with the one of "
            f"size {size} ({error}): the log may have rewritten its history"
        )
    return None
