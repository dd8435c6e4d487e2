"""Signed notes, checkpoints and cosignatures (redlist.ledger.note).

Vectors: the C2SP signed-note example and Tessera's test log (tests/note_vectors.py).
"""

from __future__ import annotations

import base64
import hashlib
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import suppress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.note_vectors import c2sp_example, tessera_log

from redlist.ledger import crypto
from redlist.ledger.errors import KeyFileError, NoteError
from redlist.ledger.note.checkpoint import (
    MAX_TREE_SIZE,
    Checkpoint,
    SignedCheckpoint,
    open_checkpoint,
    sign_checkpoint,
)
from redlist.ledger.note.cosignature import cosign_checkpoint, verify_cosignature
from redlist.ledger.note.keys import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    MAX_TIMESTAMP,
    NoteSigner,
    VerifierKey,
    compute_key_hash,
    parse_signer_key,
)
from redlist.ledger.note.signed import MAX_SIGNATURES, Note, NoteSignature, open_note, sign_note

TESSERA_SIZES = range(16)
EM_DASH = "\u2014"


def rfc6962_root(leaves: Sequence[bytes]) -> bytes:
    """The RFC 6962 Merkle tree hash, written out independently of redlist's own."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    split = 1 << ((len(leaves) - 1).bit_length() - 1)  # largest power of two below n
    left, right = rfc6962_root(leaves[:split]), rfc6962_root(leaves[split:])
    return hashlib.sha256(b"\x01" + left + right).digest()


def fixed_signer(name: str, number: int = 1) -> NoteSigner:
    return NoteSigner(name, crypto.SigningKey.from_seed(bytes([number]) * 32))


# --- the C2SP example -------------------------------------------------------


def test_c2sp_example_verifies() -> None:
    example = c2sp_example()
    key = VerifierKey.parse(example.vkey)
    assert key.name == "example.com/foo"
    assert key.algorithm == ALG_ED25519
    assert key.encode() == example.vkey
    note = open_note(example.note, key)
    assert note.text == "This is an example message.\n"
    assert note.encode() == example.note
    assert open_note(example.note.encode("utf-8"), key) == note


def test_c2sp_example_with_altered_text_is_refused() -> None:
    example = c2sp_example()
    altered = example.note.replace("example message", "example massage")
    with pytest.raises(NoteError, match="does not verify"):
        open_note(altered, VerifierKey.parse(example.vkey))


# --- Tessera's test log -----------------------------------------------------


def test_tessera_keys_round_trip() -> None:
    log = tessera_log()
    signer = parse_signer_key(log.skey)
    assert signer.name == "example.com/log/testdata"
    assert signer.encode() == log.skey
    assert NoteSigner.parse(log.skey) == signer
    assert signer.verifier() == VerifierKey.parse(log.vkey)
    assert signer.verifier().encode() == log.vkey


@pytest.mark.parametrize("size", TESSERA_SIZES)
def test_tessera_checkpoint_opens_with_the_right_root(size: int) -> None:
    log = tessera_log()
    data = log.checkpoints[size]
    checkpoint = open_checkpoint(data, VerifierKey.parse(log.vkey))
    assert checkpoint.origin == "example.com/log/testdata"
    assert checkpoint.size == size
    assert checkpoint.root == rfc6962_root(log.leaves[:size])
    assert checkpoint.checkpoint.extensions == ()
    assert checkpoint.note.encode("utf-8") == data
    assert checkpoint.text == checkpoint.checkpoint.to_text()
    assert (
        checkpoint.checkpoint.to_text().encode("utf-8") + b"\n" == data[: data.index(b"\n\n") + 2]
    )


@pytest.mark.parametrize("size", TESSERA_SIZES)
def test_tessera_checkpoint_is_reproduced_byte_for_byte(size: int) -> None:
    log = tessera_log()
    data = log.checkpoints[size]
    checkpoint = Checkpoint("example.com/log/testdata", size, rfc6962_root(log.leaves[:size]))
    assert sign_checkpoint(checkpoint, parse_signer_key(log.skey)).to_bytes() == data
    assert Note.parse(data).encode().encode("utf-8") == data


def _accepted_single_byte_changes(data: bytes, vkey: str) -> list[tuple[int, int]]:
    """Every (position, new byte) whose single-byte change ``open_checkpoint`` accepts."""
    log_key = VerifierKey.parse(vkey)
    accepted = []
    for position, original in enumerate(data):
        for value in range(256):
            if value == original:
                continue
            changed = data[:position] + bytes([value]) + data[position + 1 :]
            try:
                open_checkpoint(changed, log_key)
            except NoteError:
                continue
            accepted.append((position, value))
    return accepted


def test_every_single_byte_change_of_every_checkpoint_is_refused() -> None:
    """All 255 replacements of every byte of all sixteen checkpoints (~800k notes).

    Nothing may slip through: canonical base64 leaves no spare bits, a changed key
    name or hash makes the signature unknown (and the note unsigned), and any
    other change alters the signed text or the signature itself.
    """
    log = tessera_log()
    # Two processes: the sweep is mostly Python, which threads cannot overlap.
    # "spawn" because forking a test process that may hold other threads is unsafe.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        results = list(
            pool.map(
                _accepted_single_byte_changes,
                log.checkpoints,
                [log.vkey] * len(log.checkpoints),
            )
        )
    accepted = {size: changes for size, changes in enumerate(results) if changes}
    assert accepted == {}, f"accepted changes (size: [(position, new byte)]): {accepted}"


# --- verifier keys ----------------------------------------------------------


def test_cosignature_verifier_key_from_transparency_dev() -> None:
    # A real witness key of type 0x04, from transparency-dev/formats'
    # note/note_cosigv1_test.go (Apache-2.0): the key hash covers the 0x04 byte.
    text = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
    key = VerifierKey.parse(text)
    assert key.algorithm == ALG_COSIGNATURE_V1
    assert key.key_hash == compute_key_hash(key.name, ALG_COSIGNATURE_V1, key.public)
    assert key.encode() == text


def test_key_hash_definition() -> None:
    public = bytes(range(32))
    expected = hashlib.sha256(b"town.example/log\n\x01" + public).digest()[:4]
    assert compute_key_hash("town.example/log", ALG_ED25519, public) == expected
    key = VerifierKey.for_ed25519("town.example/log", public)
    assert key.key_hash == expected
    assert key.encode() == (
        "town.example/log+" + expected.hex() + "+" + base64.b64encode(b"\x01" + public).decode()
    )
    cosigning = VerifierKey.for_cosignature("town.example/log", public)
    assert cosigning.key_hash == hashlib.sha256(b"town.example/log\n\x04" + public).digest()[:4]


def _vkey(name: str, public: bytes, algorithm: int = ALG_ED25519, hash_hex: str = "") -> str:
    key_hash = hash_hex or compute_key_hash(name, algorithm, public).hex()
    material = base64.b64encode(bytes([algorithm]) + public).decode()
    return f"{name}+{key_hash}+{material}"


GOOD_PUBLIC = bytes(range(32))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "no-plus-at-all",
        "name+0badc0de",
        _vkey("town", GOOD_PUBLIC, hash_hex="00000000"),  # wrong key hash
        _vkey("town", GOOD_PUBLIC).replace("+", "+", 1).upper(),  # uppercase everything
        "town+"
        + compute_key_hash("town", 1, GOOD_PUBLIC).hex().upper()
        + "+"
        + base64.b64encode(b"\x01" + GOOD_PUBLIC).decode(),  # uppercase hex
        _vkey("town", GOOD_PUBLIC, hash_hex="1234567"),  # short hash
        _vkey("town", GOOD_PUBLIC, algorithm=0x02),  # other algorithm
        _vkey("town", GOOD_PUBLIC[:31]),  # short key
        _vkey("town", GOOD_PUBLIC + b"\x00"),  # long key
        _vkey("town", GOOD_PUBLIC) + "\n",  # trailing newline
        " " + _vkey("town", GOOD_PUBLIC),
        _vkey("town", GOOD_PUBLIC)[:-1] + "!",  # not base64
        "two words+"
        + compute_key_hash("two words", 1, GOOD_PUBLIC).hex()
        + "+"
        + base64.b64encode(b"\x01" + GOOD_PUBLIC).decode(),
        "+"
        + compute_key_hash("", 1, GOOD_PUBLIC).hex()
        + "+"
        + base64.b64encode(b"\x01" + GOOD_PUBLIC).decode(),  # empty name
    ],
)
def test_bad_verifier_keys_are_refused(text: str) -> None:
    with pytest.raises(NoteError):
        VerifierKey.parse(text)


def test_verifier_key_base64_must_be_canonical() -> None:
    # 33 bytes encode to 44 characters without padding, so there are no spare bits;
    # changing any character must change the key (and so break the hash).
    text = _vkey("town", GOOD_PUBLIC)
    prefix_length = text.rindex("+") + 1
    for position in range(prefix_length, len(text)):
        for character in "AQgw+/9z":
            if character == text[position]:
                continue
            with pytest.raises(NoteError):
                VerifierKey.parse(text[:position] + character + text[position + 1 :])


def test_verifier_key_construction_checks_the_hash() -> None:
    with pytest.raises(NoteError, match="key hash"):
        VerifierKey("town", b"\x00" * 4, GOOD_PUBLIC, ALG_ED25519)
    with pytest.raises(NoteError):
        VerifierKey.for_ed25519("town+1", GOOD_PUBLIC)
    with pytest.raises(NoteError):
        VerifierKey.for_ed25519("town", GOOD_PUBLIC[:16])


# --- signer keys ------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "example.com/log/testdata+33d7b496+AeymY/SZAX0jZcJ8enZ5FY1Dz+wTML2yWSkK+9DSF3eg",
        "PRIVATE+KEY+example.com/log/testdata+33d7b497+AeymY/SZAX0jZcJ8enZ5FY1Dz+wTML2yWSkK+9DSF3eg",
        "PRIVATE+KEY+example.com/log/testdatb+33d7b496+AeymY/SZAX0jZcJ8enZ5FY1Dz+wTML2yWSkK+9DSF3eg",
        "PRIVATE+KEY+example.com/log/testdata+33d7b496+AeymY/SZAX0jZcJ8enZ5FY1Dz+wTML2yWSkK+9DSF3eh",
        "PRIVATE+KEY+example.com/log/testdata+33d7b496+BOymY/SZAX0jZcJ8enZ5FY1Dz+wTML2yWSkK+9DSF3eg",
        "PRIVATE+KEY+example.com/log/testdata+33d7b496",
        "PRIVATE+KEY+example.com/log/testdata+33d7b496+AeymY/SZAX0jZcJ8enZ5FY1Dz+wTML2yWSkK+9DSF3",
        "PRIVATE+KEY+ex ample+33d7b496+AeymY/SZAX0jZcJ8enZ5FY1Dz+wTML2yWSkK+9DSF3eg",
    ],
)
def test_bad_signer_keys_are_refused_without_echoing_the_secret(text: str) -> None:
    with pytest.raises(KeyFileError) as caught:
        NoteSigner.parse(text)
    assert "AeymY" not in str(caught.value)


def test_signer_generate_and_round_trip() -> None:
    signer = NoteSigner.generate("town.example/zhucheng")
    assert NoteSigner.parse(signer.encode()) == signer
    assert signer.verifier().name == signer.name
    assert signer.cosignature_verifier().algorithm == ALG_COSIGNATURE_V1
    assert signer.key.seed.hex() not in repr(signer)
    with pytest.raises(NoteError):
        NoteSigner("", signer.key)


# --- note structure ---------------------------------------------------------


def _signature_line(name: str, payload: bytes) -> str:
    return f"{EM_DASH} {name} {base64.b64encode(payload).decode()}\n"


GOOD_LINE = _signature_line("town", b"\x01\x02\x03\x04" + b"\x05" * 64)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("text\n" + GOOD_LINE, "blank line"),
        ("text\n\n", "signature line"),
        ("text\n\n" + GOOD_LINE[:-1], "complete signature line"),
        ("text\r\n\n" + GOOD_LINE, "control character"),
        ("te\txt\n\n" + GOOD_LINE, "control character"),
        ("text\n\n" + GOOD_LINE.replace(EM_DASH, "-"), "em dash"),
        ("text\n\n" + GOOD_LINE.replace(EM_DASH + " ", EM_DASH), "em dash"),
        ("text\n\n" + GOOD_LINE + "\n", "complete signature line"),
        ("text\n\n" + GOOD_LINE + "trailing", "complete signature line"),
        ("text\n\n" + GOOD_LINE + "\u2014 x\n", "space"),
        ("text\n\n" + _signature_line("to+wn", b"\x01" * 68), "'\\+'"),
        ("text\n\n" + _signature_line("", b"\x01" * 68), "empty"),
        ("text\n\n" + GOOD_LINE.replace("town", "to\u00a0wn"), "spaces"),
        ("text\n\n" + _signature_line("town", b"\x01\x02\x03\x04"), "too short"),
        ("text\n\n" + GOOD_LINE.replace("=\n", "\n"), "base64"),
        ("text\n\n" + GOOD_LINE.replace("=\n", "==\n"), "base64"),
        ("text\n\n" + GOOD_LINE.replace(" AQID", " AQID "), "base64"),
        ("text\n\n" + GOOD_LINE.replace("QU=\n", "QV=\n"), "canonical"),
        ("text\n\n" + GOOD_LINE + GOOD_LINE, "two signatures"),
        ("\ud800\n\n" + GOOD_LINE, "UTF-8"),
        (b"text\xff\n\n" + GOOD_LINE.encode(), "UTF-8"),
        (b"text\xe2\x80\n\n" + GOOD_LINE.encode(), "UTF-8"),
        ("", "blank line"),
        (b"", "blank line"),
    ],
)
def test_malformed_notes_are_refused(data: str | bytes, reason: str) -> None:
    with pytest.raises(NoteError, match=reason):
        Note.parse(data)


def test_limits_on_signatures() -> None:
    lines = [
        _signature_line(f"witness{number}", b"\x00\x00\x00\x00" + b"\x01" * 64)
        for number in range(MAX_SIGNATURES + 1)
    ]
    assert len(Note.parse("text\n\n" + "".join(lines[:MAX_SIGNATURES])).signatures) == 100
    with pytest.raises(NoteError, match="at most 100"):
        Note.parse("text\n\n" + "".join(lines))


def test_note_size_limit() -> None:
    text = "x" * (1 << 20) + "\n"
    with pytest.raises(NoteError, match="at most"):
        Note.parse(text + "\n" + GOOD_LINE)
    with pytest.raises(NoteError, match="at most"):
        Note.parse((text + "\n" + GOOD_LINE).encode())
    with pytest.raises(NoteError, match="at most"):
        sign_note(text, fixed_signer("town"))


def test_text_may_hold_blank_lines_and_unicode() -> None:
    signer = fixed_signer("县/红名单")
    text = "Ognuno sta solo\n\n积分 公示\n\n"
    note = open_note(sign_note(text, signer), signer.verifier())
    assert note.text == text


def test_signing_needs_a_valid_text_and_a_signer() -> None:
    signer = fixed_signer("town")
    for text in ("", "no newline", "tab\there\n", "\ud800\n"):
        with pytest.raises(NoteError):
            sign_note(text, signer)
    with pytest.raises(NoteError, match="at least one signer"):
        sign_note("text\n")
    with pytest.raises(NoteError, match="two signatures"):
        sign_note("text\n", signer, signer)


# --- verification rules -----------------------------------------------------


def test_unknown_signatures_are_ignored() -> None:
    log, stranger = fixed_signer("town", 1), fixed_signer("elsewhere", 2)
    # Same name as the log key but another key (so another hash), and another
    # name with the log key's own hash: both unknown, both ignored.
    impostor = fixed_signer("town", 3)
    data = sign_note("text\n", stranger, log, impostor)
    borrowed = NoteSignature("other", log.verifier().key_hash, b"\x00" * 64)
    note = Note.parse(data)
    data = Note(note.text, (*note.signatures, borrowed)).encode()
    assert open_note(data, log.verifier()).text == "text\n"


def test_a_failing_known_signature_refuses_the_note() -> None:
    first, second = fixed_signer("first", 1), fixed_signer("second", 2)
    note = Note.parse(sign_note("text\n", first, second))
    broken = NoteSignature("second", note.signatures[1].key_hash, b"\x00" * 64)
    data = Note(note.text, (note.signatures[0], broken)).encode()
    assert open_note(data, first.verifier()).text == "text\n"  # second is unknown here
    with pytest.raises(NoteError, match="second"):
        open_note(data, first.verifier(), second.verifier())


def test_a_note_without_a_trusted_signature_is_refused() -> None:
    log, other = fixed_signer("town", 1), fixed_signer("town", 2)
    data = sign_note("text\n", log)
    with pytest.raises(NoteError, match="no signature by a trusted key"):
        open_note(data, other.verifier())
    with pytest.raises(NoteError, match="no trusted key"):
        open_note(data)


def test_ambiguous_trusted_keys_are_refused() -> None:
    log = fixed_signer("town", 1)
    genuine = log.verifier()
    forged = VerifierKey.__new__(VerifierKey)  # a colliding key, built past the hash check
    for field, value in (
        ("name", genuine.name),
        ("key_hash", genuine.key_hash),
        ("public", bytes(32)),
        ("algorithm", ALG_ED25519),
    ):
        object.__setattr__(forged, field, value)
    with pytest.raises(NoteError, match="share the name and key hash"):
        open_note(sign_note("text\n", log), genuine, forged)
    assert open_note(sign_note("text\n", log), genuine, genuine).text == "text\n"


# --- checkpoints ------------------------------------------------------------


ROOT = hashlib.sha256(b"root").digest()
ROOT_B64 = base64.b64encode(ROOT).decode()
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
# 32 bytes leave 2 unused bits in the last base64 character; setting one keeps
# the decoded bytes but is not the canonical spelling.
SPARE_BITS_SET = _ALPHABET[_ALPHABET.index(ROOT_B64[-2]) ^ 1]


@pytest.mark.parametrize(
    "text",
    [
        f"town\n01\n{ROOT_B64}\n",
        f"town\n+1\n{ROOT_B64}\n",
        f"town\n-1\n{ROOT_B64}\n",
        f"town\n 1\n{ROOT_B64}\n",
        f"town\n1 \n{ROOT_B64}\n",
        f"town\n\uff11\n{ROOT_B64}\n",  # a fullwidth digit one
        f"town\n1_000\n{ROOT_B64}\n",
        f"town\n0x10\n{ROOT_B64}\n",
        f"town\n{MAX_TREE_SIZE + 1}\n{ROOT_B64}\n",
        f"town\n{'9' * 5000}\n{ROOT_B64}\n",
        f"town\n\n{ROOT_B64}\n",
        f"town\n1\n{base64.b64encode(ROOT[:31]).decode()}\n",
        f"town\n1\n{base64.b64encode(ROOT + b'x').decode()}\n",
        f"town\n1\n{ROOT_B64[:-2]}{SPARE_BITS_SET}=\n",  # same bytes, not canonical
        f"town\n1\n{ROOT_B64.rstrip('=')}\n",
        f"town\n1\n{ROOT_B64}",
        f"town\n1\n{ROOT_B64}\n\n",
        f"town\n1\n{ROOT_B64}\next\n\n",
        f"\n1\n{ROOT_B64}\n",
        "town\n1\n",
        "",
    ],
)
def test_malformed_checkpoint_texts_are_refused(text: str) -> None:
    with pytest.raises(NoteError):
        Checkpoint.from_text(text)


def test_checkpoint_text_layout() -> None:
    checkpoint = Checkpoint("town.example/log", 20852163, ROOT, ("ext one", "ext two"))
    assert checkpoint.to_text() == f"town.example/log\n20852163\n{ROOT_B64}\next one\next two\n"
    assert Checkpoint.from_text(checkpoint.to_text()) == checkpoint
    assert Checkpoint("t", MAX_TREE_SIZE, ROOT).to_text().split("\n")[1] == str(2**64 - 1)


@pytest.mark.parametrize(
    "arguments",
    [
        ("", 1, ROOT, ()),
        ("to\nwn", 1, ROOT, ()),
        ("town", -1, ROOT, ()),
        ("town", MAX_TREE_SIZE + 1, ROOT, ()),
        ("town", True, ROOT, ()),
        ("town", 1, ROOT[:31], ()),
        ("town", 1, ROOT, ("",)),
        ("town", 1, ROOT, ("a\nb",)),
        ("town", 1, ROOT, ["list"]),
    ],
)
def test_checkpoint_values_are_checked(arguments: tuple[object, ...]) -> None:
    with pytest.raises(NoteError):
        Checkpoint(*arguments)  # type: ignore[arg-type]


def test_checkpoint_origin_must_match_the_log_key() -> None:
    log = fixed_signer("town.example/log")
    checkpoint = Checkpoint("town.example/other", 3, ROOT)
    with pytest.raises(NoteError, match="origin"):
        sign_checkpoint(checkpoint, log)
    # Signed anyway (as a plain note): the log key verifies it, the origin does not match.
    with pytest.raises(NoteError, match="names log"):
        open_checkpoint(sign_note(checkpoint.to_text(), log), log.verifier())


def test_open_checkpoint_needs_a_log_key() -> None:
    log = fixed_signer("town.example/log")
    data = sign_checkpoint(Checkpoint("town.example/log", 1, ROOT), log)
    with pytest.raises(NoteError, match="not a log key"):
        open_checkpoint(data.note, log.cosignature_verifier())
    with pytest.raises(NoteError, match="no signature by a trusted key"):
        open_checkpoint(data.note, fixed_signer("town.example/log", 2).verifier())


def test_signed_text_that_is_no_checkpoint_is_refused() -> None:
    log = fixed_signer("town.example/log")
    with pytest.raises(NoteError, match="tree size"):
        open_checkpoint(sign_note("town.example/log\nmany\nroot\n", log), log.verifier())


# --- SignedCheckpoint ------------------------------------------------------


def test_a_signed_checkpoint_keeps_the_note_as_received() -> None:
    log = tessera_log()
    key = VerifierKey.parse(log.vkey)
    data = log.checkpoints[3]
    from_bytes = open_checkpoint(data, key)
    from_text = open_checkpoint(data.decode("utf-8"), key)
    assert from_bytes == from_text == SignedCheckpoint(data.decode("utf-8"), key)
    assert from_bytes.note.encode("utf-8") == from_bytes.to_bytes() == data
    assert from_bytes.log_key == key
    assert from_bytes.text == data[: data.index(b"\n\n") + 1].decode("utf-8")
    assert [line.encode() for line in from_bytes.signatures] == [
        line for line in data.decode("utf-8").splitlines() if line.startswith("\u2014 ")
    ]
    assert from_bytes.describe() == "log example.com/log/testdata at 3 entries"


def test_a_signed_checkpoint_exists_only_verified() -> None:
    log = fixed_signer("town.example/log")
    note = sign_checkpoint(Checkpoint("town.example/log", 7, ROOT), log).note
    with pytest.raises(NoteError, match="no signature by a trusted key"):
        SignedCheckpoint(note, fixed_signer("town.example/log", 2).verifier())
    with pytest.raises(NoteError, match="not a log key"):
        SignedCheckpoint(note, log.cosignature_verifier())
    with pytest.raises(NoteError, match="use open_checkpoint for bytes"):
        SignedCheckpoint(note.encode(), log.verifier())  # type: ignore[arg-type]
    with pytest.raises(NoteError, match="not valid UTF-8"):
        open_checkpoint(b"\xff" + note.encode(), log.verifier())
    with pytest.raises(NoteError, match="does not verify"):
        SignedCheckpoint(note.replace("\n7\n", "\n8\n"), log.verifier())


def test_signed_checkpoints_are_equal_by_note_and_key() -> None:
    log, witness = fixed_signer("town.example/log"), fixed_signer("w", 7)
    plain = sign_checkpoint(Checkpoint("town.example/log", 7, ROOT), log)
    cosigned = cosign_checkpoint(plain, witness, TIME)
    assert cosigned.checkpoint == plain.checkpoint
    assert cosigned != plain  # another note: more signature lines
    assert len({plain, open_checkpoint(plain.note, log.verifier())}) == 1


# --- cosignatures -----------------------------------------------------------


TIME = 1_700_000_000


def _signed_checkpoint() -> tuple[NoteSigner, SignedCheckpoint]:
    log = fixed_signer("town.example/log", 1)
    return log, sign_checkpoint(Checkpoint("town.example/log", 42, ROOT, ("ext",)), log)


def test_cosignature_round_trip_and_layout() -> None:
    log, data = _signed_checkpoint()
    witness = fixed_signer("county.example/witness", 7)
    cosigned = cosign_checkpoint(data, witness, TIME)
    assert cosigned.note.startswith(data.note)  # the log's signature stays first, unchanged
    assert cosigned.log_key == data.log_key
    assert verify_cosignature(cosigned, witness.cosignature_verifier()) == TIME
    assert open_checkpoint(cosigned.note, log.verifier()).size == 42
    assert open_note(cosigned.note, witness.cosignature_verifier()).text == data.text

    # Check the bytes against the tlog-cosignature definition, written out here.
    line = cosigned.signatures[-1]
    assert Note.parse(cosigned.note).signatures[-1] == line
    key_hash = hashlib.sha256(b"county.example/witness\n\x04" + witness.key.public).digest()[:4]
    assert (line.name, line.key_hash) == ("county.example/witness", key_hash)
    assert line.signature[:8] == TIME.to_bytes(8, "big")
    message = b"cosignature/v1\ntime 1700000000\n" + data.text.encode()
    assert crypto.verify(witness.key.public, message, line.signature[8:])


@pytest.mark.parametrize("timestamp", [0, 1, MAX_TIMESTAMP])
def test_cosignature_times_in_range(timestamp: int) -> None:
    _log, data = _signed_checkpoint()
    witness = fixed_signer("w", 7)
    assert (
        verify_cosignature(
            cosign_checkpoint(data, witness, timestamp), witness.cosignature_verifier()
        )
        == timestamp
    )


@pytest.mark.parametrize("timestamp", [-1, MAX_TIMESTAMP + 1, True, 1.5])
def test_cosignature_times_out_of_range(timestamp: object) -> None:
    _log, data = _signed_checkpoint()
    with pytest.raises(NoteError):
        cosign_checkpoint(data, fixed_signer("w", 7), timestamp)  # type: ignore[arg-type]


def test_cosigning_again_replaces_the_earlier_cosignature() -> None:
    _log, data = _signed_checkpoint()
    witness = fixed_signer("w", 7)
    twice = cosign_checkpoint(cosign_checkpoint(data, witness, TIME), witness, TIME + 60)
    assert len(twice.signatures) == 2
    assert verify_cosignature(twice, witness.cosignature_verifier()) == TIME + 60


def test_tampered_cosignatures_are_refused() -> None:
    log, data = _signed_checkpoint()
    witness = fixed_signer("w", 7)
    key = witness.cosignature_verifier()
    cosigned = cosign_checkpoint(data, witness, TIME)
    note = Note.parse(cosigned.note)
    line = note.signatures[-1]

    def with_signature(signature: bytes) -> SignedCheckpoint:
        text = Note(
            note.text, (note.signatures[0], NoteSignature("w", line.key_hash, signature))
        ).encode()
        return open_checkpoint(text, log.verifier())

    later = (TIME + 1).to_bytes(8, "big") + line.signature[8:]
    huge = (MAX_TIMESTAMP + 1).to_bytes(8, "big") + line.signature[8:]
    for bad in (later, huge, line.signature[:-1], line.signature + b"\x00", line.signature[8:]):
        with pytest.raises(NoteError, match="cosignature by w"):
            verify_cosignature(with_signature(bad), key)
        with pytest.raises(NoteError, match="does not verify"):
            open_note(with_signature(bad).note, key)
    # The same cosignature line on another checkpoint of the log.
    other = sign_checkpoint(Checkpoint("town.example/log", 43, ROOT, ("ext",)), log)
    moved = Note(other.text, (*other.signatures, line)).encode()
    with pytest.raises(NoteError, match="does not verify"):
        verify_cosignature(open_checkpoint(moved, log.verifier()), key)
    with pytest.raises(NoteError, match="no cosignature by witness"):
        verify_cosignature(data, key)
    with pytest.raises(NoteError, match="not a cosigning key"):
        verify_cosignature(cosigned, witness.verifier())
    # A plain Ed25519 signature by the witness key is no cosignature.
    by_witness_key = Note.parse(sign_note(note.text, witness)).signatures[0]
    plainly_signed = Note(note.text, (note.signatures[0], by_witness_key)).encode()
    with pytest.raises(NoteError, match="no cosignature"):
        verify_cosignature(open_checkpoint(plainly_signed, log.verifier()), key)
    # And a cosignature is not a plain signature: the log's key-hash rule differs.
    with pytest.raises(NoteError, match="no signature by a trusted key"):
        open_note(cosigned.note, witness.verifier())
    assert open_checkpoint(cosigned.note, log.verifier()).size == 42


# --- properties -------------------------------------------------------------

# Key names: no whitespace (Zs/Zl/Zp and the Cc spaces), no control characters,
# no '+', no lone surrogates.
names = st.text(
    st.characters(exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), exclude_characters="+"),
    min_size=1,
    max_size=24,
)
line_characters = st.characters(
    exclude_categories=["Cs"], exclude_characters=[chr(code) for code in range(32)]
)
lines = st.text(line_characters, min_size=1, max_size=40)
texts = st.text(st.one_of(line_characters, st.just("\n")), max_size=200).map(
    lambda text: text + "\n"
)
signatures = st.builds(
    NoteSignature,
    name=names,
    key_hash=st.binary(min_size=4, max_size=4),
    signature=st.binary(min_size=1, max_size=100),
)
checkpoints = st.builds(
    Checkpoint,
    origin=lines,
    size=st.integers(0, MAX_TREE_SIZE),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(lines, max_size=3).map(tuple),
)


@settings(max_examples=200)
@given(
    name=names,
    public=st.binary(min_size=32, max_size=32),
    algorithm=st.sampled_from([ALG_ED25519, ALG_COSIGNATURE_V1]),
)
def test_verifier_key_round_trip(name: str, public: bytes, algorithm: int) -> None:
    key = VerifierKey(name, compute_key_hash(name, algorithm, public), public, algorithm)
    assert VerifierKey.parse(key.encode()) == key


@settings(max_examples=200)
@given(
    text=texts,
    signature_list=st.lists(
        signatures, min_size=1, max_size=5, unique_by=lambda s: (s.name, s.key_hash)
    ),
)
def test_note_round_trip(text: str, signature_list: list[NoteSignature]) -> None:
    note = Note(text, tuple(signature_list))
    encoded = note.encode()
    assert Note.parse(encoded) == note
    assert Note.parse(encoded.encode("utf-8")) == note


@settings(max_examples=200)
@given(checkpoint=checkpoints)
def test_checkpoint_round_trip(checkpoint: Checkpoint) -> None:
    assert Checkpoint.from_text(checkpoint.to_text()) == checkpoint


@settings(max_examples=30)
@given(
    origin=names,
    checkpoint=checkpoints,
    timestamp=st.integers(0, MAX_TIMESTAMP),
)
def test_sign_open_cosign_round_trip(origin: str, checkpoint: Checkpoint, timestamp: int) -> None:
    signer = fixed_signer(origin)
    checkpoint = Checkpoint(origin, checkpoint.size, checkpoint.root, checkpoint.extensions)
    data = sign_checkpoint(checkpoint, signer)
    assert open_checkpoint(data.note, signer.verifier()) == data
    assert data.checkpoint == checkpoint
    witness = fixed_signer("w", 9)
    cosigned = cosign_checkpoint(data, witness, timestamp)
    assert verify_cosignature(cosigned, witness.cosignature_verifier()) == timestamp
    assert open_checkpoint(cosigned.to_bytes(), signer.verifier()).checkpoint == checkpoint


@settings(max_examples=300)
@given(data=st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_arbitrary_input_raises_only_note_error(data: bytes | str) -> None:
    key = fixed_signer("town").verifier()
    for parse in (
        Note.parse,
        lambda value: open_note(value, key),
        lambda value: open_checkpoint(value, key),
    ):
        with suppress(NoteError):
            parse(data)
    if isinstance(data, str):
        for parse_text in (VerifierKey.parse, Checkpoint.from_text):
            with suppress(NoteError):
                parse_text(data)
        with suppress(KeyFileError):
            NoteSigner.parse(data)


@settings(max_examples=300)
@given(
    data=st.one_of(
        st.builds(lambda name, rest: f"{name}+{rest}", names, st.text(max_size=60)),
        st.builds(lambda name, rest: f"PRIVATE+KEY+{name}+{rest}", names, st.text(max_size=60)),
    )
)
def test_near_miss_key_strings_raise_only_their_errors(data: str) -> None:
    with suppress(NoteError):
        VerifierKey.parse(data)
    with suppress(KeyFileError):
        NoteSigner.parse(data)
