"""C2SP signed notes, checkpoints and witness cosignatures (DESIGN 3.5). Pure.

A *signed note* (c2sp.org/signed-note) is UTF-8 text with no control characters
other than newline. Its text ends with a newline; after it comes one blank line,
then one or more signature lines ``— <key name> <base64(key hash || signature)>``
(an em dash U+2014 and a space first). The text is everything up to the last
blank line. Key names are non-empty and contain no whitespace and no ``+``.
The 4-byte key hash is ``SHA-256(name || "\\n" || algorithm || public key)[:4]``.

* Algorithm 0x01, Ed25519: the signature is Ed25519 over the note text.
* Algorithm 0x04, cosignature/v1 (c2sp.org/tlog-cosignature): the signature is
  an 8-byte big-endian POSIX time ``T`` followed by Ed25519 over
  ``"cosignature/v1\\ntime T\\n" || note text``.

A verifier ignores signatures by keys it does not know, refuses the note when a
known key's signature fails, and accepts it when at least one known key's
signature verifies. Keys are exchanged as *verifier key* strings
``<name>+<8 hex digits of key hash>+<base64(algorithm || public key)>``; a log
keeps its private key as ``PRIVATE+KEY+<name>+<key hash>+<base64(0x01 || seed)>``.

A *checkpoint* (c2sp.org/tlog-checkpoint) is a note whose text is the log's
origin, its tree size in decimal, its base64 RFC 6962 root hash, then optional
non-empty extension lines, one per line. The log signs it with the key named
after the origin; witnesses add cosignatures.

Parsing is strict so that a note has exactly one encoding: base64 must be
canonical, and ``Note.parse(data).encode()`` gives back ``data``. Every malformed
input raises ``NoteError`` (``KeyFileError`` for private key strings).
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from redlist.ledger import crypto
from redlist.ledger.errors import KeyFileError, NoteError

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
ALGORITHMS = {ALG_ED25519: "Ed25519", ALG_COSIGNATURE_V1: "Ed25519 cosignature/v1"}

KEY_HASH_SIZE = 4
#: A verifier refuses notes with more signature lines than this.
MAX_SIGNATURES = 100
#: A verifier refuses notes larger than this many bytes.
MAX_NOTE_SIZE = 1 << 20
#: Tree sizes are unsigned 64-bit numbers.
MAX_TREE_SIZE = (1 << 64) - 1
#: Cosignature times are at most 2^63 - 1 (tlog-cosignature).
MAX_TIMESTAMP = (1 << 63) - 1
ROOT_HASH_SIZE = 32

SIGNATURE_PREFIX = "\u2014 "
PRIVATE_KEY_PREFIX = "PRIVATE+KEY+"
COSIGNATURE_HEADER = b"cosignature/v1\n"
_TIMESTAMP_SIZE = 8
_COSIGNATURE_SIZE = _TIMESTAMP_SIZE + crypto.SIGNATURE_SIZE

_FORBIDDEN_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")
_TREE_SIZE = re.compile("0|[1-9][0-9]*")
_KEY_HASH_HEX = re.compile("[0-9a-f]{8}")
# Key names: no '+', no control characters, no whitespace. In a str pattern \s is
# exactly str.isspace(): Unicode White_Space (what Go's unicode.IsSpace tests) plus
# U+001C..U+001F, which are control characters anyway.
_NAME_FORBIDDEN = re.compile(r"[\s+\x00-\x1f]")


def compute_key_hash(name: str, algorithm: int, public: bytes) -> bytes:
    """The 4-byte key hash: ``SHA-256(name || "\\n" || algorithm || public)[:4]``."""
    material = name.encode("utf-8") + b"\n" + bytes([algorithm]) + public
    return hashlib.sha256(material).digest()[:KEY_HASH_SIZE]


@dataclass(frozen=True)
class VerifierKey:
    """A public note key: the name, key hash, raw public key and algorithm byte.

    ``algorithm`` is ``ALG_ED25519`` for a log key and ``ALG_COSIGNATURE_V1`` for
    a witness's cosigning key. The key hash is checked on construction.
    """

    name: str
    key_hash: bytes
    public: bytes
    algorithm: int

    def __post_init__(self) -> None:
        _check_name(self.name, "key name")
        name = _excerpt(self.name)
        if type(self.algorithm) is not int or self.algorithm not in ALGORITHMS:
            raise NoteError(f"key {name}: key algorithm {self.algorithm!r} is not supported")
        if not isinstance(self.public, bytes) or len(self.public) != crypto.PUBLIC_KEY_SIZE:
            raise NoteError(f"key {name}: a public key is {crypto.PUBLIC_KEY_SIZE} bytes")
        if self.key_hash != compute_key_hash(self.name, self.algorithm, self.public):
            raise NoteError(
                f"key {name}: the key hash does not match the name and public key;"
                " the key string is damaged"
            )

    @classmethod
    def for_ed25519(cls, name: str, public: bytes) -> VerifierKey:
        """The verifier key of an Ed25519 note signer (a log key)."""
        return cls._make(name, ALG_ED25519, public)

    @classmethod
    def for_cosignature(cls, name: str, public: bytes) -> VerifierKey:
        """The verifier key of an Ed25519 cosignature/v1 witness."""
        return cls._make(name, ALG_COSIGNATURE_V1, public)

    @classmethod
    def _make(cls, name: str, algorithm: int, public: bytes) -> VerifierKey:
        _check_name(name, "key name")
        if not isinstance(public, bytes) or len(public) != crypto.PUBLIC_KEY_SIZE:
            raise NoteError(f"key {name}: a public key is {crypto.PUBLIC_KEY_SIZE} bytes")
        return cls(name, compute_key_hash(name, algorithm, public), public, algorithm)

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """Read ``<name>+<key hash hex>+<base64(algorithm || public key)>``.

        The hex is 8 lowercase digits and the base64 canonical, as ``encode``
        writes them; surrounding whitespace is not accepted.
        """
        if not isinstance(text, str):
            raise NoteError("a verifier key is text")
        parts = text.split("+", 2)
        if len(parts) != 3:
            raise NoteError(
                "a verifier key has the form <name>+<key hash>+<key>, with two '+' separators"
            )
        name, hash_hex, key_base64 = parts
        _check_name(name, "key name")
        if not _KEY_HASH_HEX.fullmatch(hash_hex):
            raise NoteError(f"key {name}: the key hash must be 8 lowercase hex digits")
        material = _decode_base64(key_base64, f"key {name}: the key")
        if len(material) != 1 + crypto.PUBLIC_KEY_SIZE or material[0] not in ALGORITHMS:
            raise NoteError(
                f"key {name}: not an Ed25519 key (algorithm byte 0x01 or 0x04 and 32 key bytes)"
            )
        return cls(name, bytes.fromhex(hash_hex), material[1:], material[0])

    def encode(self) -> str:
        """The verifier key string (what ``parse`` reads)."""
        material = bytes([self.algorithm]) + self.public
        return f"{self.name}+{self.key_hash.hex()}+{_encode_base64(material)}"

    def __str__(self) -> str:
        return self.encode()


@dataclass(frozen=True)
class NoteSigner:
    """A named Ed25519 key that signs notes (a log key or a witness key)."""

    name: str
    key: crypto.SigningKey

    def __post_init__(self) -> None:
        _check_name(self.name, "key name")
        if not isinstance(self.key, crypto.SigningKey):
            raise NoteError("a note signer needs an Ed25519 signing key")

    @classmethod
    def generate(cls, name: str) -> NoteSigner:
        """A signer with a new random key."""
        return cls(name, crypto.SigningKey.generate())

    @classmethod
    def parse(cls, text: str) -> NoteSigner:
        """Read ``PRIVATE+KEY+<name>+<key hash hex>+<base64(0x01 || seed)>``.

        Raises ``KeyFileError``; messages never repeat the secret.
        """
        if not isinstance(text, str) or not text.startswith(PRIVATE_KEY_PREFIX):
            raise KeyFileError("a private note key starts with 'PRIVATE+KEY+'")
        parts = text[len(PRIVATE_KEY_PREFIX) :].split("+", 2)
        if len(parts) != 3:
            raise KeyFileError(
                "a private note key has the form PRIVATE+KEY+<name>+<key hash>+<key>"
            )
        name, hash_hex, key_base64 = parts
        problem = _name_problem(name)
        if problem is not None:
            raise KeyFileError(f"private note key: the key name {problem}")
        if not _KEY_HASH_HEX.fullmatch(hash_hex):
            raise KeyFileError(f"private key {name}: the key hash must be 8 lowercase hex digits")
        try:
            material = _decode_base64(key_base64, "the key")
        except NoteError as error:
            raise KeyFileError(f"private key {name}: the key is not canonical base64") from error
        if len(material) != 1 + crypto.SEED_SIZE or material[0] != ALG_ED25519:
            raise KeyFileError(
                f"private key {name}: not an Ed25519 key (algorithm byte 0x01 and a 32-byte seed)"
            )
        signer = cls(name, crypto.SigningKey.from_seed(material[1:]))
        if signer.verifier().key_hash.hex() != hash_hex:
            raise KeyFileError(
                f"private key {name}: the key hash does not match the key; the key is damaged"
            )
        return signer

    def encode(self) -> str:
        """The private key string (what ``parse`` reads). Keep it secret."""
        material = bytes([ALG_ED25519]) + self.key.seed
        key_hash = self.verifier().key_hash.hex()
        return f"{PRIVATE_KEY_PREFIX}{self.name}+{key_hash}+{_encode_base64(material)}"

    def verifier(self) -> VerifierKey:
        """The public key that checks this signer's note signatures."""
        return VerifierKey.for_ed25519(self.name, self.key.public)

    def cosignature_verifier(self) -> VerifierKey:
        """The public key that checks this signer's cosignatures (as a witness)."""
        return VerifierKey.for_cosignature(self.name, self.key.public)


def parse_signer_key(text: str) -> NoteSigner:
    """Read a ``PRIVATE+KEY+...`` string; the same as ``NoteSigner.parse``."""
    return NoteSigner.parse(text)


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 4-byte key hash, signature bytes (after the hash)."""

    name: str
    key_hash: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _check_name(self.name, "signature key name")
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
        _check_name(name, "signature key name")
        raw = _decode_base64(signature_base64, f"signature by {name}")
        if len(raw) <= KEY_HASH_SIZE:
            raise NoteError(f"signature by {name} is too short to hold a key hash and signature")
        return cls(name, raw[:KEY_HASH_SIZE], raw[KEY_HASH_SIZE:])

    def encode(self) -> str:
        """The signature line, without its newline."""
        encoded = _encode_base64(self.key_hash + self.signature)
        return f"{SIGNATURE_PREFIX}{self.name} {encoded}"

    def describe(self) -> str:
        """``name+keyhash`` for messages."""
        return f"{_excerpt(self.name)}+{self.key_hash.hex()}"


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
        _check_note_text(self.text)
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
        text = _note_text_from_input(data)
        control = _FORBIDDEN_CONTROL.search(text)
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
    _check_note_text(text)
    message = text.encode("utf-8")
    signatures = tuple(_ed25519_signature(signer, message) for signer in signers)
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
        if not _signature_verifies(key, message, signature.signature):
            raise NoteError(
                f"the signature by {signature.describe()} does not verify: the note was"
                " changed after signing, or this key did not sign it"
            )
        verified += 1
    if verified == 0:
        expected = ", ".join(f"{_excerpt(key.name)}+{key.key_hash.hex()}" for key in known)
        present = ", ".join(signature.describe() for signature in note.signatures)
        raise NoteError(
            f"the note carries no signature by a trusted key (trusted: {expected};"
            f" signed by: {present})"
        )
    return note


@dataclass(frozen=True)
class Checkpoint:
    """A log's signed state: origin, tree size, RFC 6962 root hash, extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "the checkpoint origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise NoteError("the checkpoint tree size must be an integer")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise NoteError(f"the checkpoint tree size {self.size} is out of range")
        if not isinstance(self.root, bytes) or len(self.root) != ROOT_HASH_SIZE:
            raise NoteError(f"the checkpoint root hash must be {ROOT_HASH_SIZE} bytes")
        if not isinstance(self.extensions, tuple):
            raise NoteError("checkpoint extension lines must be a tuple")
        for extension in self.extensions:
            _check_line(extension, "a checkpoint extension line")

    def to_text(self) -> str:
        """The checkpoint's note text (what the log signs)."""
        lines = [
            self.origin,
            str(self.size),
            _encode_base64(self.root),
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
                f" found {_excerpt(size_text)!r}"
            )
        # Checked before int(): a huge digit string is refused, not converted.
        if len(size_text) > len(str(MAX_TREE_SIZE)) or int(size_text) > MAX_TREE_SIZE:
            raise NoteError(f"the checkpoint tree size {_excerpt(size_text)} is out of range")
        root = _decode_base64(root_text, "checkpoint line 3 (root hash)")
        if len(root) != ROOT_HASH_SIZE:
            raise NoteError(
                f"checkpoint line 3 must be a {ROOT_HASH_SIZE}-byte root hash,"
                f" found {len(root)} bytes"
            )
        return cls(origin, int(size_text), root, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> str:
    """The checkpoint as a note signed by the log key (whose name is the origin)."""
    if signer.name != checkpoint.origin:
        raise NoteError(
            f"the log key is named {_excerpt(signer.name)!r} but the checkpoint origin"
            f" is {_excerpt(checkpoint.origin)!r}; they must be the same"
        )
    return sign_note(checkpoint.to_text(), signer)


def open_checkpoint(data: bytes | str, log_key: VerifierKey) -> Checkpoint:
    """Verify a signed checkpoint against its log's key and return it.

    The log key's signature must verify and the origin must equal the key name;
    other signatures (witnesses) are ignored here, see ``verify_cosignature``.
    """
    if log_key.algorithm != ALG_ED25519:
        raise NoteError(f"key {_excerpt(log_key.name)} is a witness cosigning key, not a log key")
    try:
        note = open_note(data, log_key)
    except NoteError as error:
        raise NoteError(f"checkpoint of log {_excerpt(log_key.name)}: {error}") from None
    checkpoint = Checkpoint.from_text(note.text)
    if checkpoint.origin != log_key.name:
        raise NoteError(
            f"the checkpoint names log {_excerpt(checkpoint.origin)!r} but the key is"
            f" for log {_excerpt(log_key.name)!r}"
        )
    return checkpoint


def cosign_checkpoint(note: bytes | str, witness: NoteSigner, timestamp: int) -> str:
    """Append ``witness``'s cosignature/v1 at POSIX time ``timestamp`` to a checkpoint.

    Checks the checkpoint's form only: the witness must have verified the log's
    signature and the log's consistency before calling this. An earlier
    cosignature by the same witness key is replaced.
    """
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise NoteError("a cosignature time is an integer number of seconds")
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise NoteError(f"the cosignature time {timestamp} is out of range")
    parsed = Note.parse(note)
    Checkpoint.from_text(parsed.text)
    message = _cosigned_message(parsed.text.encode("utf-8"), timestamp)
    signed = timestamp.to_bytes(_TIMESTAMP_SIZE, "big") + witness.key.sign(message)
    key_hash = witness.cosignature_verifier().key_hash
    kept = tuple(
        signature
        for signature in parsed.signatures
        if (signature.name, signature.key_hash) != (witness.name, key_hash)
    )
    cosignature = NoteSignature(witness.name, key_hash, signed)
    return Note(parsed.text, (*kept, cosignature)).encode()


def verify_cosignature(note: bytes | str, witness: VerifierKey) -> int:
    """Check ``witness``'s cosignature on a checkpoint; return its POSIX time.

    Only the cosignature is checked; verify the log's own signature with
    ``open_checkpoint``.
    """
    name = _excerpt(witness.name)
    if witness.algorithm != ALG_COSIGNATURE_V1:
        raise NoteError(f"key {name} is not a cosigning key (algorithm 0x04 needed)")
    parsed = Note.parse(note)
    Checkpoint.from_text(parsed.text)
    for signature in parsed.signatures:
        if (signature.name, signature.key_hash) != (witness.name, witness.key_hash):
            continue
        timestamp = _cosignature_time(signature.signature)
        if timestamp is None:
            raise NoteError(f"the cosignature by {name} is malformed")
        message = _cosigned_message(parsed.text.encode("utf-8"), timestamp)
        if not crypto.verify(witness.public, message, signature.signature[_TIMESTAMP_SIZE:]):
            raise NoteError(
                f"the cosignature by {name} does not verify: the checkpoint was changed"
                " or this witness did not cosign it"
            )
        return timestamp
    raise NoteError(f"the checkpoint has no cosignature by witness {name}")


def _ed25519_signature(signer: NoteSigner, message: bytes) -> NoteSignature:
    return NoteSignature(signer.name, signer.verifier().key_hash, signer.key.sign(message))


def _signature_verifies(key: VerifierKey, message: bytes, signature: bytes) -> bool:
    if key.algorithm == ALG_ED25519:
        return crypto.verify(key.public, message, signature)
    timestamp = _cosignature_time(signature)
    if timestamp is None:
        return False
    cosigned = _cosigned_message(message, timestamp)
    return crypto.verify(key.public, cosigned, signature[_TIMESTAMP_SIZE:])


def _cosignature_time(signature: bytes) -> int | None:
    """The time of a well-formed cosignature/v1 signature, else None."""
    if len(signature) != _COSIGNATURE_SIZE:
        return None
    timestamp = int.from_bytes(signature[:_TIMESTAMP_SIZE], "big")
    return timestamp if timestamp <= MAX_TIMESTAMP else None


def _cosigned_message(text: bytes, timestamp: int) -> bytes:
    return COSIGNATURE_HEADER + b"time %d\n" % timestamp + text


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
                f"two different trusted keys share the name and key hash"
                f" {_excerpt(key.name)}+{key.key_hash.hex()}"
            )
    return trusted


def _note_text_from_input(data: bytes | str) -> str:
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


def _check_note_text(text: str) -> None:
    if not isinstance(text, str) or not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteError("note text is not valid UTF-8") from None
    if _FORBIDDEN_CONTROL.search(text):
        raise NoteError("note text may contain no control characters other than newline")


def _check_line(line: str, what: str) -> None:
    """A non-empty line of note text: no newline, no control character, valid UTF-8."""
    if not isinstance(line, str) or not line:
        raise NoteError(f"{what} must be non-empty text")
    if "\n" in line or _FORBIDDEN_CONTROL.search(line):
        raise NoteError(f"{what} may not contain a newline or control character")
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteError(f"{what} is not valid UTF-8") from None


def _name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a key name (empty, whitespace, '+', control), or None."""
    if not isinstance(name, str):
        return "must be text"
    if not name:
        return "must not be empty"
    forbidden = _NAME_FORBIDDEN.search(name)
    if forbidden is not None:
        kind = "'+'" if forbidden.group() == "+" else "spaces or control characters"
        return f"{_excerpt(name)!r} must not contain {kind}"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    return None


def _check_name(name: str, what: str) -> None:
    problem = _name_problem(name)
    if problem is not None:
        raise NoteError(f"the {what} {problem}")


def _decode_base64(text: str, what: str) -> bytes:
    """Strict, canonical standard base64 (padding required, no stray bits)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise NoteError(f"{what} is not valid base64") from None
    # A decoder ignores the unused low bits of the last character; requiring the
    # canonical spelling gives every value exactly one encoding.
    if _encode_base64(raw) != text:
        raise NoteError(f"{what} is not canonical base64")
    return raw


def _encode_base64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _excerpt(text: str, limit: int = 64) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
