"""A witness's decisions (C2SP tlog-witness, DESIGN 8.2) and split-view evidence (8.5)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redlist.ledger import merkle
from redlist.ledger.errors import NoteError
from redlist.ledger.note.checkpoint import Checkpoint, sign_checkpoint
from redlist.ledger.note.keys import NoteSigner
from redlist.ledger.witness import (
    MAX_PROOF_HASHES,
    Refusal,
    SplitViewEvidence,
    WitnessedHead,
    WitnessRefusal,
    add_checkpoint,
    check_evidence,
)

ORIGIN = "town.example/log"
LOG = NoteSigner.generate(ORIGIN)
OTHER = NoteSigner.generate(ORIGIN)  # a second key with the log's name: not the log


def tree(leaves: list[bytes]) -> merkle.MemoryTree:
    return merkle.MemoryTree(merkle.leaf_hash(leaf) for leaf in leaves)


def note_of(history: merkle.MemoryTree, size: int, signer: NoteSigner = LOG) -> str:
    prefix = merkle.MemoryTree(history.node(0, index) for index in range(size))
    return sign_checkpoint(Checkpoint(ORIGIN, size, prefix.root()), signer).note


def proof(history: merkle.MemoryTree, size1: int, size2: int) -> list[bytes]:
    return merkle.consistency_proof(history, size1, size2) if size1 else []


LEAVES = [f"entry {n}".encode() for n in range(40)]
HONEST = tree(LEAVES)
# A fork: the same log rewrote entry 5 after having signed the first ten.
FORKED = tree([*LEAVES[:5], b"rewritten", *LEAVES[6:]])


def refused(held: WitnessedHead | None, old: int, hashes: list[bytes], note: str) -> WitnessRefusal:
    with pytest.raises(WitnessRefusal) as caught:
        add_checkpoint(held, old, hashes, note, LOG.verifier())
    return caught.value


@settings(max_examples=60)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=6))
def test_an_honest_log_is_cosigned_all_the_way(sizes: list[int]) -> None:
    held = None
    for size in sorted(sizes):
        old = 0 if held is None else held.size
        held = add_checkpoint(
            held, old, proof(HONEST, old, size), note_of(HONEST, size), LOG.verifier()
        )
        assert (held.size, held.root) == (
            size,
            merkle.MemoryTree(HONEST.node(0, i) for i in range(size)).root(),
        )


def test_a_fork_is_refused_with_evidence_that_convinces_anyone() -> None:
    held = add_checkpoint(None, 0, [], note_of(HONEST, 10), LOG.verifier())
    later = note_of(FORKED, 30)
    error = refused(held, 10, proof(FORKED, 10, 30), later)
    assert error.reason is Refusal.INCONSISTENT
    assert error.evidence is not None
    # The file round-trips, and proves the split with the log key alone.
    evidence = SplitViewEvidence.from_text(error.evidence.to_text())
    assert evidence == error.evidence
    assert "does not extend" in str(check_evidence(evidence, LOG.verifier()))
    # Only the log's key convicts the log.
    assert check_evidence(evidence, OTHER.verifier()) is None


def test_a_fork_below_a_power_of_two_is_refused_but_needs_the_log_to_settle() -> None:
    # From 8 leaves (a power of two) the RFC proof leaves out the old tree's root, so the
    # forked log's proof carries nothing that pins its own tree at 8: the witness refuses
    # and keeps both notes, and the log must show a proof (it cannot) to be cleared.
    held = add_checkpoint(None, 0, [], note_of(HONEST, 8), LOG.verifier())
    error = refused(held, 8, proof(FORKED, 8, 30), note_of(FORKED, 30))
    assert error.reason is Refusal.INCONSISTENT and error.evidence is not None
    assert check_evidence(error.evidence, LOG.verifier()) is None


def test_two_roots_for_one_size_are_evidence() -> None:
    held = add_checkpoint(None, 0, [], note_of(HONEST, 12), LOG.verifier())
    error = refused(held, 12, [], note_of(FORKED, 12))
    assert error.reason is Refusal.INCONSISTENT and error.evidence is not None
    assert "different roots" in str(check_evidence(error.evidence, LOG.verifier()))


def test_garbage_hashes_in_an_evidence_file_prove_nothing() -> None:
    earlier, later = note_of(HONEST, 10), note_of(HONEST, 30)
    honest = SplitViewEvidence(ORIGIN, earlier, later, tuple(proof(HONEST, 10, 30)))
    assert check_evidence(honest, LOG.verifier()) is None
    garbage = SplitViewEvidence(ORIGIN, earlier, later, tuple(bytes(32) for _ in honest.proof))
    assert check_evidence(garbage, LOG.verifier()) is None


@pytest.mark.parametrize(
    ("old", "hashes", "note", "reason", "stored"),
    [
        (12, [], note_of(HONEST, 11), Refusal.BAD_REQUEST, None),  # old size past the note
        (5, proof(HONEST, 5, 20), note_of(HONEST, 20), Refusal.OLD_SIZE_MISMATCH, 10),
        (10, proof(HONEST, 10, 20), note_of(HONEST, 20, OTHER), Refusal.BAD_SIGNATURE, None),
        (10, [bytes(32)] * 3, note_of(HONEST, 20), Refusal.INCONSISTENT, None),
    ],
)
def test_refusals_say_why(
    old: int, hashes: list[bytes], note: str, reason: Refusal, stored: int | None
) -> None:
    held = add_checkpoint(None, 0, [], note_of(HONEST, 10), LOG.verifier())
    error = refused(held, old, hashes, note)
    assert error.reason is reason
    assert error.stored_size == stored


def test_a_proof_longer_than_any_tree_needs_is_a_bad_request() -> None:
    held = add_checkpoint(None, 0, [], note_of(HONEST, 10), LOG.verifier())
    error = refused(held, 10, [bytes(32)] * (MAX_PROOF_HASHES + 1), note_of(HONEST, 20))
    assert error.reason is Refusal.BAD_REQUEST


def test_the_same_checkpoint_again_is_cosigned_again() -> None:
    held = add_checkpoint(None, 0, [], note_of(HONEST, 10), LOG.verifier())
    again = add_checkpoint(held, 10, [], note_of(HONEST, 10), LOG.verifier())
    assert (again.size, again.root) == (held.size, held.root)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{}",
        '{"format": "redlist-split-view/1"}',
        '{"format": "redlist-split-view/1", '
        '"origin": "o", "earlier": "a", "later": "b", "proof": ["AAAA"]}',
    ],
)
def test_a_malformed_evidence_file_is_refused(text: str) -> None:
    with pytest.raises(NoteError):
        SplitViewEvidence.from_text(text)
