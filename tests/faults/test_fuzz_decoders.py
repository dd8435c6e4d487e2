"""Every decoder of untrusted bytes refuses bad input with the project's own error, quickly.

The decoders are the ones a node or an auditor runs on bytes someone else made:
``codec.decode``, ``entry.decode_body``, ``Envelope.from_bytes``, ``Leaf.from_bytes``,
the signed-note readers (``Note.parse``, ``Checkpoint.from_text``,
``VerifierKey.parse``, ``open_checkpoint``) and the bundle readers (manifest,
``left``, the ``leaves`` stream). Each is fed arbitrary bytes, mutations of valid
encodings (bit flips, truncation, insertion, deletion, duplication), structured
garbage (wrong types, floats, extension types, non-text keys), non-canonical
re-encodings of valid values, deep nesting and length headers that claim far more
than is there. The contract checked:

* the only exception is the decoder's own class (``FormatError`` for the format v1
  and bundle decoders, ``NoteError`` for notes), never a ``ValueError``,
  ``TypeError``, ``RecursionError``, ``KeyError``, ...;
* what *is* accepted is exactly what the matching encoder writes (a decoder never
  accepts two byte forms of one value);
* every call returns within a second, and a header claiming gigabytes allocates
  nothing near that.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import time
import tracemalloc
from collections.abc import Callable
from datetime import date
from typing import Any, Protocol, TypeVar
from unicodedata import normalize

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redlist.ledger import bundle, codec, crypto
from redlist.ledger.entry import (
    ACCOUNT_PATTERN,
    ID_SIZE,
    MAX_ENVELOPE_SIZE,
    AnyBody,
    Award,
    Envelope,
    Genesis,
    Grade,
    KeyChange,
    Leaf,
    Objection,
    Redeem,
    Reverse,
    RuleChange,
    TownConfig,
    decode_body,
)
from redlist.ledger.errors import FormatError, NoteError
from redlist.ledger.merkle import HASH_SIZE
from redlist.ledger.note.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from redlist.ledger.note.keys import NoteSigner, VerifierKey
from redlist.ledger.note.signed import Note
from redlist.ledger.note.syntax import MAX_NOTE_SIZE
from redlist.ledger.text import REFUSED_CATEGORIES, RULE_CODE_PATTERN

_T = TypeVar("_T")


class Draw(Protocol):
    """What draws a value from a strategy: ``st.composite``'s ``draw`` or ``st.data().draw``."""

    def __call__(self, strategy: st.SearchStrategy[_T]) -> _T: ...


#: A guard against hangs (an input that makes a decoder loop or backtrack without end),
#: not a speed measurement: decoding a few KiB takes microseconds, and speed is measured
#: in benchmarks/. The bound is loose so a busy machine never trips it.
HANG_SECONDS = 30.0
#: A header claiming 4 GiB may cost a decoder at most this much memory.
MEMORY_LIMIT_BYTES = 1 << 20

#: ``make soak`` (REDLIST_SOAK=1) tries every property this many times more examples.
SOAK_SCALE = 40 if os.environ.get("REDLIST_SOAK") == "1" else 1
FUZZ = settings(
    max_examples=250 * SOAK_SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
FEW = settings(
    max_examples=80 * SOAK_SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

ORIGIN = "fuzz.redlist.example/log"
SIGNER = crypto.SigningKey.from_seed(bytes(range(32)))
LOG_SIGNER = NoteSigner(ORIGIN, crypto.SigningKey.from_seed(bytes(range(1, 33))))
LOG_KEY = LOG_SIGNER.verifier()


def bounded(
    decoder: Callable[..., _T], *args: Any, error: type[Exception] = FormatError
) -> _T | None:
    """``decoder(*args)``; None when it refused with ``error``. Anything else fails the test."""
    started = time.perf_counter()
    try:
        return decoder(*args)
    except error as refusal:
        assert str(refusal).strip(), "a refusal must say what was wrong"
        assert not str(refusal).rstrip().endswith("()"), f"an empty reason: {refusal}"
        return None
    finally:
        elapsed = time.perf_counter() - started
        assert elapsed < HANG_SECONDS, f"{decoder.__qualname__} hung for {elapsed:.2f} s"


# ---------------------------------------------------------------------------
# Strategies: valid objects, mutations, garbage

# Text the format allows (docs/format.md, "Text"): no control, format or unassigned
# characters, in NFC. Refused text is fuzzed separately (tests/ledger/test_text.py).
_allowed_characters = st.characters(exclude_categories=sorted(REFUSED_CATEGORIES))
texts = st.text(_allowed_characters, max_size=12).map(lambda text: normalize("NFC", text))
nonempty = texts.filter(bool)
codes = st.from_regex(RULE_CODE_PATTERN, fullmatch=True)
key_names = st.from_regex(
    r"[A-Z][a-z]{0,9}( [A-Z][a-z]{0,9})?|[王李张刘陈][一-鿿]{1,2}", fullmatch=True
)
accounts = st.from_regex(ACCOUNT_PATTERN, fullmatch=True)
ids = st.binary(min_size=ID_SIZE, max_size=ID_SIZE)
times = st.integers(min_value=0, max_value=2**64 - 1)
hashes = st.binary(min_size=HASH_SIZE, max_size=HASH_SIZE)


@st.composite
def town_configs(draw: st.DrawFn) -> TownConfig:
    minimums = sorted(draw(st.sets(st.integers(-(2**40), 2**40), max_size=4)), reverse=True)
    names = draw(st.lists(nonempty, min_size=len(minimums) + 1, unique=True).map(tuple))
    grades = [Grade(name, minimum) for name, minimum in zip(names, minimums, strict=False)]
    grades.append(Grade(names[len(minimums)], None))
    return TownConfig(
        base=draw(st.integers(-(2**40), 2**40)),
        grades=tuple(grades),
        quorum=draw(st.integers(1, 9)),
        publicity_days=draw(st.integers(0, 60)),
        tz=draw(nonempty),
        backdate_days=draw(st.none() | st.integers(0, 11_000)),
    )


def _common() -> dict[str, Any]:
    return {"log": nonempty, "id": ids, "at": times}


bodies: st.SearchStrategy[AnyBody] = st.one_of(
    st.builds(Genesis, **_common(), admin=hashes, config=town_configs()),
    st.builds(
        KeyChange,
        **_common(),
        op=st.just("add"),
        pub=hashes,
        name=key_names,
        roles=st.lists(nonempty, min_size=1, max_size=4, unique=True).map(tuple),
    ),
    st.builds(KeyChange, **_common(), op=st.just("revoke"), pub=hashes),
    st.builds(
        RuleChange,
        **_common(),
        op=st.just("set"),
        code=codes,
        title=nonempty,
        module=nonempty,
        points=st.integers(-(2**31), 2**31).filter(bool),
        council=st.booleans(),
        max_qty=st.none() | st.integers(1, 2**32),
        max_per_month=st.none() | st.integers(1, 2**32),
        decided=st.none() | hashes,
    ),
    st.builds(
        RuleChange, **_common(), op=st.just("retire"), code=codes, decided=st.none() | hashes
    ),
    st.builds(
        Award,
        **_common(),
        account=accounts,
        rule=nonempty,
        qty=st.integers(1, 2**32),
        note=st.none() | hashes,  # free texts are commitments (DESIGN 9.2)
        evidence=st.none() | hashes,
        date=st.dates().map(date.isoformat),
    ),
    st.builds(Redeem, **_common(), account=accounts, points=st.integers(1, 2**32), item=hashes),
    st.builds(Objection, **_common(), target=st.integers(0, 2**40), text=hashes),
    st.builds(Reverse, **_common(), target=st.integers(0, 2**40), reason=hashes),
)


def envelope_of(body: bytes, signers: int = 1) -> bytes:
    sigs = [
        [SIGNER.key_id[:7] + bytes([n]), crypto.sign_entry(SIGNER, body)] for n in range(signers)
    ]
    return codec.encode([body, sigs])


@st.composite
def envelopes(draw: st.DrawFn) -> bytes:
    return envelope_of(draw(bodies).to_bytes(), draw(st.integers(1, 3)))


@st.composite
def leaves(draw: st.DrawFn) -> bytes:
    leaf = Leaf(draw(st.integers(0, 2**40)), draw(times), draw(hashes), draw(envelopes()))
    return leaf.to_bytes()


def mutate(draw: Draw, original: bytes) -> bytes:
    """``original`` damaged once or a few times."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 3))):
        operation = draw(st.sampled_from(("flip", "truncate", "insert", "delete", "duplicate")))
        at = draw(st.integers(0, len(data)))
        if operation == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif operation == "truncate":
            del data[at:]
        elif operation == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif operation == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 16))]
    return bytes(data)


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[bytes]) -> bytes:
    """A valid encoding, damaged."""
    return mutate(draw, draw(valid))


# Scalars msgpack can carry, including every kind format v1 refuses.
any_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(),
    st.text(max_size=16),
    st.binary(max_size=16),
    st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=8)),
)
any_keys = st.one_of(st.text(max_size=8), st.integers(-5, 5), st.binary(max_size=4), st.none())
any_values = st.recursive(
    any_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_keys, inner, max_size=4),
    max_leaves=16,
)


# ---------------------------------------------------------------------------
# A deliberately loose msgpack encoder: any valid header width, any key order


def _int_forms(value: int) -> list[bytes]:
    forms: list[bytes] = []
    if 0 <= value < 0x80:
        forms.append(bytes([value]))
    if -32 <= value < 0:
        forms.append(struct.pack(">b", value))
    for marker, fmt, low, high in (
        (0xCC, ">B", 0, 0xFF),
        (0xCD, ">H", 0, 0xFFFF),
        (0xCE, ">I", 0, 0xFFFFFFFF),
        (0xCF, ">Q", 0, 2**64 - 1),
        (0xD0, ">b", -(2**7), 2**7 - 1),
        (0xD1, ">h", -(2**15), 2**15 - 1),
        (0xD2, ">i", -(2**31), 2**31 - 1),
        (0xD3, ">q", -(2**63), 2**63 - 1),
    ):
        if low <= value <= high:
            forms.append(bytes([marker]) + struct.pack(fmt, value))
    return forms


def _sized_forms(
    size: int, fix: tuple[int, int] | None, markers: tuple[int, int, int]
) -> list[bytes]:
    """Headers for a str/bin/array/map of ``size``: fix form (base, limit), then 8/16/32-bit."""
    forms: list[bytes] = []
    if fix is not None and size < fix[1]:
        forms.append(bytes([fix[0] | size]))
    for marker, fmt, limit in zip(
        markers, (">B", ">H", ">I"), (0x100, 0x10000, 2**32), strict=True
    ):
        if marker and size < limit:
            forms.append(bytes([marker]) + struct.pack(fmt, size))
    return forms


def loose_pack(value: Any, draw: Draw) -> bytes:
    """Some valid msgpack encoding of ``value``, not necessarily the canonical one."""
    if value is None:
        return b"\xc0"
    if isinstance(value, bool):
        return b"\xc3" if value else b"\xc2"
    if isinstance(value, int):
        return draw(st.sampled_from(_int_forms(value)))
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return draw(st.sampled_from(_sized_forms(len(raw), (0xA0, 32), (0xD9, 0xDA, 0xDB)))) + raw
    if isinstance(value, bytes):
        return draw(st.sampled_from(_sized_forms(len(value), None, (0xC4, 0xC5, 0xC6)))) + value
    if isinstance(value, list):
        header = draw(st.sampled_from(_sized_forms(len(value), (0x90, 16), (0, 0xDC, 0xDD))))
        return header + b"".join(loose_pack(item, draw) for item in value)
    if isinstance(value, dict):
        header = draw(st.sampled_from(_sized_forms(len(value), (0x80, 16), (0, 0xDE, 0xDF))))
        keys = draw(st.permutations(list(value)))
        return header + b"".join(loose_pack(k, draw) + loose_pack(value[k], draw) for k in keys)
    raise AssertionError(f"no loose form for {type(value).__name__}")


canonical_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.text(max_size=40)
    | st.binary(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


# ---------------------------------------------------------------------------
# codec.decode


@FUZZ
@given(st.binary(max_size=512))
def test_codec_refuses_arbitrary_bytes_or_reads_the_canonical_form(data: bytes) -> None:
    value = bounded(codec.decode, data)
    if value is not None:
        assert codec.encode(value) == data


@FUZZ
@given(any_values, st.booleans())
def test_codec_refuses_every_type_format_v1_does_not_allow(value: Any, bin_type: bool) -> None:
    data = msgpack.packb(value, use_bin_type=bin_type)
    decoded = bounded(codec.decode, data)
    if decoded is not None:
        assert codec.encode(decoded) == data


@FUZZ
@given(st.data(), canonical_values)
def test_codec_accepts_exactly_one_encoding_of_each_value(data: st.DataObject, value: Any) -> None:
    canonical = codec.encode(value)
    loose = loose_pack(value, data.draw)
    decoded = bounded(codec.decode, loose)
    if loose == canonical:
        assert decoded == value
    else:
        assert decoded is None, "a non-canonical encoding was accepted"


@FUZZ
@given(mutated(bodies.map(lambda body: body.to_bytes())))
def test_codec_on_mutated_bodies(data: bytes) -> None:
    value = bounded(codec.decode, data)
    if value is not None:
        assert codec.encode(value) == data


def _nested(depth: int, opener: bytes, leaf: bytes = b"\xc0") -> bytes:
    return opener * depth + leaf


@pytest.mark.parametrize(
    "data",
    [
        _nested(codec.MAX_DEPTH + 2, b"\x91"),  # arrays one inside the other
        _nested(codec.MAX_DEPTH + 2, b"\x81\xa1k"),  # maps {"k": {"k": ...}}
        _nested(100_000, b"\x91"),  # far past msgpack's own stack
        _nested(100_000, b"\xdc\x00\x01"),  # the same with array16 headers
        _nested(50_000, b"\x81\xa1k"),
    ],
    ids=["arrays-34", "maps-34", "arrays-100k", "array16-100k", "maps-50k"],
)
def test_deep_nesting_is_refused_with_a_reason(data: bytes) -> None:
    with pytest.raises(FormatError, match="nested deeper"):
        codec.decode(data)
    with pytest.raises(FormatError):
        decode_body(data)


# Headers that claim far more than follows: str32, bin32, array32, map32, ext32,
# each with the largest 32-bit length, and a few bytes of "content".
HUGE_HEADERS = [
    b"\xdb\xff\xff\xff\xff",  # str32, 4 GiB
    b"\xc6\xff\xff\xff\xff",  # bin32, 4 GiB
    b"\xdd\xff\xff\xff\xff",  # array32, 4 G elements
    b"\xdf\xff\xff\xff\xff",  # map32, 4 G pairs
    b"\xc9\xff\xff\xff\xff\x01",  # ext32, 4 GiB
    b"\xc5\xff\xff",  # bin16, 64 KiB
    b"\xdc\xff\xff",  # array16
]


def _claims(header: bytes) -> list[bytes]:
    """``header`` alone, with a little content, and inside an envelope, a leaf and a body."""
    filler = b"\x00" * 64
    return [
        header,
        header + filler,
        b"\x92" + header + filler,  # envelope [body: <huge>, ...]
        b"\x92\xc4\x01\x80" + header + filler,  # envelope [body, sigs: <huge>]
        b"\x94\x00\x00\xc4\x20" + bytes(32) + header + filler,  # leaf [.., envelope: <huge>]
        b"\x81\xa2id" + header + filler,  # body {"id": <huge>}
    ]


@pytest.mark.parametrize("header", HUGE_HEADERS, ids=lambda header: header[:1].hex())
def test_length_headers_claiming_gigabytes_cost_no_memory(header: bytes) -> None:
    decoders: list[Callable[[bytes], object]] = [
        codec.decode,
        decode_body,
        Envelope.from_bytes,
        Leaf.from_bytes,
        bundle.decode_leaves,
        lambda data: bundle.decode_left(data, 5),
    ]
    tracemalloc.start()
    try:
        for data in _claims(header):
            for decoder in decoders:
                tracemalloc.reset_peak()
                assert bounded(decoder, data) is None, f"{data[:8].hex()} was accepted"
                _, peak = tracemalloc.get_traced_memory()
                assert peak < MEMORY_LIMIT_BYTES, f"{peak} bytes for {data[:8].hex()}"
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xcb" + struct.pack(">d", 1.0), "floats"),
        (b"\xca" + struct.pack(">f", 1.0), "floats"),
        (b"\x81\xa2at\xcb" + struct.pack(">d", 1.5), "floats"),
        (b"\xd4\x01\x00", "extension"),
        (b"\xd6\xff" + bytes(4), "extension"),  # the timestamp extension
        (b"\xc7\x03\x05abc", "extension"),
        (b"\x81\x01\x02", "not text"),
        (b"\x81\xc4\x01k\x02", "not text"),
        (b"\x81\x90\x02", "not text"),  # an array as a map key
        (b"\x81\x80\x02", "not text"),  # a map as a map key
        (b"\x82\xa1k\x01\xa1k\x02", "duplicate"),
        (b"\xa2\xff\xfe", "UTF-8"),
        (b"\xc1", "0xc1"),
        (b"\x92\x01", "not valid msgpack"),
        (b"\x01\x02", "trailing"),
        (b"", "not valid msgpack"),
    ],
)
def test_each_refusal_says_why(data: bytes, reason: str) -> None:
    with pytest.raises(FormatError, match=reason):
        codec.decode(data)


def test_non_bytes_input_is_a_format_error() -> None:
    for value in (None, "text", 5, [b"x"]):
        with pytest.raises(FormatError, match="expected bytes"):
            codec.decode(value)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# Entry bodies


@FUZZ
@given(bodies)
def test_every_valid_body_round_trips(body: AnyBody) -> None:
    data = body.to_bytes()
    assert decode_body(data) == body
    assert decode_body(data).to_bytes() == data


@FUZZ
@given(st.one_of(st.binary(max_size=256), mutated(bodies.map(lambda body: body.to_bytes()))))
def test_decode_body_refuses_damage_or_reads_the_same_bytes(data: bytes) -> None:
    body = bounded(decode_body, data)
    if body is not None:
        assert body.to_bytes() == data


@FUZZ
@given(st.data(), bodies)
def test_decode_body_refuses_non_canonical_re_encodings(data: st.DataObject, body: AnyBody) -> None:
    canonical = body.to_bytes()
    loose = loose_pack(body.to_value(), data.draw)
    decoded = bounded(decode_body, loose)
    assert (decoded is not None) == (loose == canonical)


@FUZZ
@given(st.data(), bodies, any_values)
def test_decode_body_refuses_wrong_types(data: st.DataObject, body: AnyBody, junk: Any) -> None:
    value = body.to_value()
    field = data.draw(st.sampled_from([*sorted(value), "extra", ""]))
    value[field] = junk
    try:
        encoded = msgpack.packb(_sorted_maps(value), use_bin_type=True)
    except (ValueError, TypeError, OverflowError):  # junk msgpack cannot carry
        return
    decoded = bounded(decode_body, encoded)
    if decoded is not None:  # the junk happened to be a valid value for that field
        assert decoded.to_bytes() == encoded


def _sorted_maps(value: Any) -> Any:
    """``value`` with the keys of every all-text-keyed map in canonical order."""
    if isinstance(value, list):
        return [_sorted_maps(item) for item in value]
    if isinstance(value, dict):
        items = [(key, _sorted_maps(item)) for key, item in value.items()]
        if all(isinstance(key, str) for key, _ in items):
            items.sort(key=lambda pair: pair[0].encode("utf-8"))
        return dict(items)
    return value


#: One valid body of each kind, with every optional field present.
SAMPLE_BODIES: tuple[AnyBody, ...] = (
    Genesis(
        ORIGIN,
        bytes(16),
        1,
        bytes(32),
        TownConfig(1000, (Grade("A", 1), Grade("B", None)), 2, 7, "UTC"),
    ),
    KeyChange(ORIGIN, bytes(16), 1, "add", bytes(32), "grid-wang", ("grid",)),
    KeyChange(ORIGIN, bytes(16), 1, "revoke", bytes(32), "grid-wang", ("grid",)),
    RuleChange(ORIGIN, bytes(16), 1, "set", "litter", "Littering", "environment", -5, False),
    Award(
        ORIGIN, bytes(16), 1, "resident-1", "clean-pond", 2, "a note", bytes(32), date="1970-01-01"
    ),
    Redeem(ORIGIN, bytes(16), 1, "resident-1", 10, "rice"),
    Objection(ORIGIN, bytes(16), 1, 7, "not me"),
    Reverse(ORIGIN, bytes(16), 1, 7, "upheld"),
)
#: A value of every msgpack type, and the edge values of the types the fields use.
JUNK: tuple[Any, ...] = (
    None,
    True,
    0,
    -1,
    2**64 - 1,
    -(2**63),
    1.5,
    "",
    "x" * 300,
    b"",
    bytes(32),
    [],
    [["A", None]],
    {},
    {"k": [1]},
    msgpack.ExtType(5, b"x"),
)


@pytest.mark.parametrize("body", SAMPLE_BODIES, ids=lambda body: f"{body.kind}")
def test_every_field_of_every_kind_refuses_every_wrong_type(body: AnyBody) -> None:
    fields = [*body.to_value(), "extra"]
    for name in fields:
        for junk in JUNK:
            value = body.to_value()
            value[name] = junk
            data = msgpack.packb(_sorted_maps(value), use_bin_type=True)
            decoded = bounded(decode_body, data)
            if decoded is not None:  # the junk is a valid value for that field
                assert decoded.to_bytes() == data, (name, junk)


@pytest.mark.parametrize(
    "field_value",
    [
        ("at", 1.0),
        ("at", -1),
        ("at", 2**64),  # packed as uint64 overflow below: refused when encoding
        ("id", msgpack.ExtType(1, bytes(16))),
        ("id", "0123456789abcdef"),  # text instead of bin
        ("v", 2),
        ("v", True),
        ("kind", "transfer"),
        ("qty", 0),
        ("account", "has space"),
        ("account", "x" * 65),
    ],
)
def test_single_bad_fields_are_refused(field_value: tuple[str, Any]) -> None:
    name, bad = field_value
    value = Award(ORIGIN, bytes(16), 1, "resident-1", "clean-pond", date="1970-01-01").to_value()
    value[name] = bad
    try:
        data = msgpack.packb(dict(sorted(value.items())), use_bin_type=True)
    except OverflowError:
        with pytest.raises(FormatError):
            codec.encode(value)
        return
    assert bounded(decode_body, data) is None


# ---------------------------------------------------------------------------
# Envelopes and leaves


@FUZZ
@given(st.one_of(st.binary(max_size=256), mutated(envelopes())))
def test_envelope_refuses_damage_or_reads_the_same_bytes(data: bytes) -> None:
    envelope = bounded(Envelope.from_bytes, data)
    if envelope is not None:
        rebuilt = codec.encode(
            [envelope.body, [[s.key_id, s.signature] for s in envelope.signatures]]
        )
        assert rebuilt == data


@FEW
@given(st.data(), envelopes())
def test_envelope_refuses_non_canonical_re_encodings(data: st.DataObject, envelope: bytes) -> None:
    loose = loose_pack(codec.decode(envelope), data.draw)
    decoded = bounded(Envelope.from_bytes, loose)
    assert (decoded is not None) == (loose == envelope)


@FUZZ
@given(st.one_of(st.binary(max_size=256), mutated(leaves())))
def test_leaf_refuses_damage_or_reads_the_same_bytes(data: bytes) -> None:
    leaf = bounded(Leaf.from_bytes, data)
    if leaf is not None:
        assert leaf.to_bytes() == data


def envelope_of_size(size: int) -> bytes:
    """A well-formed, signed rule envelope of exactly ``size`` bytes (its title pads it)."""
    length = 0
    for _ in range(8):  # each step corrects for the title's and body's header growth
        body = RuleChange(ORIGIN, bytes(16), 1, "set", "V01", "x" * length, "m", 5, False)
        envelope = envelope_of(body.to_bytes())
        if len(envelope) == size:
            return envelope
        length += size - len(envelope)
    raise AssertionError(f"no envelope of exactly {size} bytes")


def test_an_envelope_one_byte_over_64_kib_is_refused_before_decoding() -> None:
    assert Envelope.from_bytes(envelope_of_size(MAX_ENVELOPE_SIZE)).body
    with pytest.raises(FormatError, match="65537 bytes is larger than the 65536-byte limit"):
        Envelope.from_bytes(envelope_of_size(MAX_ENVELOPE_SIZE + 1))
    with pytest.raises(FormatError, match="larger than"):
        Envelope.from_bytes(b"\xc0" * (64 * 1024 * 1024))


# ---------------------------------------------------------------------------
# Signed notes and checkpoints


def _checkpoint_note(size: int, root: bytes, extensions: tuple[str, ...] = ()) -> str:
    return sign_checkpoint(Checkpoint(ORIGIN, size, root, extensions), LOG_SIGNER).note


checkpoints = st.builds(
    _checkpoint_note,
    st.integers(0, 2**64 - 1),
    hashes,
    st.lists(
        st.text(
            st.characters(min_codepoint=0x20, exclude_categories=["Cs"]), min_size=1, max_size=8
        ),
        max_size=2,
    ).map(tuple),
)
note_alphabet = st.sampled_from(["\n", "\n\n", "\u2014 ", " ", "+", "=", "A", "0", "\t", "\u00e9"])
note_like = st.lists(note_alphabet | st.text(max_size=6), max_size=24).map("".join)


@FUZZ
@given(st.one_of(st.binary(max_size=256), note_like.map(lambda text: text.encode())))
def test_note_parse_refuses_garbage_or_reads_the_same_bytes(data: bytes) -> None:
    note = bounded(Note.parse, data, error=NoteError)
    if note is not None:
        assert note.encode().encode("utf-8") == data


@FUZZ
@given(st.one_of(note_like, st.text(max_size=64)))
def test_checkpoint_text_and_key_readers_refuse_garbage(text: str) -> None:
    checkpoint = bounded(Checkpoint.from_text, text, error=NoteError)
    if checkpoint is not None:
        assert checkpoint.to_text() == text
    key = bounded(VerifierKey.parse, text, error=NoteError)
    if key is not None:
        assert key.encode() == text


@FUZZ
@given(st.data(), checkpoints)
def test_a_damaged_checkpoint_never_opens_as_another(data: st.DataObject, note: str) -> None:
    original = Checkpoint.from_text(Note.parse(note).text)
    damaged = mutate(data.draw, note.encode("utf-8"))
    opened = bounded(open_checkpoint, damaged, LOG_KEY, error=NoteError)
    assert opened is None or opened.checkpoint == original


@pytest.mark.parametrize(
    "text",
    [
        f"{ORIGIN}\n{'9' * 1_000_000}\n{'A' * 43}=\n",  # a million-digit tree size
        f"{ORIGIN}\n18446744073709551616\n{'A' * 43}=\n",  # 2^64
        f"{ORIGIN}\n01\n{'A' * 43}=\n",
        f"{ORIGIN}\n1\n{'A' * 44}\n",  # base64 of the wrong length
        f"{ORIGIN}\n1\n{'A' * 42}B=\n",  # non-canonical base64 (stray bits)
        "\n\n\n",
        "",
        "\ud800\n1\nAA==\n",  # a lone surrogate
    ],
)
def test_malformed_checkpoint_texts_are_refused_quickly(text: str) -> None:
    assert bounded(Checkpoint.from_text, text, error=NoteError) is None
    note = f"{text}\n\u2014 {ORIGIN} {base64.b64encode(bytes(68)).decode()}\n"
    assert bounded(open_checkpoint, note, LOG_KEY, error=NoteError) is None


def test_oversized_notes_and_too_many_signatures_are_refused() -> None:
    line = f"\u2014 {ORIGIN} {base64.b64encode(bytes(68)).decode()}\n"
    huge = "x\n" * (MAX_NOTE_SIZE // 2 + 1) + "\n" + line
    assert bounded(Note.parse, huge, error=NoteError) is None
    assert bounded(Note.parse, huge.encode(), error=NoteError) is None
    many = "x\n\n" + "".join(
        f"\u2014 k{n} {base64.b64encode(bytes(68)).decode()}\n" for n in range(101)
    )
    with pytest.raises(NoteError, match="at most 100"):
        Note.parse(many)


# ---------------------------------------------------------------------------
# Bundle files


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=12,
)
manifest_like = st.fixed_dictionaries(
    {},
    optional={
        "format": st.sampled_from([bundle.FORMAT, "redlist-bundle/2"]) | json_values,
        "origin": st.just(ORIGIN) | json_values,
        "start": st.integers(-2, 2**70) | json_values,
        "end": st.integers(-2, 2**70) | json_values,
        "extra": json_values,
    },
)


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=256),
        json_values.map(lambda value: json.dumps(value).encode()),
        manifest_like.map(lambda value: (json.dumps(value, indent=2) + "\n").encode()),
    )
)
def test_manifest_reader_refuses_garbage_or_reads_exactly_the_fields(data: bytes) -> None:
    manifest = bounded(bundle.decode_manifest, data)
    if manifest is not None:  # any layout, but exactly the four fields, as written
        fields = {"format": bundle.FORMAT, **vars(manifest)}
        assert json.loads(data) == fields
        assert bundle.decode_manifest(bundle.encode_manifest(manifest)) == manifest


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 100_000,
        b'{"a":' * 100_000,
        b'{"format": 1e999}',
        b'{"start": NaN}',
        b'{"start": ' + b"9" * 5000 + b"}",  # past Python's int conversion limit
        b'{"format": "a", "format": "b"}',
        b"\xef\xbb\xbf{}",  # a byte order mark
    ],
    ids=["arrays", "objects", "float", "nan", "digits", "duplicate", "bom"],
)
def test_hostile_manifests_are_format_errors(data: bytes) -> None:
    assert bounded(bundle.decode_manifest, data) is None


@FUZZ
@given(st.binary(max_size=320), st.integers(-3, 2**64))
def test_left_reader_refuses_garbage(data: bytes, start: int) -> None:
    left = bounded(bundle.decode_left, data, start)
    if left is not None:
        assert bundle.encode_left(left) == data


@FUZZ
@given(
    st.data(),
    st.one_of(
        st.binary(max_size=512),
        st.lists(st.binary(max_size=300), max_size=5).map(bundle.encode_leaves),
        mutated(st.lists(st.binary(max_size=300), max_size=5).map(bundle.encode_leaves)),
    ),
)
def test_leaf_stream_split_anywhere_gives_the_same_answer(
    data: st.DataObject, stream: bytes
) -> None:
    whole_leaves, whole_error = _split_leaves([stream])
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    chunked_leaves, chunked_error = _split_leaves(chunks)
    assert chunked_leaves == whole_leaves
    assert chunked_error == whole_error
    if whole_error is None:
        assert bundle.encode_leaves(whole_leaves) == stream


def _split_leaves(chunks: list[bytes]) -> tuple[list[bytes], str | None]:
    decoder = bundle.LeafStreamDecoder()
    found: list[bytes] = []
    try:
        for chunk in chunks:
            found.extend(decoder.feed(chunk))
        decoder.finish()
    except FormatError as error:
        return found, str(error)
    return found, None


def test_a_leaf_stream_claiming_4_gib_is_refused_at_the_header() -> None:
    decoder = bundle.LeafStreamDecoder(first_seq=7)
    with pytest.raises(FormatError, match="entry 7 claims 4294967295 bytes"):
        decoder.feed(b"\xc6\xff\xff\xff\xff")
