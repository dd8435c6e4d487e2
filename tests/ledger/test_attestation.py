"""Auditors' attestations: the text's one spelling, the file, and every reason to refuse one."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redlist.ledger import crypto
from redlist.ledger.attestation import (
    HEADER,
    Attestation,
    AttestationFile,
    sign_attestation,
    verify_attestation,
)
from redlist.ledger.errors import AttestationError, NoteError, PolicyError
from redlist.ledger.note.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from redlist.ledger.note.cosignature import cosign_checkpoint
from redlist.ledger.note.keys import NoteSigner
from redlist.ledger.note.signed import sign_note
from redlist.ledger.policy import Policy

ROOT = bytes(range(32))
NOW = 1_767_225_600
LOG = NoteSigner("rushan.example/log", crypto.SigningKey.from_seed(b"\x01" * 32))
AUDITOR = NoteSigner("county-audit", crypto.SigningKey.from_seed(b"\x02" * 32))
STRANGER = NoteSigner("county-audit", crypto.SigningKey.from_seed(b"\x03" * 32))
WITNESS = NoteSigner("juxian.example/witness", crypto.SigningKey.from_seed(b"\x04" * 32))

ATTESTATION = Attestation(
    origin=LOG.name,
    account="rs-0042",
    score=1042,
    grade="AA",
    size=120,
    root=ROOT,
    expires=NOW + 86_400,
)
CHECKPOINT = cosign_checkpoint(
    sign_checkpoint(Checkpoint(LOG.name, 120, ROOT), LOG), WITNESS, NOW - 60
)
WITNESSED = Policy.of_witnesses([WITNESS.cosignature_verifier()])


def signed_file(attestation: Attestation = ATTESTATION) -> AttestationFile:
    return sign_attestation(attestation, CHECKPOINT, AUDITOR)


def refused(file: AttestationFile, check: str, **options: object) -> AttestationError:
    with pytest.raises(AttestationError) as caught:
        verify_attestation(file, [AUDITOR.verifier()], now=NOW, **options)  # type: ignore[arg-type]
    assert caught.value.check == check, caught.value
    return caught.value


def test_the_text_is_the_header_then_one_field_per_line() -> None:
    assert ATTESTATION.to_text() == (
        "redlist/attestation/v1\n"
        "origin rushan.example/log\n"
        "account rs-0042\n"
        "score 1042\n"
        "grade AA\n"
        "size 120\n"
        "root AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
        f"expires {NOW + 86_400}\n"
    )


def test_round_trip_through_the_file() -> None:
    file = signed_file()
    again = AttestationFile.from_bytes(file.to_bytes())
    assert again == file
    verified = verify_attestation(
        again, [AUDITOR.verifier()], now=NOW, log_key=LOG.verifier(), policy=WITNESSED
    )
    assert verified.attestation == ATTESTATION
    assert verified.auditor == AUDITOR.verifier()
    assert verified.signed_checkpoint == CHECKPOINT
    assert verified.witnesses is not None and list(verified.witnesses.cosigned) == [WITNESS.name]


def test_the_file_is_json_with_the_two_notes() -> None:
    value = json.loads(signed_file().to_bytes())
    assert list(value) == ["attestation", "checkpoint"]
    assert value["attestation"].startswith(HEADER + "\n")
    assert value["checkpoint"] == CHECKPOINT.note


@given(
    score=st.integers(-(1 << 63), (1 << 63) - 1),
    size=st.integers(1, (1 << 64) - 1),
    expires=st.integers(0, (1 << 63) - 1),
    grade=st.sampled_from(["AAA", "A", "优秀", "grade B"]),
    account=st.from_regex(r"[a-z0-9][a-z0-9._-]{0,63}", fullmatch=True),
)
def test_text_round_trip(score: int, size: int, expires: int, grade: str, account: str) -> None:
    attestation = Attestation(LOG.name, account, score, grade, size, ROOT, expires)
    assert Attestation.from_text(attestation.to_text()) == attestation


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ("score 1042", "score 01042", "leading zeros"),
        ("score 1042", "score +1042", "leading zeros"),
        ("score 1042", "score -0", "leading zeros"),
        ("size 120", "size 0", "tree size"),
        ("size 120", "size -120", "leading zeros"),
        ("grade AA", "grade ", "grade"),
        ("grade AA", "grade A\u200bA", "invisible"),
        ("grade AA", "grade A\u030a", "NFC"),
        ("account rs-0042", "account rs 0042", "account id"),
        ("account rs-0042", "account  rs-0042", "account id"),
        ("origin rushan", "origin rus han", "must not contain"),
        ("root AAEC", "root AAEC ", "base64"),
        ("score 1042", "Score 1042", "line 4 must be 'score'"),
        ("score 1042\ngrade AA", "grade AA\nscore 1042", "line 4 must be 'score'"),
        ("expires", "extra 1\nexpires", "this one has 9"),
        (HEADER, "redlist/attestation/v2", "not an attestation"),
    ],
)
def test_every_other_spelling_is_refused(old: str, new: str, fragment: str) -> None:
    text = ATTESTATION.to_text()
    assert old in text
    with pytest.raises(AttestationError) as caught:
        Attestation.from_text(text.replace(old, new, 1))
    assert caught.value.check == "format"
    assert fragment in str(caught.value)


def test_values_out_of_range_are_refused() -> None:
    for field, value in [
        ("score", 1 << 63),
        ("size", 1 << 64),
        ("expires", -1),
        ("score", True),
        ("account", "RS 1"),
        ("root", b"\x00" * 31),
    ]:
        values = {**ATTESTATION.__dict__, field: value}
        with pytest.raises(AttestationError):
            Attestation(**values)


def test_signing_beside_another_checkpoint_is_refused() -> None:
    other = sign_checkpoint(Checkpoint(LOG.name, 121, ROOT), LOG)
    with pytest.raises(AttestationError, match="tree size"):
        sign_attestation(ATTESTATION, other, AUDITOR)


def test_expired_at_the_expiry_second() -> None:
    file = signed_file()
    verify_attestation(file, [AUDITOR.verifier()], now=ATTESTATION.expires - 1)
    with pytest.raises(AttestationError) as caught:
        verify_attestation(file, [AUDITOR.verifier()], now=ATTESTATION.expires)
    assert caught.value.check == "expired"


def test_an_unknown_auditor_is_refused() -> None:
    file = sign_attestation(ATTESTATION, CHECKPOINT, STRANGER)
    error = refused(file, "auditor")
    assert "not a trusted auditor" in str(error)


def test_a_second_trusted_auditor_is_enough() -> None:
    file = sign_attestation(ATTESTATION, CHECKPOINT, STRANGER)
    verified = verify_attestation(
        file, [AUDITOR.verifier(), STRANGER.verifier()], now=NOW, log_key=LOG.verifier()
    )
    assert verified.auditor == STRANGER.verifier()


def test_an_altered_text_fails_the_signature() -> None:
    file = signed_file()
    forged = AttestationFile(file.attestation.replace("grade AA", "grade AAA"), file.checkpoint)
    refused(forged, "signature")


def test_a_checkpoint_of_another_size_or_root_is_refused() -> None:
    for checkpoint in (
        Checkpoint(LOG.name, 121, ROOT),
        Checkpoint(LOG.name, 120, bytes(32)),
        Checkpoint("juxian.example/log", 120, ROOT),
    ):
        signer = LOG if checkpoint.origin == LOG.name else NoteSigner(checkpoint.origin, LOG.key)
        other = sign_checkpoint(checkpoint, signer)
        refused(AttestationFile(signed_file().attestation, other.note), "checkpoint")


def test_a_checkpoint_not_signed_by_the_log_is_refused() -> None:
    impostor = NoteSigner(LOG.name, crypto.SigningKey.from_seed(b"\x09" * 32))
    forged = sign_checkpoint(Checkpoint(LOG.name, 120, ROOT), impostor)
    file = AttestationFile(signed_file().attestation, forged.note)
    verify_attestation(file, [AUDITOR.verifier()], now=NOW)  # unchecked without the key
    refused(file, "log-signature", log_key=LOG.verifier())


def test_a_log_key_for_another_log_is_refused() -> None:
    other = NoteSigner("juxian.example/log", LOG.key)
    error = refused(signed_file(), "log-signature", log_key=other.verifier())
    assert "juxian.example/log" in str(error)


def test_a_witness_policy_is_held() -> None:
    bare = sign_checkpoint(Checkpoint(LOG.name, 120, ROOT), LOG)
    file = sign_attestation(ATTESTATION, bare, AUDITOR)
    verify_attestation(file, [AUDITOR.verifier()], now=NOW, log_key=LOG.verifier())
    refused(file, "witness-policy", log_key=LOG.verifier(), policy=WITNESSED)
    with pytest.raises(PolicyError):
        verify_attestation(file, [AUDITOR.verifier()], now=NOW, policy=WITNESSED)


# -- domain separation ---------------------------------------------------------------


def test_a_checkpoint_signed_by_the_auditors_key_is_no_attestation() -> None:
    # The same key used as a log key: its checkpoints never pass for attestations.
    as_log = NoteSigner(AUDITOR.name, AUDITOR.key)
    checkpoint = sign_checkpoint(Checkpoint(AUDITOR.name, 120, ROOT), as_log)
    refused(AttestationFile(checkpoint.note, CHECKPOINT.note), "format")


def test_a_log_named_like_the_header_still_writes_no_attestation() -> None:
    log = NoteSigner(HEADER, AUDITOR.key)
    checkpoint = sign_checkpoint(Checkpoint(HEADER, 120, ROOT), log)
    file = AttestationFile(checkpoint.note, CHECKPOINT.note)
    with pytest.raises(AttestationError) as caught:
        verify_attestation(file, [log.verifier()], now=NOW)
    assert caught.value.check == "format"


def test_a_cosignature_by_the_auditors_key_is_no_attestation() -> None:
    witness = NoteSigner(AUDITOR.name, AUDITOR.key)
    cosigned = cosign_checkpoint(CHECKPOINT, witness, NOW)
    # Only the cosignature line names the auditor (by its 0x04 key hash): not trusted.
    refused(AttestationFile(cosigned.note, CHECKPOINT.note), "auditor")
    with pytest.raises(NoteError):
        verify_attestation(signed_file(), [witness.cosignature_verifier()], now=NOW)


def test_an_attestation_is_no_checkpoint() -> None:
    note = signed_file().attestation
    as_log = NoteSigner(AUDITOR.name, AUDITOR.key)
    with pytest.raises(NoteError):
        open_checkpoint(note, as_log.verifier())


def test_an_arbitrary_note_by_the_auditor_is_no_attestation() -> None:
    note = sign_note("hello\n", AUDITOR)
    refused(AttestationFile(note, CHECKPOINT.note), "format")


# -- the file ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"[]",
        b'{"attestation": "x"}',
        b'{"checkpoint": "x", "attestation": "y"}',
        b'{"attestation": 1, "checkpoint": "y"}',
        b'{"attestation": "x", "checkpoint": "y", "more": 1}',
        b'{"attestation":"x","checkpoint":"y"}\n',
        b"\xff",
    ],
)
def test_malformed_files_are_refused(data: bytes) -> None:
    with pytest.raises(AttestationError) as caught:
        AttestationFile.from_bytes(data)
    assert caught.value.check == "format"


def test_an_equivalent_respelling_is_refused() -> None:
    data = signed_file().to_bytes()
    respelled = data.replace(b"\\n", b"\\u000a", 1)
    assert json.loads(respelled) == json.loads(data)
    with pytest.raises(AttestationError, match="edited"):
        AttestationFile.from_bytes(respelled)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_changing_any_byte_of_a_file_is_caught(data: st.DataObject) -> None:
    original = signed_file().to_bytes()
    position = data.draw(st.integers(0, len(original) - 1), label="position")
    value = data.draw(st.integers(0, 255).filter(lambda b: b != original[position]), label="byte")
    mutated = original[:position] + bytes([value]) + original[position + 1 :]
    with pytest.raises(AttestationError):
        file = AttestationFile.from_bytes(mutated)
        verify_attestation(
            file, [AUDITOR.verifier()], now=NOW, log_key=LOG.verifier(), policy=WITNESSED
        )
