"""Canonical msgpack: round trips, and refusal of every non-canonical encoding."""

from __future__ import annotations

import struct
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redlist.ledger import codec
from redlist.ledger.errors import FormatError

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.text(max_size=40)
    | st.binary(max_size=40)
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=300)
@given(values)
def test_round_trip(value: Any) -> None:
    data = codec.encode(value)
    assert codec.decode(data) == _normalised(value)
    assert codec.encode(codec.decode(data)) == data


@settings(max_examples=300)
@given(values)
def test_matches_msgpack_packb_with_sorted_maps(value: Any) -> None:
    expected = msgpack.packb(_sorted(value), use_bin_type=True)
    assert codec.encode(value) == expected


@settings(max_examples=200)
@given(st.dictionaries(st.text(max_size=8), st.integers(0, 9), min_size=2, max_size=6))
def test_unsorted_map_refused(value: dict[str, int]) -> None:
    ordered = sorted(value, key=lambda key: key.encode())
    reordered = {key: value[key] for key in reversed(ordered)}
    data = msgpack.packb(reordered, use_bin_type=True)
    with pytest.raises(FormatError, match="canonical"):
        codec.decode(data)


@pytest.mark.parametrize(
    "data",
    [
        b"\xcc\x05",  # 5 as uint8 instead of fixint
        b"\xcd\x00\x05",  # 5 as uint16
        b"\xd0\x05",  # 5 as int8: non-negative integers are unsigned
        b"\xd1\xff\xff",  # -1 as int16 instead of negative fixint
        b"\xd9\x01a",  # "a" as str8 instead of fixstr
        b"\xc4\x00" + b"",  # fine (empty bin), used as control below
    ][:-1],
)
def test_wide_encodings_refused(data: bytes) -> None:
    with pytest.raises(FormatError, match="canonical"):
        codec.decode(data)


def test_float_refused() -> None:
    with pytest.raises(FormatError, match="float"):
        codec.decode(b"\xcb" + struct.pack(">d", 1.5))
    with pytest.raises(FormatError, match="float"):
        codec.encode({"a": 1.5})


def test_duplicate_key_refused() -> None:
    data = b"\x82\xa1a\x01\xa1a\x02"
    with pytest.raises(FormatError, match="duplicate"):
        codec.decode(data)


def test_non_text_key_refused() -> None:
    with pytest.raises(FormatError, match="not text"):
        codec.decode(b"\x81\x01\x02")


@pytest.mark.parametrize("data", [b"\xd4\x01\x00", b"\xd6\xff\x00\x00\x00\x00"])
def test_extension_types_refused(data: bytes) -> None:
    with pytest.raises(FormatError):
        codec.decode(data)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x92\x01", b"\x01\x02", b"\xc1", b"\xa2\xff\xfe", b"\xdb\xff\xff\xff\xff"],
)
def test_malformed_refused(data: bytes) -> None:
    with pytest.raises(FormatError):
        codec.decode(data)


def test_deep_nesting_refused() -> None:
    data = b"\x91" * 1000 + b"\x90"
    with pytest.raises(FormatError):
        codec.decode(data)


@settings(max_examples=300)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_escape_as_other_errors(data: bytes) -> None:
    try:
        value = codec.decode(data)
    except FormatError:
        return
    assert codec.encode(value) == data


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value, key=lambda k: k.encode())}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


def _normalised(value: Any) -> Any:
    return _sorted(value)
