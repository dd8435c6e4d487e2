"""Ed25519 keys, signatures and key ids (DESIGN 3.2). Pure: bytes in, bytes out.

Signing and verification run on libsodium (PyNaCl): on the reference machines it
verifies about twice as fast as OpenSSL, and verification is the ceiling on both
ingest and audit throughput (DESIGN 6). Both release the GIL; spreading the work
over cores is ``sigschedule``'s job, never this module's. ``cryptography`` is used
only to read and write PEM key files (PKCS#8 private keys, SubjectPublicKeyInfo
public keys).

One Ed25519 rule (docs/format.md section 3.1), the verdict of libsodium's
``crypto_sign_verify_detached``: ``ed25519rule`` holds it, with ``verify`` and
``verify_many``, and this module re-exports them. A key may be *registered* only if
it is also of prime order (``key_problem``): stricter than verify, which still
accepts some signatures by mixed-order keys.

Every entry signature is domain-separated: the signed message is
``ENTRY_DOMAIN || body``, so a signature over an entry can never be replayed as a
signature over a checkpoint or any other message, and the other way round.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import nacl.bindings

from redlist.ledger.ed25519rule import (
    ENTRY_DOMAIN,
    FIELD_PRIME,
    GROUP_ORDER,
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
    as_bytes,
    canonical,
    signature_problem,
    small_order,
    verify,
    verify_many,
    y_field,
)
from redlist.ledger.errors import KeyFileError

# ``cryptography`` reads and writes PEM key files only: it is imported there, so that a
# signature worker process (``sigworkers``), which only verifies, starts without it.

SEED_SIZE = 32
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
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

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
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

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
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

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


def sign_entry(key: SigningKey, body: bytes) -> bytes:
    """The signature of an entry body: over ``ENTRY_DOMAIN || body``."""
    return key.sign(ENTRY_DOMAIN + body)


def verify_entry(public: bytes, body: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``public``'s signature of entry ``body``. Never raises."""
    try:
        message = ENTRY_DOMAIN + as_bytes(body)
    except TypeError:
        return False
    return verify(public, message, signature)


def _check_public(public: bytes) -> None:
    if not isinstance(public, bytes) or len(public) != PUBLIC_KEY_SIZE:
        raise KeyFileError(f"an Ed25519 public key is {PUBLIC_KEY_SIZE} raw bytes")


# ---------------------------------------------------------------------------
# The registration check


def key_problem(public: bytes) -> str | None:
    """Why ``public`` may not be registered as a key, in words, or ``None`` when it
    may: a canonical encoding (y < p) of a curve point that is not of small order
    and is of prime order ([L]A is the identity), the points libsodium's
    ``crypto_core_ed25519_is_valid_point`` accepts.

    The prime-order test is computed here, in plain integers (a few milliseconds,
    once per registration), not asked of libsodium: releases before 1.0.20-stable
    of December 2025 (CVE-2025-69277; PyNaCl before 1.6.2, and system builds)
    accept points with a component of order 2.
    """
    if not isinstance(public, bytes) or len(public) != PUBLIC_KEY_SIZE:
        return f"an Ed25519 public key is {PUBLIC_KEY_SIZE} bytes"
    if not canonical(public):
        return "its encoding is not canonical (y is not below 2^255 - 19)"
    if small_order(public):
        return "it is a point of small order, for which anyone can forge signatures"
    point = _decode_point(public)
    if point is None:
        return "it is not a point of the Ed25519 curve"
    if not _is_identity(_multiply(point, GROUP_ORDER)):
        return "it is not of prime order (it has a small-order component)"
    return None


# Twisted Edwards arithmetic (RFC 8032 section 5.1) in extended coordinates
# (X, Y, Z, T), x = X/Z, y = Y/Z, x*y = T/Z: only what the registration check needs.
_Point = tuple[int, int, int, int]
_D = -121665 * pow(121666, -1, FIELD_PRIME) % FIELD_PRIME
_SQRT_MINUS_ONE = pow(2, (FIELD_PRIME - 1) // 4, FIELD_PRIME)
_IDENTITY: _Point = (0, 1, 1, 0)


def _decode_point(encoding: bytes) -> _Point | None:
    """The point a canonical encoding names, or ``None`` if no curve point has that y
    (RFC 8032 section 5.1.3, steps 1 to 4)."""
    p = FIELD_PRIME
    y = int.from_bytes(y_field(encoding), "little")
    sign = encoding[31] >> 7
    u, v = (y * y - 1) % p, (_D * y * y + 1) % p
    x = u * pow(v, 3, p) * pow(u * pow(v, 7, p), (p - 5) // 8, p) % p
    if v * x * x % p == (-u) % p:
        x = x * _SQRT_MINUS_ONE % p
    if v * x * x % p != u:
        return None
    if x & 1 != sign:
        x = (p - x) % p
    return (x, y, 1, x * y % p)


def _add(left: _Point, right: _Point) -> _Point:
    # RFC 8032 section 5.1.4 (add-2008-hwcd-3); complete for a = -1.
    p = FIELD_PRIME
    x1, y1, z1, t1 = left
    x2, y2, z2, t2 = right
    a = (y1 - x1) * (y2 - x2) % p
    b = (y1 + x1) * (y2 + x2) % p
    c = 2 * t1 * t2 * _D % p
    d = 2 * z1 * z2 % p
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % p, g * h % p, f * g % p, e * h % p)


def _multiply(point: _Point, scalar: int) -> _Point:
    result = _IDENTITY
    for bit in bin(scalar)[2:]:
        result = _add(result, result)
        if bit == "1":
            result = _add(result, point)
    return result


def _is_identity(point: _Point) -> bool:
    x, y, z, _t = point
    return x % FIELD_PRIME == 0 and (y - z) % FIELD_PRIME == 0


__all__ = [
    "ENTRY_DOMAIN",
    "FIELD_PRIME",
    "GROUP_ORDER",
    "KEY_ID_SIZE",
    "PUBLIC_KEY_SIZE",
    "SEED_SIZE",
    "SIGNATURE_SIZE",
    "SigningKey",
    "key_id",
    "key_problem",
    "public_key_from_pem",
    "sign_entry",
    "signature_problem",
    "verify",
    "verify_entry",
    "verify_many",
]
