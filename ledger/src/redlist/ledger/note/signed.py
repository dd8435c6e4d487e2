"""Signed notes (c2sp.org/signed-note): parsing, signing, opening against trusted keys. Pure.

A note's text ends with a newline; after it come one blank line and one or more
signature lines ``— <key name> <base64(key hash || signature)>``. ``Note.parse``
checks the structure only; ``open_note`` also checks the signatures: it ignores
signatures by keys it does not know, refuses the note when a known key's
signature fails, and accepts it when at least one known key's signature
verifies. Every malformed input raises ``NoteError``.
"""

from __future__ import annotations

from dataclasses import dataclass

from redlist.ledger.errors import NoteError
from redlist.ledger.note.keys import KEY_HASH_SIZE, NoteSigner, VerifierKey
from redlist.ledger.note.syntax import (
    FORBIDDEN_CONTROL,
    MAX_NOTE_SIZE,
    check_name,
    check_note_text,
    decode_base64,
    encode_base64,
    excerpt,
)

#: A verifier refuses notes with more signature lines than this.
MAX_SIGNATURES = 100
SIGNATURE_PREFIX = "\u2014 "


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 4-byte key hash, signature bytes (after the hash)."""

    name: str
    key_hash: bytes
    signature: bytes

    def __post_init__(self) -> None:
        check_name(self.name, "signature key name")
        if not isinstance(self.key_hash, bytes) or len(self.key_hash) != KEY_HASH_SIZE:
            raise NoteError(f"signature by {self.name}: a key hash is {KEY_HASH_SIZE} bytes")
        if not isinstance(self.signature, bytes) or not self.signature:
            raise NoteError(f"signature by {self.name}: the signature is empty")

    @classmethod
    def parse(cls, line: str) -> NoteSignature:
        """Read one signature line, without its newline."""
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError("a signature line starts with an em dash (U+2014) and a space")
        name, space, signature_base64 = line[len(SIGNATURE_PREFIX) :].partition(" ")
        if not space:
            raise NoteError("a signature line has a key name, a space and a signature")
        check_name(name, "signature key name")
        raw = decode_base64(signature_base64, f"signature by {name}")
        if len(raw) <= KEY_HASH_SIZE:
            raise NoteError(f"signature by {name} is too short to hold a key hash and signature")
        return cls(name, raw[:KEY_HASH_SIZE], raw[KEY_HASH_SIZE:])

    def encode(self) -> str:
        """The signature line, without its newline."""
        encoded = encode_base64(self.key_hash + self.signature)
        return f"{SIGNATURE_PREFIX}{self.name} {encoded}"

    def describe(self) -> str:
        """``name+keyhash`` for messages."""
        return f"{excerpt(self.name)}+{self.key_hash.hex()}"

    def is_by(self, key: VerifierKey) -> bool:
        """Whether this line names ``key`` (its name and key hash)."""
        return (self.name, self.key_hash) == (key.name, key.key_hash)


@dataclass(frozen=True)
class Note:
    """A signed note: its text (ending in a newline) and one or more signatures.

    Construction checks every structural rule, so ``encode`` always produces a
    note that ``parse`` reads back unchanged. Nothing here says the signatures
    verify; that is ``open_note``'s job.
    """

    text: str
    signatures: tuple[NoteSignature, ...]

    def __post_init__(self) -> None:
        check_note_text(self.text)
        if not isinstance(self.signatures, tuple):
            raise NoteError("note signatures must be a tuple")
        if not self.signatures:
            raise NoteError("a signed note has at least one signature line")
        if len(self.signatures) > MAX_SIGNATURES:
            raise NoteError(
                f"the note has {len(self.signatures)} signatures;"
                f" at most {MAX_SIGNATURES} are accepted"
            )
        seen: set[tuple[str, bytes]] = set()
        for signature in self.signatures:
            if not isinstance(signature, NoteSignature):
                raise NoteError("note signatures must be NoteSignature values")
            identity = (signature.name, signature.key_hash)
            if identity in seen:
                raise NoteError(f"the note has two signatures by key {signature.describe()}")
            seen.add(identity)
        size = len(self.encode().encode("utf-8"))
        if size > MAX_NOTE_SIZE:
            raise NoteError(f"the note is {size} bytes; at most {MAX_NOTE_SIZE} are accepted")

    @classmethod
    def parse(cls, data: bytes | str) -> Note:
        """Split a signed note into text and signatures; check structure, not signatures."""
        text = note_from_input(data)
        control = FORBIDDEN_CONTROL.search(text)
        if control is not None:
            line_number = text.count("\n", 0, control.start()) + 1
            raise NoteError(
                f"the note has a control character (code {ord(control.group()):#04x})"
                f" on line {line_number}; only newlines are allowed"
            )
        split = text.rfind("\n\n")
        if split < 0:
            raise NoteError("the note has no blank line before its signature lines")
        body, block = text[: split + 1], text[split + 2 :]
        if not block.endswith("\n"):
            raise NoteError("the note does not end with a complete signature line")
        lines = block[:-1].split("\n")
        if len(lines) > MAX_SIGNATURES:
            raise NoteError(
                f"the note has {len(lines)} signatures; at most {MAX_SIGNATURES} are accepted"
            )
        signatures: list[NoteSignature] = []
        for number, line in enumerate(lines, start=1):
            try:
                signatures.append(NoteSignature.parse(line))
            except NoteError as error:
                raise NoteError(f"signature line {number}: {error}") from None
        return cls(body, tuple(signatures))

    def encode(self) -> str:
        """The signed note as text: the text, a blank line, the signature lines."""
        lines = "".join(signature.encode() + "\n" for signature in self.signatures)
        return f"{self.text}\n{lines}"


def sign_note(text: str, *signers: NoteSigner) -> str:
    """Sign ``text`` (which must end in a newline) with each signer, in order."""
    if not signers:
        raise NoteError("signing a note needs at least one signer")
    check_note_text(text)
    message = text.encode("utf-8")
    signatures = tuple(
        NoteSignature(signer.name, signer.verifier().key_hash, signer.key.sign(message))
        for signer in signers
    )
    return Note(text, signatures).encode()


def open_note(data: bytes | str, *known: VerifierKey) -> Note:
    """Parse a signed note and check it against the trusted keys ``known``.

    Signatures by other keys are ignored. A known key's signature that fails is
    an error, and so is a note with no verified signature by any known key.
    """
    trusted = _trusted_keys(known)
    note = Note.parse(data)
    message = note.text.encode("utf-8")
    verified = 0
    for signature in note.signatures:
        key = trusted.get((signature.name, signature.key_hash))
        if key is None:
            continue
        if not key.verifies(message, signature.signature):
            raise NoteError(
                f"the signature by {signature.describe()} does not verify: the note was"
                " changed after signing, or this key did not sign it"
            )
        verified += 1
    if verified == 0:
        expected = ", ".join(key.describe() for key in known)
        present = ", ".join(signature.describe() for signature in note.signatures)
        raise NoteError(
            f"the note carries no signature by a trusted key (trusted: {expected};"
            f" signed by: {present})"
        )
    return note


def note_from_input(data: bytes | str) -> str:
    """A note received as bytes or text, as text: strict UTF-8, at most ``MAX_NOTE_SIZE``."""
    if isinstance(data, str):
        try:
            size = len(data.encode("utf-8"))
        except UnicodeEncodeError:
            raise NoteError("the note is not valid UTF-8 text") from None
        if size > MAX_NOTE_SIZE:
            raise NoteError(f"the note is {size} bytes; at most {MAX_NOTE_SIZE} are accepted")
        return data
    if not isinstance(data, bytes | bytearray | memoryview):
        raise NoteError("a signed note is bytes or text")
    if len(data) > MAX_NOTE_SIZE:
        raise NoteError(f"the note is {len(data)} bytes; at most {MAX_NOTE_SIZE} are accepted")
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError as error:
        raise NoteError(f"the note is not valid UTF-8 (byte {error.start})") from None


def _trusted_keys(
    known: tuple[VerifierKey, ...],
) -> dict[tuple[str, bytes], VerifierKey]:
    if not known:
        raise NoteError("no trusted key was given to check the note against")
    trusted: dict[tuple[str, bytes], VerifierKey] = {}
    for key in known:
        if not isinstance(key, VerifierKey):
            raise NoteError("trusted keys must be VerifierKey values")
        identity = (key.name, key.key_hash)
        if trusted.setdefault(identity, key) != key:
            raise NoteError(
                f"two different trusted keys share the name and key hash {key.describe()}"
            )
    return trusted
