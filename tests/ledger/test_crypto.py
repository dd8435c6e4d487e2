"""Ed25519 keys, entry signatures and key ids (redlist.ledger.crypto)."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from redlist.ledger import crypto, ed25519rule
from redlist.ledger.errors import KeyFileError

# RFC 8032 section 7.1, tests 1 and 2: (seed, public key, message, signature).
RFC8032_VECTORS = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
]

# The order of the Ed25519 base point; a signature's S must be below it.
GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493

seeds = st.binary(min_size=32, max_size=32)
messages = st.binary(max_size=256)


@pytest.mark.parametrize(("seed", "public", "message", "signature"), RFC8032_VECTORS)
def test_rfc8032_vectors(seed: str, public: str, message: str, signature: str) -> None:
    key = crypto.SigningKey.from_seed(bytes.fromhex(seed))
    assert key.public == bytes.fromhex(public)
    assert key.sign(bytes.fromhex(message)) == bytes.fromhex(signature)
    assert crypto.verify(key.public, bytes.fromhex(message), bytes.fromhex(signature))


def test_entry_domain_is_the_format_v1_prefix() -> None:
    assert b"redlist/entry/v1" + bytes([0]) == crypto.ENTRY_DOMAIN


def test_key_id_is_the_first_eight_bytes_of_sha256() -> None:
    public = bytes.fromhex(RFC8032_VECTORS[0][1])
    assert crypto.key_id(public) == hashlib.sha256(public).digest()[:8]
    assert crypto.SigningKey.from_seed(bytes.fromhex(RFC8032_VECTORS[0][0])).key_id == (
        crypto.key_id(public)
    )


@pytest.mark.parametrize("public", [b"", b"\x01" * 31, b"\x01" * 33, "ab" * 16])
def test_key_id_refuses_anything_but_32_bytes(public: bytes) -> None:
    with pytest.raises(KeyFileError):
        crypto.key_id(public)


@settings(max_examples=50)
@given(seed=seeds, message=messages)
def test_signatures_interoperate_with_openssl(seed: bytes, message: bytes) -> None:
    key = crypto.SigningKey.from_seed(seed)
    openssl_key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    openssl_public = openssl_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert key.public == openssl_public
    assert key.sign(message) == openssl_key.sign(message)
    assert crypto.verify(key.public, message, openssl_key.sign(message))


@settings(max_examples=50)
@given(seed=seeds, message=messages, data=st.data())
def test_any_bit_flip_breaks_the_signature(
    seed: bytes, message: bytes, data: st.DataObject
) -> None:
    key = crypto.SigningKey.from_seed(seed)
    signature = key.sign(message)
    assert crypto.verify(key.public, message, signature)
    bit = data.draw(st.integers(0, 64 * 8 - 1), label="signature bit")
    flipped = bytearray(signature)
    flipped[bit // 8] ^= 1 << (bit % 8)
    assert not crypto.verify(key.public, message, bytes(flipped))
    if message:
        bit = data.draw(st.integers(0, len(message) * 8 - 1), label="message bit")
        altered = bytearray(message)
        altered[bit // 8] ^= 1 << (bit % 8)
        assert not crypto.verify(key.public, bytes(altered), signature)


def test_signature_of_another_key_does_not_verify() -> None:
    first, second = crypto.SigningKey.generate(), crypto.SigningKey.generate()
    assert first != second
    assert not crypto.verify(second.public, b"award", first.sign(b"award"))


def test_malleated_signature_is_refused() -> None:
    # S + L encodes the same scalar; accepting it would give one entry two
    # valid signatures. RFC 8032 verifiers must refuse S >= L.
    key = crypto.SigningKey.from_seed(bytes(range(32)))
    signature = key.sign(b"message")
    scalar = int.from_bytes(signature[32:], "little") + GROUP_ORDER
    malleated = signature[:32] + scalar.to_bytes(32, "little")
    assert not crypto.verify(key.public, b"message", malleated)


@pytest.mark.parametrize(
    ("public", "message", "signature"),
    [
        (b"\x00" * 32, b"m", b"\x00" * 64),  # small-order key, zero signature
        (b"\x01" * 31, b"m", b"\x00" * 64),
        (b"\x01" * 32, b"m", b"\x00" * 63),
        (b"\x01" * 32, b"m", b"\x00" * 65),
        ("not bytes", b"m", b"\x00" * 64),
        (b"\x01" * 32, "text, not bytes", b"\x00" * 64),
        (b"\x01" * 32, b"m", None),
        (b"\x01" * 32, 5, b"\x00" * 64),
        (None, None, None),
    ],
)
def test_verify_never_raises(public: object, message: object, signature: object) -> None:
    assert crypto.verify(public, message, signature) is False  # type: ignore[arg-type]
    assert crypto.verify_entry(public, message, signature) is False  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(
    seed=seeds,
    items=st.lists(
        st.tuples(
            messages,
            st.sampled_from(["good", "flip", "other key", "short", "text", "bytearray"]),
            st.integers(min_value=0, max_value=95),
        ),
        max_size=6,
    ),
)
def test_verifying_many_at_once_gives_each_verdict_verify_entry_gives(
    seed: bytes, items: list[tuple[bytes, str, int]]
) -> None:
    key, other = crypto.SigningKey.from_seed(seed), crypto.SigningKey.generate()
    triples: list[tuple[object, object, object]] = []
    for body, change, position in items:
        signature = crypto.sign_entry(key, body)
        public: object = key.public
        if change == "flip":  # a bit of the key or signature changed
            whole = bytearray(key.public + signature)
            whole[position] ^= 1 << (position % 8)
            public, signature = bytes(whole[:32]), bytes(whole[32:])
        elif change == "other key":
            public = other.public
        elif change == "short":
            signature = signature[: position % 64]
        elif change == "text":
            public = key.public.hex()
        elif change == "bytearray":
            public = bytearray(key.public)
        triples.append((public, body, signature))
    expected = bytes(crypto.verify_entry(*triple) for triple in triples)  # type: ignore[arg-type]
    assert crypto.verify_many(triples, crypto.ENTRY_DOMAIN) == expected  # type: ignore[arg-type]
    assert any(expected) or not any(change == "good" for _, change, _ in items)


def test_verify_accepts_bytes_like_values() -> None:
    key = crypto.SigningKey.generate()
    signature = key.sign(b"body")
    assert crypto.verify(
        bytearray(key.public),  # type: ignore[arg-type]
        memoryview(b"body"),  # type: ignore[arg-type]
        bytearray(signature),  # type: ignore[arg-type]
    )


def test_entry_signatures_are_domain_separated() -> None:
    key = crypto.SigningKey.generate()
    body = b"\x85\xa1v\x01"
    signature = crypto.sign_entry(key, body)
    assert crypto.verify_entry(key.public, body, signature)
    assert crypto.verify(key.public, crypto.ENTRY_DOMAIN + body, signature)
    # A plain signature over the body (say, from another protocol) is no entry signature,
    # and an entry signature is no plain signature.
    assert not crypto.verify_entry(key.public, body, key.sign(body))
    assert not crypto.verify(key.public, body, signature)
    assert not crypto.verify_entry(key.public, body + b"\x00", signature)


def test_pem_round_trip() -> None:
    key = crypto.SigningKey.generate()
    pem = key.to_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert crypto.SigningKey.from_pem(pem) == key
    assert crypto.public_key_from_pem(pem) == key.public


def test_pem_files_written_by_openssl() -> None:
    openssl_key = ed25519.Ed25519PrivateKey.generate()
    private_pem = openssl_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = openssl_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    raw_public = openssl_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    key = crypto.SigningKey.from_pem(private_pem)
    assert key.public == raw_public
    assert key.to_pem() == private_pem
    assert crypto.public_key_from_pem(public_pem) == raw_public
    assert crypto.public_key_from_pem(private_pem) == raw_public


def test_encrypted_key_file_is_refused_with_a_reason() -> None:
    encrypted = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(KeyFileError, match="encrypted"):
        crypto.SigningKey.from_pem(encrypted)
    with pytest.raises(KeyFileError, match="encrypted"):
        crypto.public_key_from_pem(encrypted)


def test_keys_of_other_types_are_refused() -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    private_pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = other.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for pem in (private_pem, public_pem):
        with pytest.raises(KeyFileError, match="Ed25519"):
            crypto.public_key_from_pem(pem)
    with pytest.raises(KeyFileError, match="Ed25519"):
        crypto.SigningKey.from_pem(private_pem)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a key",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    ],
)
def test_damaged_key_files_are_refused(data: bytes) -> None:
    with pytest.raises(KeyFileError):
        crypto.public_key_from_pem(data)
    if b"PUBLIC" not in data:
        with pytest.raises(KeyFileError):
            crypto.SigningKey.from_pem(data)


@pytest.mark.parametrize("seed", [b"", b"\x00" * 31, b"\x00" * 33, 32, "x" * 32])
def test_seed_must_be_32_bytes(seed: object) -> None:
    with pytest.raises(KeyFileError):
        crypto.SigningKey.from_seed(seed)  # type: ignore[arg-type]


def test_repr_does_not_show_the_secret() -> None:
    key = crypto.SigningKey.from_seed(bytes.fromhex(RFC8032_VECTORS[0][0]))
    text = repr(key)
    assert RFC8032_VECTORS[0][0] not in text
    assert key.key_id.hex() in text


@settings(max_examples=25)
@given(seed=seeds)
def test_seed_and_pem_round_trip(seed: bytes) -> None:
    key = crypto.SigningKey.from_seed(seed)
    assert key.seed == seed
    assert crypto.SigningKey.from_pem(key.to_pem()) == key
    assert hash(crypto.SigningKey.from_seed(seed)) == hash(key)


_L = crypto.GROUP_ORDER
#: Encodings at the edges of the conditions: small-order points with and without the
#: sign bit, non-canonical y (p and above), and ordinary bytes.
_EDGE_POINTS = st.sampled_from(
    [
        *sorted(ed25519rule._SMALL_ORDER_SIGNED),
        (crypto.FIELD_PRIME + 2).to_bytes(32, "little"),
        (2**255 - 1).to_bytes(32, "little"),
        (2**256 - 1).to_bytes(32, "little"),
        crypto.SigningKey.from_seed(bytes(32)).public,
    ]
)
#: S values on both sides of L, and with L's last byte.
_EDGE_S = st.sampled_from([0, 1, 2**252 - 1, 2**252, _L - 1, _L, _L + 1, 2**253, 2**256 - 1])


@given(
    public=st.one_of(_EDGE_POINTS, st.binary(min_size=31, max_size=33)),
    r=st.one_of(_EDGE_POINTS, st.binary(min_size=32, max_size=32)),
    s=st.one_of(_EDGE_S.map(lambda value: value.to_bytes(32, "little")), st.binary(max_size=33)),
)
def test_the_batch_check_of_the_encodings_is_signature_problems(
    public: bytes, r: bytes, s: bytes
) -> None:
    # verify_many decides the encoding conditions its own quicker way; a libsodium
    # built without its checks would accept what only these conditions refuse.
    signature = r + s
    expected = crypto.signature_problem(public, signature) is None
    keys: dict[bytes, bool] = {}
    assert ed25519rule._encodings_hold(public, signature, keys) is expected
    assert ed25519rule._encodings_hold(public, signature, keys) is expected  # key remembered
