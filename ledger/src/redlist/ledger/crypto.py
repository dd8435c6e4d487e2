"""Ed25519 keys, signatures and key ids (DESIGN 3.2). Pure: bytes in, bytes out.

Signing and verification run on libsodium (PyNaCl): on the reference machines it
verifies about twice as fast as OpenSSL, and verification is the ceiling on both
ingest and audit throughput (DESIGN 6). Both release the GIL; spreading the work
over cores is ``sigworkers``' job, never this module's. ``cryptography`` is used
only to read and write PEM key files (PKCS#8 private keys, SubjectPublicKeyInfo
public keys).

Every entry signature is domain-separated: the signed message is
``ENTRY_DOMAIN || body``, so a signature over an entry can never be replayed as a
signature over a checkpoint or any other message, and the other way round.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import nacl.bindings
import nacl.exceptions
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from redlist.ledger.errors import KeyFileError

#: Prefix of every signed entry message: ASCII ``redlist/entry/v1`` and one zero byte.
ENTRY_DOMAIN = b"redlist/entry/v1\x00"

PUBLIC_KEY_SIZE = 32
SEED_SIZE = 32
SIGNATURE_SIZE = 64
KEY_ID_SIZE = 8


def key_id(public: bytes) -> bytes:
    """The 8-byte id of a raw 32-byte Ed25519 public key: SHA-256(public)[:8]."""
    _check_public(public)
    return hashlib.sha256(public).digest()[:KEY_ID_SIZE]


@dataclass(frozen=True, repr=False)
class SigningKey:
    """An Ed25519 private key, held as its 32-byte RFC 8032 seed.

    Two keys are equal when their seeds are; ``repr`` shows the key id only, so
    a key never ends up in a log line by accident.
    """

    seed: bytes
    public: bytes = field(init=False, compare=False)
    # libsodium's 64-byte secret key (seed || public), derived once.
    _secret: bytes = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.seed, bytes) or len(self.seed) != SEED_SIZE:
            raise KeyFileError(f"an Ed25519 private key seed is {SEED_SIZE} bytes")
        public, secret = nacl.bindings.crypto_sign_seed_keypair(self.seed)
        object.__setattr__(self, "public", public)
        object.__setattr__(self, "_secret", secret)

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id.hex()})"

    @classmethod
    def generate(cls) -> SigningKey:
        """A new random key (from the operating system's random source)."""
        _public, secret = nacl.bindings.crypto_sign_keypair()
        return cls(secret[:SEED_SIZE])

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """The key whose RFC 8032 seed is ``seed`` (32 bytes)."""
        try:
            raw = bytes(memoryview(seed))
        except TypeError as error:
            raise KeyFileError(f"an Ed25519 private key seed is {SEED_SIZE} bytes") from error
        return cls(raw)

    @classmethod
    def from_pem(cls, data: bytes) -> SigningKey:
        """Read an unencrypted PKCS#8 PEM Ed25519 private key (``redlist keygen`` output)."""
        try:
            private = serialization.load_pem_private_key(data, password=None)
        except TypeError as error:
            # cryptography raises TypeError when the file is encrypted.
            raise KeyFileError(
                "the private key file is encrypted; redlist reads unencrypted PKCS#8 keys only"
            ) from error
        except (ValueError, UnsupportedAlgorithm) as error:
            raise KeyFileError(
                "not a PEM private key file (expected '-----BEGIN PRIVATE KEY-----', PKCS#8)"
            ) from error
        if not isinstance(private, Ed25519PrivateKey):
            raise KeyFileError("the private key file holds a key of another type; Ed25519 needed")
        return cls(
            private.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
        )

    def to_pem(self) -> bytes:
        """The key as an unencrypted PKCS#8 PEM file."""
        private = Ed25519PrivateKey.from_private_bytes(self.seed)
        return private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def key_id(self) -> bytes:
        """The 8-byte id of this key's public key (see ``key_id``)."""
        return key_id(self.public)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message`` (deterministic, RFC 8032)."""
        return nacl.bindings.crypto_sign(message, self._secret)[:SIGNATURE_SIZE]


def public_key_from_pem(data: bytes) -> bytes:
    """The raw 32-byte public key in a PEM file holding an Ed25519 public key
    (``-----BEGIN PUBLIC KEY-----``, SubjectPublicKeyInfo) or private key (PKCS#8)."""
    if b"-----BEGIN PUBLIC KEY-----" in data:
        try:
            public = serialization.load_pem_public_key(data)
        except (ValueError, UnsupportedAlgorithm) as error:
            raise KeyFileError("the public key file is damaged or not PEM") from error
        if not isinstance(public, Ed25519PublicKey):
            raise KeyFileError("the public key file holds a key of another type; Ed25519 needed")
        return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if b"PRIVATE KEY-----" in data:
        return SigningKey.from_pem(data).public
    raise KeyFileError("not a PEM key file (no '-----BEGIN PUBLIC KEY-----' or private key header)")


def verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is a valid Ed25519 signature of ``message`` by ``public``.

    Never raises: a public key or signature of the wrong size or type, a
    non-canonical signature or a small-order key all simply do not verify.
    """
    if not (
        isinstance(public, bytes) and isinstance(message, bytes) and isinstance(signature, bytes)
    ):
        try:
            public, message, signature = (
                _as_bytes(public),
                _as_bytes(message),
                _as_bytes(signature),
            )
        except TypeError:
            return False
    if len(public) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        # libsodium has only the combined form: it takes signature || message.
        nacl.bindings.crypto_sign_open(signature + message, public)
    except (nacl.exceptions.CryptoError, TypeError, ValueError):
        return False
    return True


def sign_entry(key: SigningKey, body: bytes) -> bytes:
    """The signature of an entry body: over ``ENTRY_DOMAIN || body``."""
    return key.sign(ENTRY_DOMAIN + body)


def verify_entry(public: bytes, body: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``public``'s signature of entry ``body``. Never raises."""
    try:
        message = ENTRY_DOMAIN + _as_bytes(body)
    except TypeError:
        return False
    return verify(public, message, signature)


def _as_bytes(data: bytes) -> bytes:
    """``data`` as bytes if it is bytes-like; TypeError otherwise (never ``bytes(int)``)."""
    if isinstance(data, bytes):
        return data
    return bytes(memoryview(data))


def _check_public(public: bytes) -> None:
    if not isinstance(public, bytes) or len(public) != PUBLIC_KEY_SIZE:
        raise KeyFileError(f"an Ed25519 public key is {PUBLIC_KEY_SIZE} raw bytes")
