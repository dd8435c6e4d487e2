"""Note keys: verifier keys, note signers and their two signature algorithms. Pure.

A key is known by its name and 4-byte key hash,
``SHA-256(name || "\\n" || algorithm || public key)[:4]``.

* ``ALG_ED25519`` (0x01), a log's key: Ed25519 over the note text.
* ``ALG_COSIGNATURE_V1`` (0x04), a witness's key (c2sp.org/tlog-cosignature): an
  8-byte big-endian POSIX time ``T`` followed by Ed25519 over
  ``"cosignature/v1\\ntime T\\n" || note text``.

Public keys travel as verifier key strings
``<name>+<8 hex digits of key hash>+<base64(algorithm || public key)>``
(``VerifierKey``); a log keeps its private key as
``PRIVATE+KEY+<name>+<key hash>+<base64(0x01 || seed)>`` (``NoteSigner``).
Malformed public keys raise ``NoteError``, private key strings ``KeyFileError``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from redlist.ledger import crypto
from redlist.ledger.errors import KeyFileError, NoteError
from redlist.ledger.note.syntax import (
    check_name,
    decode_base64,
    encode_base64,
    excerpt,
    name_problem,
)
from redlist.ledger.wording import N_, worded, words

_PUBLIC_SIZE = N_("key {name}: a public key is {size} bytes")


def _refused(template: str, **values: object) -> NoteError:
    """A ``NoteError`` worded for translation (``wording``): its message is the
    English sentence, ``i18n.in_words`` shows it in the reader's language."""
    said = words(template, **values)
    return worded(NoteError(str(said)), said)


ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
ALGORITHMS = {ALG_ED25519: "Ed25519", ALG_COSIGNATURE_V1: "Ed25519 cosignature/v1"}

KEY_HASH_SIZE = 4
PRIVATE_KEY_PREFIX = "PRIVATE+KEY+"
#: Cosignature times are at most 2^63 - 1 (tlog-cosignature).
MAX_TIMESTAMP = (1 << 63) - 1
COSIGNATURE_HEADER = b"cosignature/v1\n"
TIMESTAMP_SIZE = 8
COSIGNATURE_SIZE = TIMESTAMP_SIZE + crypto.SIGNATURE_SIZE

_KEY_HASH_HEX = re.compile("[0-9a-f]{8}")


def compute_key_hash(name: str, algorithm: int, public: bytes) -> bytes:
    """The 4-byte key hash: ``SHA-256(name || "\\n" || algorithm || public)[:4]``."""
    material = name.encode("utf-8") + b"\n" + bytes([algorithm]) + public
    return hashlib.sha256(material).digest()[:KEY_HASH_SIZE]


def cosigned_message(text: bytes, timestamp: int) -> bytes:
    """What a cosignature/v1 signs: the header, ``time T`` and the note text."""
    return COSIGNATURE_HEADER + b"time %d\n" % timestamp + text


def cosignature_time(signature: bytes) -> int | None:
    """The time of a well-formed cosignature/v1 signature, else None."""
    if len(signature) != COSIGNATURE_SIZE:
        return None
    timestamp = int.from_bytes(signature[:TIMESTAMP_SIZE], "big")
    return timestamp if timestamp <= MAX_TIMESTAMP else None


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
        check_name(self.name, "key name")
        name = excerpt(self.name)
        if type(self.algorithm) is not int or self.algorithm not in ALGORITHMS:
            raise _refused(
                N_("key {name}: key algorithm {algorithm} is not supported"),
                name=name,
                algorithm=repr(self.algorithm),
            )
        if not isinstance(self.public, bytes) or len(self.public) != crypto.PUBLIC_KEY_SIZE:
            raise _refused(_PUBLIC_SIZE, name=name, size=crypto.PUBLIC_KEY_SIZE)
        if self.key_hash != compute_key_hash(self.name, self.algorithm, self.public):
            raise _refused(
                N_(
                    "key {name}: the key hash does not match the name and public key; the key "
                    "string is damaged"
                ),
                name=name,
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
        check_name(name, "key name")
        if not isinstance(public, bytes) or len(public) != crypto.PUBLIC_KEY_SIZE:
            raise _refused(_PUBLIC_SIZE, name=name, size=crypto.PUBLIC_KEY_SIZE)
        return cls(name, compute_key_hash(name, algorithm, public), public, algorithm)

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """Read ``<name>+<key hash hex>+<base64(algorithm || public key)>``.

        The hex is 8 lowercase digits and the base64 canonical, as ``encode``
        writes them; surrounding whitespace is not accepted.
        """
        if not isinstance(text, str):
            raise _refused(N_("a verifier key is text"))
        parts = text.split("+", 2)
        if len(parts) != 3:
            raise _refused(
                N_("a verifier key has the form <name>+<key hash>+<key>, with two '+' separators")
            )
        name, hash_hex, key_base64 = parts
        check_name(name, "key name")
        if not _KEY_HASH_HEX.fullmatch(hash_hex):
            raise _refused(N_("key {name}: the key hash must be 8 lowercase hex digits"), name=name)
        try:
            material = decode_base64(key_base64, "the key")
        except NoteError:
            raise _refused(
                N_(
                    "key {name}: the key part is not the base64 a key string holds (damaged or "
                    "cut short)"
                ),
                name=name,
            ) from None
        if len(material) != 1 + crypto.PUBLIC_KEY_SIZE or material[0] not in ALGORITHMS:
            raise _refused(
                N_("key {name}: not an Ed25519 key (algorithm byte 0x01 or 0x04 and 32 key bytes)"),
                name=name,
            )
        return cls(name, bytes.fromhex(hash_hex), material[1:], material[0])

    def encode(self) -> str:
        """The verifier key string (what ``parse`` reads)."""
        material = bytes([self.algorithm]) + self.public
        return f"{self.name}+{self.key_hash.hex()}+{encode_base64(material)}"

    def describe(self) -> str:
        """``name+keyhash``: how messages name the key (the key id a person compares)."""
        return f"{excerpt(self.name)}+{self.key_hash.hex()}"

    def verifies(self, text: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (the bytes after the key hash) signs note ``text``."""
        if self.algorithm == ALG_ED25519:
            return crypto.verify(self.public, text, signature)
        timestamp = cosignature_time(signature)
        if timestamp is None:
            return False
        cosigned = cosigned_message(text, timestamp)
        return crypto.verify(self.public, cosigned, signature[TIMESTAMP_SIZE:])

    def __str__(self) -> str:
        return self.encode()


@dataclass(frozen=True)
class NoteSigner:
    """A named Ed25519 key that signs notes (a log key or a witness key)."""

    name: str
    key: crypto.SigningKey

    def __post_init__(self) -> None:
        check_name(self.name, "key name")
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
        problem = name_problem(name)
        if problem is not None:
            raise KeyFileError(f"private note key: the key name {problem}")
        if not _KEY_HASH_HEX.fullmatch(hash_hex):
            raise KeyFileError(f"private key {name}: the key hash must be 8 lowercase hex digits")
        try:
            material = decode_base64(key_base64, "the key")
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
        return f"{PRIVATE_KEY_PREFIX}{self.name}+{key_hash}+{encode_base64(material)}"

    def verifier(self) -> VerifierKey:
        """The public key that checks this signer's note signatures."""
        return VerifierKey.for_ed25519(self.name, self.key.public)

    def cosignature_verifier(self) -> VerifierKey:
        """The public key that checks this signer's cosignatures (as a witness)."""
        return VerifierKey.for_cosignature(self.name, self.key.public)


def parse_signer_key(text: str) -> NoteSigner:
    """Read a ``PRIVATE+KEY+...`` string; the same as ``NoteSigner.parse``."""
    return NoteSigner.parse(text)
