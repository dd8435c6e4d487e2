"""The Ed25519 rule of format v1 (DESIGN 3.2), and the verifiers that apply it. Pure.

One rule, the verdict of libsodium's ``crypto_sign_verify_detached``: a signature
``R || S`` of ``M`` by public key ``A`` is valid only if ``S < L``, ``R`` does not
encode a point of small order, ``A`` is a canonical encoding of a curve point not of
small order, and ``encode([S]B - [h]A)`` equals ``R`` byte for byte (the cofactorless
equation, ``h = SHA-512(R || A || M) mod L``). ``verify`` and ``verify_many`` check
the encoding conditions themselves (``signature_problem``) before handing the equation
to libsodium, so the rule holds whatever options libsodium was built with.

This module imports nothing but libsodium's compiled binding (the one PyNaCl bundles):
a signature worker (``sigchild``) runs only this, and is ready to verify in about a
hundredth of a second instead of four. Keys, signing, key ids, PEM files and the
registration check are ``crypto``'s, which re-exports what is here.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from nacl._sodium import ffi as _ffi  # type: ignore[import-not-found]
from nacl._sodium import lib as _lib

#: Prefix of every signed entry message: ASCII ``redlist/entry/v1`` and one zero byte.
ENTRY_DOMAIN = b"redlist/entry/v1\x00"

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64

#: p, the prime of the field of Ed25519's coordinates.
FIELD_PRIME = 2**255 - 19
#: L, the prime order of the base point B; a signature's S must be below it.
GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493


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
                as_bytes(public),
                as_bytes(message),
                as_bytes(signature),
            )
        except TypeError:
            return False
    if signature_problem(public, signature) is not None:
        return False
    # libsodium has only the combined form: it takes signature || message.
    signed = signature + message
    opened = _ffi.new("unsigned char[]", len(signed))
    opened_length = _ffi.new("unsigned long long *")
    status: int = _lib.crypto_sign_open(opened, opened_length, signed, len(signed), public)
    return status == 0


def verify_many(items: Iterable[tuple[bytes, bytes, bytes]], prefix: bytes = b"") -> bytes:
    """``verify(public, prefix + message, signature)`` for each ``(public, message,
    signature)`` of ``items``, as one byte each: 1 when it verifies, else 0.

    The same rule and verdicts as ``verify``, with less work per signature: the
    output buffer libsodium writes the opened message into is allocated once, and
    nothing is copied out of it. For the signature workers (``sigchild``), which
    verify every entry of a log.
    """
    opened_length = _ffi.new("unsigned long long *")
    opened = _ffi.new("unsigned char[]", 0)
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
            opened = _ffi.new("unsigned char[]", room)
        status = _lib.crypto_sign_open(opened, opened_length, signed, len(signed), public)
        outcomes.append(status == 0)
    return bytes(outcomes)


def _verify_prefixed(item: tuple[bytes, bytes, bytes], prefix: bytes) -> int:
    public, message, signature = item
    try:
        whole = prefix + as_bytes(message)
    except TypeError:
        return 0
    return verify(public, whole, signature)


def as_bytes(data: bytes) -> bytes:
    """``data`` as bytes if it is bytes-like; TypeError otherwise (never ``bytes(int)``)."""
    if isinstance(data, bytes):
        return data
    return bytes(memoryview(data))


# ---------------------------------------------------------------------------
# The encoding conditions of the rule

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


def y_field(encoding: bytes) -> bytes:
    """``encoding`` with its sign bit (bit 255, the sign of x) cleared."""
    if encoding[31] & _SIGN_BIT:
        return encoding[:31] + bytes([encoding[31] & ~_SIGN_BIT])
    return encoding


def canonical(encoding: bytes) -> bool:
    """Whether the y field of a 32-byte point encoding is below p (the sign bit is
    not looked at, as in libsodium's ``ge25519_is_canonical``)."""
    return int.from_bytes(y_field(encoding), "little") < FIELD_PRIME


def small_order(encoding: bytes) -> bool:
    return y_field(encoding) in _SMALL_ORDER_ENCODINGS


#: Every encoding of a small-order point, its sign bit set or not (``small_order``).
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
    if small_order(signature[:32]):
        return "its R is a point of small order"
    return _public_problem(public if type(public) is bytes else bytes(public))


@lru_cache(maxsize=1024)
def _public_problem(public: bytes) -> str | None:
    # The key's conditions of ``signature_problem``: a log has a few dozen keys and
    # every entry is signed by one, so each is looked at once.
    if not canonical(public):
        return "the public key is not a canonical encoding"
    if small_order(public):
        return "the public key is a point of small order"
    return None


__all__ = [
    "ENTRY_DOMAIN",
    "FIELD_PRIME",
    "GROUP_ORDER",
    "PUBLIC_KEY_SIZE",
    "SIGNATURE_SIZE",
    "as_bytes",
    "canonical",
    "signature_problem",
    "small_order",
    "verify",
    "verify_many",
    "y_field",
]
