"""One Ed25519 rule (docs/format.md 3.1) against the shared edge cases in tests/vectors/ed25519.

Every case must reach its ``valid`` verdict in ``crypto.verify`` (the node's and the
verifier's signature check: both go through ``redlist.ledger.crypto``) and its
``key_ok`` verdict in ``crypto.key_problem`` (the points semantics' registration
check). An implementation on ``cryptography`` (OpenSSL) with the rule's pre-checks,
written independently in ``tests/openssl_ed25519.py``, must reach the same verdicts.
These tests are what catches a PyNaCl/libsodium upgrade that would move a verdict.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import itertools
import os

import nacl.bindings
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests import openssl_ed25519 as outsider
from tests.vectors import Ed25519Case, ed25519_cases

from redlist.ledger import crypto

CASES = ed25519_cases()
IDS = [case.id for case in CASES]

#: The canonical encodings of the eight points of small order (orders 1, 2, 4, 4 and
#: four of order 8), and the six non-canonical ones (y = p, y = p + 1, x = -0).
SMALL_ORDER_CANONICAL = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
]
SMALL_ORDER_NONCANONICAL = [
    "0100000000000000000000000000000000000000000000000000000000000080",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
]
SMALL_ORDER = [bytes.fromhex(text) for text in SMALL_ORDER_CANONICAL + SMALL_ORDER_NONCANONICAL]

# libsodium's crypto_core_ed25519_is_valid_point let points with an order-2 component
# through before its December 2025 fix (CVE-2025-69277), bundled from PyNaCl 1.6.2.
_PYNACL = tuple(int(part) for part in importlib.metadata.version("pynacl").split(".")[:3])
LIBSODIUM_SUBGROUP_FIXED = _PYNACL >= (1, 6, 2)


def test_the_file_holds_what_its_readme_says() -> None:
    assert len(CASES) == 63
    assert len(set(IDS)) == len(IDS)
    assert sum(case.key_ok for case in CASES) == 18
    assert sum(case.valid for case in CASES) == 5
    assert sum(case.openssl for case in CASES) == 38
    assert sum(case.openssl != case.valid for case in CASES) == 33


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_every_case_reaches_its_verdict_in_our_verify(case: Ed25519Case) -> None:
    assert crypto.verify(case.public, case.message, case.signature) is case.valid, case.comment


def test_every_case_reaches_its_verdict_when_verified_many_at_once() -> None:
    # The signature workers' path (``verify_many``): every case at once, in order, and
    # with a prefix taken off the message (as the entry domain is added).
    items = [(case.public, case.message, case.signature) for case in CASES]
    assert crypto.verify_many(items) == bytes(case.valid for case in CASES)
    for case in CASES:
        if case.message:
            item = (case.public, case.message[1:], case.signature)
            assert crypto.verify_many([item], case.message[:1]) == bytes([case.valid]), case.id


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_every_key_reaches_its_verdict_in_our_key_check(case: Ed25519Case) -> None:
    assert (crypto.key_problem(case.public) is None) is case.key_ok, case.comment


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_cryptography_with_the_prechecks_reaches_every_verdict(case: Ed25519Case) -> None:
    assert outsider.verify(case.public, case.message, case.signature) is case.valid, case.comment
    assert outsider.key_ok(case.public) is case.key_ok, case.comment


def test_cryptography_alone_disagrees_where_the_file_says() -> None:
    # The pre-checks are needed: OpenSSL alone accepts the 33 forgeries the rule refuses.
    openssl = {
        case.id: outsider.openssl_verify(case.public, case.message, case.signature)
        for case in CASES
    }
    assert openssl == {case.id: case.openssl for case in CASES}
    assert sum(openssl[case.id] == case.valid for case in CASES) == 30


def test_both_small_order_checks_are_needed_and_enough() -> None:
    """Which pre-checks move a verdict (the vectors' README): R and A not of small order
    are the smallest set; a registration check alone would miss ``key-R-identity``."""

    def agreeing(leave_out: frozenset[str]) -> int:
        return sum(
            outsider.verify(case.public, case.message, case.signature, leave_out=leave_out)
            is case.valid
            for case in CASES
        )

    names = list(outsider.PRECHECKS)
    changes = {name: len(CASES) - agreeing(frozenset({name})) for name in names}
    assert changes == {
        "S < L": 0,
        "R not small order": 2,
        "A canonical": 0,
        "A not small order": 12,
    }
    enough = [
        set(kept)
        for size in range(len(names) + 1)
        for kept in itertools.combinations(names, size)
        if agreeing(frozenset(names) - set(kept)) == len(CASES)
    ]
    assert min(enough, key=len) == {"R not small order", "A not small order"}
    registrable_forgery = next(case for case in CASES if case.id == "key-R-identity")
    assert registrable_forgery.key_ok and registrable_forgery.openssl
    assert not crypto.verify(
        registrable_forgery.public, registrable_forgery.message, registrable_forgery.signature
    )


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_our_encoding_conditions_match_the_outsiders(case: Ed25519Case) -> None:
    ours = crypto.signature_problem(case.public, case.signature) is None
    theirs = all(holds(case.public, case.signature) for holds in outsider.PRECHECKS.values())
    assert ours is theirs


@pytest.mark.parametrize("encoding", SMALL_ORDER, ids=[e.hex()[:8] for e in SMALL_ORDER])
def test_every_small_order_encoding_is_refused_as_key_and_as_r(encoding: bytes) -> None:
    honest = crypto.SigningKey.from_seed(b"h" * 32)
    signature = honest.sign(b"m")
    assert crypto.key_problem(encoding) is not None
    assert not nacl.bindings.crypto_core_ed25519_is_valid_point(encoding)
    assert crypto.signature_problem(encoding, signature) is not None
    assert crypto.signature_problem(honest.public, encoding + signature[32:]) == (
        "its R is a point of small order"
    )
    assert outsider.small_order(encoding)


def test_key_problems_name_the_check() -> None:
    good = crypto.SigningKey.from_seed(b"k" * 32).public
    assert crypto.key_problem(good) is None
    assert "small order" in (crypto.key_problem(SMALL_ORDER[0]) or "")
    assert "not canonical" in (crypto.key_problem(b"\xff" * 32) or "")
    off_curve = (2).to_bytes(32, "little")
    assert "not a point of the Ed25519 curve" in (crypto.key_problem(off_curve) or "")
    mixed = nacl.bindings.crypto_core_ed25519_add(good, SMALL_ORDER[1])
    assert "not of prime order" in (crypto.key_problem(mixed) or "")
    assert "32 bytes" in (crypto.key_problem(good[:31]) or "")


@settings(max_examples=30, deadline=None)
@given(
    seed=st.binary(min_size=32, max_size=32),
    torsion=st.sampled_from([None, *SMALL_ORDER[:8]]),
    negate=st.booleans(),
)
def test_key_check_agrees_with_the_outsider_and_libsodium(
    seed: bytes, torsion: bytes | None, negate: bool
) -> None:
    """Honest keys, their negations, and each with every small-order point added."""
    public = crypto.SigningKey.from_seed(seed).public
    if negate:
        public = public[:31] + bytes([public[31] ^ 0x80])
    if torsion is not None:
        public = nacl.bindings.crypto_core_ed25519_add(public, torsion)
    ours = crypto.key_problem(public) is None
    assert ours is outsider.key_ok(public)
    assert ours is (torsion is None or torsion == SMALL_ORDER[0])
    if LIBSODIUM_SUBGROUP_FIXED or torsion != SMALL_ORDER[1]:
        assert ours is bool(nacl.bindings.crypto_core_ed25519_is_valid_point(public))


@settings(max_examples=50, deadline=None)
@given(encoding=st.binary(min_size=32, max_size=32))
def test_key_check_on_any_32_bytes_agrees_with_the_outsider(encoding: bytes) -> None:
    assert (crypto.key_problem(encoding) is None) is outsider.key_ok(encoding)
    if LIBSODIUM_SUBGROUP_FIXED:
        assert (crypto.key_problem(encoding) is None) is bool(
            nacl.bindings.crypto_core_ed25519_is_valid_point(encoding)
        )


#: ``REDLIST_SOAK=1`` tries the built cases below this many times more (docs/reliability.md).
SOAK_SCALE = 40 if os.environ.get("REDLIST_SOAK") == "1" else 1
BASE_POINT = bytes.fromhex("58" + "66" * 31)
TAMPERINGS = ("none", "holder-chosen R", "S + L", "key + torsion", "small key", "bit flip")


def _secret_scalar(key: crypto.SigningKey) -> int:
    digest = hashlib.sha512(key.seed).digest()
    return (int.from_bytes(digest[:32], "little") & ((1 << 254) - 8)) | (1 << 254)


def _reduce(data: bytes) -> int:
    return int.from_bytes(hashlib.sha512(data).digest(), "little") % crypto.GROUP_ORDER


@settings(max_examples=120 * SOAK_SCALE, deadline=None)
@given(
    seed=st.binary(min_size=32, max_size=32),
    message=st.binary(max_size=40),
    tampering=st.sampled_from(TAMPERINGS),
    torsion=st.sampled_from(SMALL_ORDER[:8]),
    nonce=st.integers(min_value=1, max_value=crypto.GROUP_ORDER - 1),
    flip=st.integers(min_value=0, max_value=511),
)
def test_built_cases_get_one_verdict_from_us_and_from_the_outsider(
    seed: bytes, message: bytes, tampering: str, torsion: bytes, nonce: int, flip: int
) -> None:
    """Beyond the file: honest signatures and the ways to bend them, where our verify
    and ``cryptography`` with the pre-checks must agree case by case."""
    key = crypto.SigningKey.from_seed(seed)
    public, signature = key.public, key.sign(message)
    if tampering == "holder-chosen R":  # R = [r]B + T or R = T, S fitted to the equation
        point = nacl.bindings.crypto_scalarmult_ed25519_base_noclamp(nonce.to_bytes(32, "little"))
        r_point, r = (
            (torsion, 0)
            if nonce % 3 == 0
            else (nacl.bindings.crypto_core_ed25519_add(point, torsion), nonce)
        )
        s = (r + _reduce(r_point + public + message) * _secret_scalar(key)) % crypto.GROUP_ORDER
        signature = r_point + s.to_bytes(32, "little")
    elif tampering == "S + L":
        s = int.from_bytes(signature[32:], "little") + crypto.GROUP_ORDER
        signature = signature[:32] + s.to_bytes(32, "little")
    elif tampering == "key + torsion":
        public = nacl.bindings.crypto_core_ed25519_add(public, torsion)
    elif tampering == "small key":
        public, signature = torsion, BASE_POINT + (1).to_bytes(32, "little")
    elif tampering == "bit flip":
        flipped = bytearray(signature)
        flipped[flip // 8] ^= 1 << (flip % 8)
        signature = bytes(flipped)
    ours = crypto.verify(public, message, signature)
    assert ours is outsider.verify(public, message, signature)
    if tampering == "none":
        assert ours
