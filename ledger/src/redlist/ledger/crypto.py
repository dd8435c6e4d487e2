"""Ed25519 keys, signatures and key ids (DESIGN 3.2). Pure: bytes in, bytes out.

Signing and verification run on libsodium (PyNaCl): on the reference machines it
verifies about twice as fast as OpenSSL, and verification is the ceiling on both
ingest and audit throughput (DESIGN 6). Both release the GIL; spreading the work
over cores is ``sigschedule``'s job, never this module's. ``cryptography`` is used
only to read and write PEM key files (PKCS#8 private keys, SubjectPublicKeyInfo
public keys).

One Ed25519 rule (docs/format.md section 3.1), the verdict of libsodium's
``crypto_sign_verify_detached``: a signature ``R || S`` of ``M`` by public key ``A``
is valid only if ``S < L``, ``R`` does not encode a point of small order, ``A`` is a
canonical encoding of a curve point not of small order, and ``encode([S]B - [h]A)``
equals ``R`` byte for byte (the cofactorless equation, ``h = SHA-512(R || A || M)
mod L``). ``verify`` checks the encoding conditions itself before handing the
equation to libsodium, so the rule holds whatever options libsodium was built
with. A key may be *registered* only if it is also of prime order (``key_problem``):
stricter than verify, which still accepts some signatures by mixed-order keys.

Every entry signature is domain-separated: the signed message is
``ENTRY_DOMAIN || body``, so a signature over an entry can never be replayed as a
signature over a checkpoint or any other message, and the other way round.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import nacl.bindings
import nacl.exceptions

from redlist.ledger.errors import KeyFileError

try:  # the compiled libsodium that ``nacl.bindings`` wraps, for ``verify_many``
    from nacl._sodium import ffi as _sodium_ffi  # type: ignore[import-not-found]
    from nacl._sodium import lib as _sodium_lib
except ImportError:  # pragma: no cover - part of every PyNaCl release
    _sodium_ffi = _sodium_lib = None

# ``cryptography`` reads and writes PEM key files only: it is imported there, so that a
# signature worker process (``sigworkers``), which only verifies, starts without it.

#: Prefix of every signed entry message: ASCII ``redlist/entry/v1`` and one zero byte.
ENTRY_DOMAIN = b"redlist/entry/v1\x00"

PUBLIC_KEY_SIZE = 32
SEED_SIZE = 32
SIGNATURE_SIZE = 64
KEY_ID_SIZE = 8

#: p, the prime of the field of Ed25519's coordinates.
FIELD_PRIME = 2**255 - 19
#: L, the prime order of the base point B; a signature's S must be below it.
GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493


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


def verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is a valid Ed25519 signature of ``message`` by ``public``.

    The rule is the module's (above): ``signature_problem`` finds nothing, and
    libsodium's cofactorless equation holds. Never raises: a public key or
    signature of the wrong size or type, a non-canonical signature or a
    small-order key all simply do not verify.
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
    if signature_problem(public, signature) is not None:
        return False
    try:
        # libsodium has only the combined form: it takes signature || message.
        nacl.bindings.crypto_sign_open(signature + message, public)
    except (nacl.exceptions.CryptoError, TypeError, ValueError):
        return False
    return True


def verify_many(items: Iterable[tuple[bytes, bytes, bytes]], prefix: bytes = b"") -> bytes:
    """``verify(public, prefix + message, signature)`` for each ``(public, message,
    signature)`` of ``items``, as one byte each: 1 when it verifies, else 0.

    The same rule and verdicts as ``verify``, with less work per signature: the
    output buffer libsodium writes the opened message into is allocated once, and
    nothing is copied out of it. For the signature workers (``sigworkers``), which
    verify every entry of a log.
    """
    if _sodium_lib is None:  # pragma: no cover - PyNaCl always has it
        return bytes(_verify_prefixed(item, prefix) for item in items)
    opened_length = _sodium_ffi.new("unsigned long long *")
    opened = _sodium_ffi.new("unsigned char[]", 0)
    room = 0
    outcomes = bytearray()
    keys: dict[bytes, bool] = {}
    for public, message, signature in items:
        if not (type(public) is bytes and type(message) is bytes and type(signature) is bytes):
            outcomes.append(_verify_prefixed((public, message, signature), prefix))
            continue
        if not _encodings_hold(public, signature, keys):  # sizes included
            outcomes.append(0)
            continue
        signed = signature + prefix + message
        if len(signed) > room:
            room = max(len(signed), 2 * room, 1024)
            opened = _sodium_ffi.new("unsigned char[]", room)
        status = _sodium_lib.crypto_sign_open(opened, opened_length, signed, len(signed), public)
        outcomes.append(status == 0)
    return bytes(outcomes)


def _verify_prefixed(item: tuple[bytes, bytes, bytes], prefix: bytes) -> int:
    public, message, signature = item
    try:
        whole = prefix + _as_bytes(message)
    except TypeError:
        return 0
    return verify(public, whole, signature)


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


# ---------------------------------------------------------------------------
# The encoding conditions of the rule, and the registration check

# The 32-byte encodings, sign bit cleared, whose y field (taken mod p) is the y of
# a point of small order: 0, 1 and p - 1 (orders 4, 1, 2), the two y of the points
# of order 8, and the non-canonical y = p and y = p + 1. With either sign bit these
# are the 14 encodings libsodium's ``ge25519_has_small_order`` refuses.
_SMALL_ORDER_Y = (
    0,
    1,
    FIELD_PRIME - 1,
    0x7A03AC9277FDC74EC6CC392CFA53202A0F67100D760B3CBA4FD84D3D706A17C7,
    0x05FC536D880238B13933C6D305ACDFD5F098EFF289F4C345B027B2C28F95E826,
    FIELD_PRIME,
    FIELD_PRIME + 1,
)
_SMALL_ORDER_ENCODINGS = frozenset(y.to_bytes(32, "little") for y in _SMALL_ORDER_Y)
_SIGN_BIT = 0x80


def _y_field(encoding: bytes) -> bytes:
    """``encoding`` with its sign bit (bit 255, the sign of x) cleared."""
    if encoding[31] & _SIGN_BIT:
        return encoding[:31] + bytes([encoding[31] & ~_SIGN_BIT])
    return encoding


def _canonical(encoding: bytes) -> bool:
    """Whether the y field of a 32-byte point encoding is below p (the sign bit is
    not looked at, as in libsodium's ``ge25519_is_canonical``)."""
    return int.from_bytes(_y_field(encoding), "little") < FIELD_PRIME


def _small_order(encoding: bytes) -> bool:
    return _y_field(encoding) in _SMALL_ORDER_ENCODINGS


#: Every encoding of a small-order point, its sign bit set or not (``_small_order``).
_SMALL_ORDER_SIGNED = _SMALL_ORDER_ENCODINGS | frozenset(
    encoding[:31] + bytes([encoding[31] | _SIGN_BIT]) for encoding in _SMALL_ORDER_ENCODINGS
)
#: The last byte of ``L`` (little-endian): an ``S`` whose last byte is below it is
#: below ``L``, and one whose last byte is above it is not.
_ORDER_TOP = GROUP_ORDER >> 248


def _encodings_hold(public: bytes, signature: bytes, keys: dict[bytes, bool]) -> bool:
    """``signature_problem(public, signature) is None``, for ``verify_many``'s loop:
    the same conditions, each decided with fewer steps; ``keys`` remembers each
    public key's verdict for the caller's batch."""
    key_ok = keys.get(public)
    if key_ok is None:
        key_ok = keys[public] = len(public) == PUBLIC_KEY_SIZE and _public_problem(public) is None
    if not key_ok or len(signature) != SIGNATURE_SIZE:
        return False
    top = signature[63]
    if top > _ORDER_TOP or (
        top == _ORDER_TOP and int.from_bytes(signature[32:], "little") >= GROUP_ORDER
    ):
        return False
    return signature[:32] not in _SMALL_ORDER_SIGNED


def signature_problem(public: bytes, signature: bytes) -> str | None:
    """What makes ``signature`` fail the rule's encoding conditions under ``public``,
    in words, or ``None`` when they hold (and only the equation remains).

    The conditions, in libsodium's order: sizes 32 and 64; ``S < L``; ``R`` not of
    small order; ``A`` canonical; ``A`` not of small order. No point arithmetic:
    whether ``A`` is a curve point at all is left to the equation, which fails for
    any that is not.
    """
    if len(public) != PUBLIC_KEY_SIZE:
        return f"the public key is {len(public)} bytes, not {PUBLIC_KEY_SIZE}"
    if len(signature) != SIGNATURE_SIZE:
        return f"the signature is {len(signature)} bytes, not {SIGNATURE_SIZE}"
    if int.from_bytes(signature[32:], "little") >= GROUP_ORDER:
        return "its S is not below the group order L"
    if _small_order(signature[:32]):
        return "its R is a point of small order"
    return _public_problem(public if type(public) is bytes else bytes(public))


@lru_cache(maxsize=1024)
def _public_problem(public: bytes) -> str | None:
    # The key's conditions of ``signature_problem``: a log has a few dozen keys and
    # every entry is signed by one, so each is looked at once.
    if not _canonical(public):
        return "the public key is not a canonical encoding"
    if _small_order(public):
        return "the public key is a point of small order"
    return None


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
    if not _canonical(public):
        return "its encoding is not canonical (y is not below 2^255 - 19)"
    if _small_order(public):
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
    y = int.from_bytes(_y_field(encoding), "little")
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
