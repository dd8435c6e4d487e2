"""Checkpoints (c2sp.org/tlog-checkpoint): the body a log signs, and ``SignedCheckpoint``. Pure.

A checkpoint's note text is the log's origin, its tree size in decimal, its
base64 RFC 6962 root hash, then optional non-empty extension lines, one per
line (``Checkpoint``). The log signs it with its Ed25519 key, which is named
after the origin; witnesses may add cosignatures.

``SignedCheckpoint`` is a checkpoint note that verified against its log's key.
It is built only by verifying (``open_checkpoint``, or signing with
``sign_checkpoint``), keeps the note exactly as it was received, and is what
every component passes around instead of the note's text: a checkpoint is
parsed and verified once, where it enters, and never again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from redlist.ledger.errors import NoteError
from redlist.ledger.note.keys import ALG_ED25519, NoteSigner, VerifierKey
from redlist.ledger.note.signed import NoteSignature, note_from_input, open_note, sign_note
from redlist.ledger.note.syntax import check_line, decode_base64, encode_base64, excerpt

#: Tree sizes are unsigned 64-bit numbers.
MAX_TREE_SIZE = (1 << 64) - 1
ROOT_HASH_SIZE = 32

_TREE_SIZE = re.compile("0|[1-9][0-9]*")


@dataclass(frozen=True)
class Checkpoint:
    """A log's state: origin, tree size, RFC 6962 root hash, extension lines (unsigned)."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_line(self.origin, "the checkpoint origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise NoteError("the checkpoint tree size must be an integer")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise NoteError(f"the checkpoint tree size {self.size} is out of range")
        if not isinstance(self.root, bytes) or len(self.root) != ROOT_HASH_SIZE:
            raise NoteError(f"the checkpoint root hash must be {ROOT_HASH_SIZE} bytes")
        if not isinstance(self.extensions, tuple):
            raise NoteError("checkpoint extension lines must be a tuple")
        for extension in self.extensions:
            check_line(extension, "a checkpoint extension line")

    def to_text(self) -> str:
        """The checkpoint's note text (what the log signs)."""
        lines = [
            self.origin,
            str(self.size),
            encode_base64(self.root),
            *self.extensions,
        ]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Read a checkpoint's note text; every deviation from ``to_text`` is an error."""
        if not isinstance(text, str) or not text.endswith("\n"):
            raise NoteError("the checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError("a checkpoint has at least three lines: origin, tree size, root hash")
        origin, size_text, root_text, *extensions = lines
        if not _TREE_SIZE.fullmatch(size_text):
            raise NoteError(
                f"checkpoint line 2 must be the tree size in decimal without leading zeros,"
                f" found {excerpt(size_text)!r}"
            )
        # Checked before int(): a huge digit string is refused, not converted.
        if len(size_text) > len(str(MAX_TREE_SIZE)) or int(size_text) > MAX_TREE_SIZE:
            raise NoteError(f"the checkpoint tree size {excerpt(size_text)} is out of range")
        root = decode_base64(root_text, "checkpoint line 3 (root hash)")
        if len(root) != ROOT_HASH_SIZE:
            raise NoteError(
                f"checkpoint line 3 must be a {ROOT_HASH_SIZE}-byte root hash,"
                f" found {len(root)} bytes"
            )
        return cls(origin, int(size_text), root, tuple(extensions))


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint note verified against its log's key; construction verifies it.

    ``note`` is the signed note exactly as received (store, serve, hash and quote
    it, never a re-serialisation); ``log_key`` the key it verified against, whose
    name is the origin. Derived, for reading: ``checkpoint`` (origin, size, root,
    extension lines), ``text`` (the part the log signed) and ``signatures`` (every
    signature line, the log's and any cosignatures, in the note's order).
    Two values are equal when their notes and keys are.

    Raises ``NoteError`` when the note is malformed, the log key's signature is
    missing or does not verify, or the origin is not the key's name.
    """

    note: str
    log_key: VerifierKey
    checkpoint: Checkpoint = field(init=False, compare=False, repr=False)
    text: str = field(init=False, compare=False, repr=False)
    signatures: tuple[NoteSignature, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.note, str):
            raise NoteError("a signed checkpoint is read from text; use open_checkpoint for bytes")
        if not isinstance(self.log_key, VerifierKey):
            raise NoteError("a checkpoint is verified against a VerifierKey")
        name = excerpt(self.log_key.name)
        if self.log_key.algorithm != ALG_ED25519:
            raise NoteError(f"key {name} is a witness cosigning key, not a log key")
        try:
            note = open_note(self.note, self.log_key)
        except NoteError as error:
            raise NoteError(f"checkpoint of log {name}: {error}") from None
        checkpoint = Checkpoint.from_text(note.text)
        if checkpoint.origin != self.log_key.name:
            raise NoteError(
                f"the checkpoint names log {excerpt(checkpoint.origin)!r} but the key is"
                f" for log {name!r}"
            )
        object.__setattr__(self, "checkpoint", checkpoint)
        object.__setattr__(self, "text", note.text)
        object.__setattr__(self, "signatures", note.signatures)

    @property
    def origin(self) -> str:
        return self.checkpoint.origin

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root

    def to_bytes(self) -> bytes:
        """The signed note's bytes, exactly as received (UTF-8)."""
        return self.note.encode("utf-8")

    def describe(self) -> str:
        """``log ORIGIN at N entries``, for messages."""
        return f"log {excerpt(self.origin)} at {self.size} entries"


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> SignedCheckpoint:
    """The checkpoint as a note signed by the log key (whose name is the origin)."""
    if signer.name != checkpoint.origin:
        raise NoteError(
            f"the log key is named {excerpt(signer.name)!r} but the checkpoint origin"
            f" is {excerpt(checkpoint.origin)!r}; they must be the same"
        )
    return SignedCheckpoint(sign_note(checkpoint.to_text(), signer), signer.verifier())


def open_checkpoint(data: bytes | str, log_key: VerifierKey) -> SignedCheckpoint:
    """Verify a signed checkpoint (bytes or text) against its log's key.

    The log key's signature must verify and the origin must equal the key name;
    other signatures (witnesses) are ignored here, see ``cosignature``.
    """
    return SignedCheckpoint(data if isinstance(data, str) else note_from_input(data), log_key)
