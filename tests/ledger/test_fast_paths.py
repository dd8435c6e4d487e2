"""The decoders' fast paths decide exactly as the general decoders do.

``Leaf.from_bytes``, ``Envelope.from_bytes`` and ``decode_body`` first try a fast path
for the common shapes (``codec.try_unpack`` plus exact type checks plus
``codec.encodes_to``) and fall back to the general path. Each test decodes bytes
twice, once as shipped and once with the fast paths switched off (``try_unpack``
answering None, which sends every input down the general path), and requires the
same value or the same error message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redlist.ledger import bodydecode, codec, native
from redlist.ledger import envelope as envelope_module
from redlist.ledger.entry import Envelope, Leaf, decode_body
from redlist.ledger.errors import FormatError
from redlist.ledger.validator import read_leaf

ID = bytes(range(16))
COMMON = {"v": 1, "log": "town.example/log", "id": ID, "at": 1_767_225_600_000}
AWARD = {
    **COMMON,
    "kind": "award",
    "account": "res-001",
    "date": "2026-01-01",
    "rule": "clean-pond",
    "qty": 2,
}
REDEEM = {**COMMON, "kind": "redeem", "account": "res-002", "points": 25, "item": "soap"}
DECLARED = {**AWARD, "declared": True}
KEY = {**COMMON, "kind": "key", "op": "add", "pub": bytes(32), "name": "Li", "roles": ["grid"]}

# Values a field may be replaced with: the right ones, the edges, and every kind of wrong one.
ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, 1, 2, -1, 2**32, 2**64 - 1, -(2**63)]),
    st.integers(-(2**63), 2**64 - 1),
    st.sampled_from(["", "award", "redeem", "res-001", "bad account!", "x" * 65, "clean-pond"]),
    # Deed dates and near misses; upper-case account ids.
    st.sampled_from(["2026-01-01", "2026-1-01", "2026-02-29", "2024-02-29", "9999-12-31"]),
    st.sampled_from(
        ["0000-01-01", "2026-13-01", "Res-001", "RES-001", "\uff12\uff10\uff12\uff16-01-01"]
    ),
    # Text the format refuses: control, bidi and invisible characters, a non-NFC spelling.
    st.sampled_from(["\x1b[2J", "a\rb", "\u202eV01", "V\u200b01", "e\u0301", "\ufeffx"]),
    st.text(max_size=8),
    st.binary(max_size=40),
    st.sampled_from([ID, bytes(8), bytes(15), bytes(31), bytes(32), bytes(33), bytes(64)]),
    st.floats(allow_nan=False),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 3), max_size=2),
    st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=4)),
)
FIELD_NAMES = st.sampled_from(
    [
        *("v", "kind", "log", "id", "at", "account", "date", "rule", "qty", "note", "evidence"),
        *("points", "item", "op", "pub", "extra", "Kind", "declared"),
    ]
)


@contextmanager
def general_paths_only() -> Iterator[None]:
    """Every input down the general path: the readers of canonical bytes and
    ``try_unpack`` all answering None (seen by the sources only: make test runs this
    file from them too)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(codec, "try_unpack", lambda data: None)
        patch.setattr(bodydecode, "_award_from_bytes", lambda data: None)
        patch.setattr(bodydecode, "_redeem_from_bytes", lambda data: None)
        patch.setattr(envelope_module, "_envelope_from_bytes", lambda data: None)
        patch.setattr(envelope_module, "_leaf_from_bytes", lambda data: None)
        yield


def outcome(decode: Callable[[bytes], Any], data: bytes) -> tuple[str, Any]:
    try:
        return "value", decode(data)
    except FormatError as error:
        return "error", str(error)


def assert_same_decision(decode: Callable[[bytes], Any], data: bytes) -> None:
    fast = outcome(decode, data)
    with general_paths_only():
        general = outcome(decode, data)
    assert fast == general


def pack_unsorted(value: dict[str, Any], order: list[int]) -> bytes:
    """``value`` packed with its keys in the order given by ``order`` (maybe not canonical)."""
    items = list(value.items())
    ranked = sorted(range(len(items)), key=lambda index: order[index % len(order)])
    return msgpack.packb({items[i][0]: items[i][1] for i in ranked}, use_bin_type=True)


def flip(data: bytes, position: int, byte: int) -> bytes:
    position %= max(len(data), 1)
    return data[:position] + bytes([byte]) + data[position + 1 :]


@pytest.mark.skipif(
    bool(native.compiled_modules()),
    reason="counts calls by patching a module, which compiled callers do not see; "
    "make test runs it again from the sources (docs/adr/0057)",
)
def test_the_fast_paths_are_taken_and_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[str] = []
    unpacked = 0
    real_unpack = codec.try_unpack

    def counting_unpack(data: bytes) -> Any:
        nonlocal unpacked
        unpacked += 1
        return real_unpack(data)

    def counted(module: Any, name: str) -> None:
        real = getattr(module, name)

        def reader(data: bytes) -> Any:
            value = real(data)
            if value is not None:
                taken.append(name)
            return value

        monkeypatch.setattr(module, name, reader)

    monkeypatch.setattr(codec, "try_unpack", counting_unpack)
    counted(bodydecode, "_award_from_bytes")
    counted(bodydecode, "_redeem_from_bytes")
    counted(envelope_module, "_envelope_from_bytes")
    counted(envelope_module, "_leaf_from_bytes")
    body = codec.encode(AWARD)
    envelope = codec.encode([body, [[bytes(8), bytes(64)]]])
    leaf = codec.encode([7, 1_767_225_600_000, bytes(32), envelope])
    assert decode_body(body).to_value() == AWARD
    assert Envelope.from_bytes(envelope).body == body
    assert Leaf.from_bytes(leaf).envelope == envelope
    redeem = {**REDEEM, "item": bytes(32)}
    assert decode_body(codec.encode(redeem)).to_value() == redeem
    # The common shapes are read straight from their bytes, with nothing unpacked;
    # another kind takes the unpacking fast path.
    assert taken == [
        "_award_from_bytes",
        "_envelope_from_bytes",
        "_leaf_from_bytes",
        "_redeem_from_bytes",
    ]
    assert unpacked == 0
    assert decode_body(codec.encode(KEY)).kind == "key"
    assert unpacked == 1
    monkeypatch.undo()
    for decode, data in (
        (decode_body, body),
        (Envelope.from_bytes, envelope),
        (Leaf.from_bytes, leaf),
    ):
        assert_same_decision(decode, data)


EDGE_VALUES = [
    *(None, True, False, 0, 1, 2, -1, 2**64 - 1, -(2**63), 1.0),
    *("", "award", "redeem", "res-001", "bad account!", "x" * 64, "x" * 65, "ü"),
    *(b"", bytes(8), bytes(15), ID, bytes(17), bytes(31), bytes(32), bytes(33), bytes(64)),
    *([], ["grid"], {}, {"a": 1}, msgpack.ExtType(1, b"x")),
]


@pytest.mark.parametrize("base", [AWARD, REDEEM, DECLARED], ids=["award", "redeem", "declared"])
def test_every_single_field_change_decides_alike(base: dict[str, Any]) -> None:
    names = [*base, "note", "evidence", "points", "item", "extra", "declared"]
    for name in names:
        for edge in EDGE_VALUES:
            changed = {**base, name: edge}
            data = msgpack.packb(dict(sorted(changed.items())), use_bin_type=True)
            assert_same_decision(decode_body, data)
        without = {key: item for key, item in base.items() if key != name}
        assert_same_decision(decode_body, codec.encode(without))


def test_every_single_leaf_and_envelope_change_decides_alike() -> None:
    envelope = [codec.encode(AWARD), [[b"\x01" * 8, bytes(64)], [b"\x02" * 8, bytes(64)]]]
    leaf = [7, 1_767_225_600_000, bytes(32), codec.encode(envelope)]
    for position in range(len(leaf)):
        for edge in EDGE_VALUES:
            changed = [*leaf[:position], edge, *leaf[position + 1 :]]
            assert_same_decision(Leaf.from_bytes, msgpack.packb(changed, use_bin_type=True))
    for path in ((0,), (1,), (1, 0), (1, 1), (1, 0, 0), (1, 0, 1), (1, 1, 0), (1, 1, 1)):
        for edge in [*EDGE_VALUES, b"\x01" * 8, b"\x02" * 8, b"\x00" * 8]:
            changed = _replaced(envelope, path, edge)
            assert_same_decision(Envelope.from_bytes, msgpack.packb(changed, use_bin_type=True))


def _replaced(value: Any, path: tuple[int, ...], new: Any) -> Any:
    if not path:
        return new
    copy = list(value)
    copy[path[0]] = _replaced(copy[path[0]], path[1:], new)
    return copy


@pytest.mark.parametrize(
    "base", [AWARD, REDEEM, KEY, DECLARED], ids=["award", "redeem", "key", "declared"]
)
@settings(max_examples=150, deadline=None)
@given(
    changes=st.dictionaries(FIELD_NAMES, ODD_VALUES | st.just(None), max_size=3),
    dropped=st.sets(FIELD_NAMES, max_size=2),
    order=st.lists(st.integers(0, 20), min_size=1, max_size=12),
)
def test_bodies_decide_alike(
    base: dict[str, Any],
    changes: dict[str, Any],
    dropped: set[str],
    order: list[int],
) -> None:
    value = {key: item for key, item in {**base, **changes}.items() if key not in dropped}
    assert_same_decision(decode_body, pack_unsorted(value, order))
    assert_same_decision(decode_body, codec.encode(_without_floats(value)))


@settings(max_examples=150, deadline=None)
@given(
    base=st.sampled_from([AWARD, REDEEM]), position=st.integers(0, 200), byte=st.integers(0, 255)
)
def test_damaged_bodies_decide_alike(base: dict[str, Any], position: int, byte: int) -> None:
    assert_same_decision(decode_body, flip(codec.encode(base), position, byte))


KEY_IDS = st.sampled_from([b"\x01" * 8, b"\x02" * 8, b"\x03" * 8, b"\x02" * 7, b"\x02" * 9])
SIGNATURES = st.sampled_from([bytes(64), b"\x05" * 64, bytes(63), bytes(65)])
SIGNATURE_ENTRIES = st.one_of(
    st.tuples(KEY_IDS, SIGNATURES).map(list),
    st.lists(KEY_IDS | SIGNATURES | ODD_VALUES, max_size=3),
    ODD_VALUES,
)


@settings(max_examples=300, deadline=None)
@given(
    body=st.sampled_from([codec.encode(AWARD), b""]) | ODD_VALUES,
    signatures=st.lists(SIGNATURE_ENTRIES, max_size=3) | ODD_VALUES,
    extra=st.lists(ODD_VALUES, max_size=1),
    position=st.integers(0, 300),
    byte=st.integers(0, 255) | st.none(),
)
def test_envelopes_decide_alike(
    body: Any, signatures: Any, extra: list[Any], position: int, byte: int | None
) -> None:
    data = msgpack.packb([body, signatures, *extra], use_bin_type=True, strict_types=False)
    if byte is not None:
        data = flip(data, position, byte)
    assert_same_decision(Envelope.from_bytes, data)


LEAF_FIELDS = (
    st.sampled_from([0, 1, 7, 2**40]) | ODD_VALUES,
    st.sampled_from([0, 1_767_225_600_000]) | ODD_VALUES,
    st.sampled_from([bytes(32), bytes(31), bytes(33)]) | ODD_VALUES,
    st.sampled_from([b"", b"envelope"]) | ODD_VALUES,
)


@settings(max_examples=300, deadline=None)
@given(
    items=st.tuples(*LEAF_FIELDS).map(list),
    edit=st.sampled_from(["none", "drop", "add"]),
    position=st.integers(0, 100),
    byte=st.integers(0, 255) | st.none(),
)
def test_leaves_decide_alike(items: list[Any], edit: str, position: int, byte: int | None) -> None:
    if edit == "drop":
        items = items[:-1]
    elif edit == "add":
        items = [*items, 0]
    data = msgpack.packb(items, use_bin_type=True)
    if byte is not None:
        data = flip(data, position, byte)
    assert_same_decision(Leaf.from_bytes, data)


@pytest.mark.parametrize(
    "data",
    [
        # A wide integer (qty as uint8) in an otherwise perfect award: only the re-encoding sees it.
        codec.encode(AWARD).replace(b"\xa3qty\x02", b"\xa3qty\xcc\x02"),
        # Text given as str8 instead of fixstr.
        codec.encode(AWARD).replace(b"\xa5award", b"\xd9\x05award"),
        # A leaf whose seq is a bool.
        msgpack.packb([True, 1, bytes(32), b"x"], use_bin_type=True),
        # An envelope whose signatures are out of order.
        msgpack.packb([b"body", [[b"\x02" * 8, bytes(64)], [b"\x01" * 8, bytes(64)]]]),
    ],
)
def test_non_canonical_and_ill_typed_inputs_are_refused_alike(data: bytes) -> None:
    for decode in (decode_body, Envelope.from_bytes, Leaf.from_bytes):
        kind, _ = outcome(decode, data)
        assert kind == "error"
        assert_same_decision(decode, data)


def _without_floats(value: dict[str, Any]) -> dict[str, Any]:
    """``codec.encode`` refuses floats and extension types; drop them for the canonical case."""
    return {
        key: item
        for key, item in value.items()
        if not isinstance(item, float | msgpack.ExtType)
        and not (isinstance(item, dict) and any(isinstance(v, float) for v in item.values()))
    }


@settings(max_examples=300, deadline=None)
@given(
    base=st.sampled_from([AWARD, REDEEM, KEY, DECLARED]),
    changes=st.dictionaries(FIELD_NAMES, ODD_VALUES | st.just(None), max_size=1),
    signatures=st.lists(st.tuples(KEY_IDS, SIGNATURES).map(list), min_size=1, max_size=2),
    leaf_edit=st.sampled_from(["none", "seq", "prev", "time"]),
    position=st.integers(0, 400),
    byte=st.integers(0, 255) | st.none(),
)
def test_whole_leaves_are_read_alike(
    base: dict[str, Any],
    changes: dict[str, Any],
    signatures: list[list[bytes]],
    leaf_edit: str,
    position: int,
    byte: int | None,
) -> None:
    """``validator.read_leaf`` (which tries the leaf, envelope and body fast paths at
    once) reads every leaf, good or damaged, as the general decoders do."""
    body = _without_floats({**base, **changes})
    envelope = msgpack.packb([codec.encode(body), signatures], use_bin_type=True)
    fields: list[Any] = [7, 1_767_225_600_000, bytes(32), envelope]
    if leaf_edit == "seq":
        fields[0] = -1
    elif leaf_edit == "prev":
        fields[2] = bytes(31)
    elif leaf_edit == "time":
        fields[1] = True
    data = msgpack.packb(fields, use_bin_type=True)
    if byte is not None:
        data = flip(data, position, byte)
    fast = read_leaf(data)
    with general_paths_only():
        general = read_leaf(data)
    assert fast == general
