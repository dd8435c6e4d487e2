"""An Ed25519 verifier on ``cryptography`` (OpenSSL) that reaches libsodium's verdicts.

What an outside auditor would write from docs/format.md section 3.1 alone, using none
of redlist's code: the rule's encoding conditions checked before OpenSSL's verify, and
the registration check in plain affine arithmetic. Written independently of
``redlist.ledger.crypto`` (other formulas: small order is decided by multiplying by 8,
not by a list of encodings) so that the tests comparing the two compare two readings
of the rule, not one piece of code with itself.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, -1, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)

Affine = tuple[int, int]
IDENTITY: Affine = (0, 1)


def y_field(encoding: bytes) -> int:
    """The low 255 bits of a point encoding: its y, possibly ≥ p."""
    return int.from_bytes(encoding, "little") & ((1 << 255) - 1)


def recover_x(y: int, sign: int) -> int | None:
    """The x with the given parity (sign) of the curve point with this y (< p), if any."""
    x2 = (y * y - 1) * pow(D * y * y + 1, -1, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if x * x % P != x2:
        x = x * SQRT_M1 % P
    if x * x % P != x2:
        return None
    return P - x if x % 2 != sign and x != 0 else x


def add(left: Affine, right: Affine) -> Affine:
    """Affine addition on -x^2 + y^2 = 1 + d x^2 y^2 (complete: d is not a square)."""
    (x1, y1), (x2, y2) = left, right
    t = D * x1 * x2 * y1 * y2 % P
    return (
        (x1 * y2 + x2 * y1) * pow(1 + t, -1, P) % P,
        (y1 * y2 + x1 * x2) * pow(1 - t, -1, P) % P,
    )


def times(point: Affine, scalar: int) -> Affine:
    result, addend = IDENTITY, point
    while scalar:
        if scalar & 1:
            result = add(result, addend)
        addend = add(addend, addend)
        scalar >>= 1
    return result


def small_order(encoding: bytes) -> bool:
    """Whether the y of ``encoding``, taken mod p, is the y of a point whose order
    divides 8 (the sign bit plays no part: P and -P have one order)."""
    y = y_field(encoding) % P
    x = recover_x(y, 0)
    return x is not None and times((x, y), 8) == IDENTITY


def canonical(encoding: bytes) -> bool:
    return y_field(encoding) < P


# The rule's encoding conditions, each True when it holds; OpenSSL does the rest.
PRECHECKS: dict[str, Callable[[bytes, bytes], bool]] = {
    "S < L": lambda public, signature: int.from_bytes(signature[32:], "little") < L,
    "R not small order": lambda public, signature: not small_order(signature[:32]),
    "A canonical": lambda public, signature: canonical(public),
    "A not small order": lambda public, signature: not small_order(public),
}


def openssl_verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """OpenSSL's own verdict, no pre-checks (RFC 8032 as OpenSSL reads it)."""
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def verify(
    public: bytes, message: bytes, signature: bytes, *, leave_out: frozenset[str] = frozenset()
) -> bool:
    """The rule's verdict: the pre-checks (but those named in ``leave_out``), then OpenSSL."""
    if len(public) != 32 or len(signature) != 64:
        return False
    for name, holds in PRECHECKS.items():
        if name not in leave_out and not holds(public, signature):
            return False
    return openssl_verify(public, message, signature)


def key_ok(public: bytes) -> bool:
    """Whether ``public`` may be registered: canonical, a curve point, not of small
    order, and [L]A the identity."""
    if len(public) != 32 or not canonical(public) or small_order(public):
        return False
    y = y_field(public)
    x = recover_x(y, public[31] >> 7)
    return x is not None and times((x, y), L) == IDENTITY
