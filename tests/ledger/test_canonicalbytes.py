"""The readers of canonical msgpack bytes accept exactly what msgpack's packer writes.

Every format a value of each kind can be written in is tried: the reader must take the
one ``msgpack.packb(value, use_bin_type=True)`` gives (the format v1 encoding) and
refuse every other, and whatever it takes from any bytes must be what msgpack reads
there, and encode back to the same bytes.
"""

from __future__ import annotations

import struct

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redlist.ledger.canonicalbytes import (
    FAIL,
    expect,
    read_binary,
    read_fixarray,
    read_text,
    read_uint,
)

INT_EDGES = [0, 1, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x1_0000, 2**32 - 1, 2**32, 2**63, 2**64 - 1]


def integer_encodings(value: int) -> list[bytes]:
    """Every msgpack encoding of the non-negative ``value``, canonical or not."""
    found = []
    if value <= 0x7F:
        found.append(bytes([value]))
    for head, fmt, top in (
        (0xCC, ">B", 0xFF),
        (0xCD, ">H", 0xFFFF),
        (0xCE, ">I", 2**32 - 1),
        (0xCF, ">Q", 2**64 - 1),
        (0xD0, ">b", 0x7F),
        (0xD1, ">h", 0x7FFF),
        (0xD2, ">i", 2**31 - 1),
        (0xD3, ">q", 2**63 - 1),
    ):
        if value <= top:
            found.append(bytes([head]) + struct.pack(fmt, value))
    return found


def length_encodings(size: int, fixed: int | None, first: int) -> list[bytes]:
    """Every header of a text (``fixed`` 0xA0, ``first`` 0xD9) or binary (no fixed form,
    ``first`` 0xC4) value of ``size`` bytes."""
    found = []
    if fixed is not None and size < 32:
        found.append(bytes([fixed | size]))
    for head, fmt, top in ((first, ">B", 0xFF), (first + 1, ">H", 0xFFFF), (first + 2, ">I", None)):
        if top is None or size <= top:
            found.append(bytes([head]) + struct.pack(fmt, size))
    return found


@pytest.mark.parametrize("value", INT_EDGES)
def test_an_integer_is_read_only_in_its_narrowest_format(value: int) -> None:
    canonical = msgpack.packb(value, use_bin_type=True)
    for data in integer_encodings(value):
        assert msgpack.unpackb(data) == value
        expected = (value, len(data)) if data == canonical else (0, FAIL)
        assert read_uint(data, 0) == expected, data.hex()


@pytest.mark.parametrize("value", [-1, -32, -33, -(2**63), True, False, None, 1.0, "1", b"1"])
def test_what_is_not_a_non_negative_integer_is_refused(value: object) -> None:
    assert read_uint(msgpack.packb(value, use_bin_type=True), 0) == (0, FAIL)


@pytest.mark.parametrize("size", [0, 1, 31, 32, 255, 256, 65535, 65536])
def test_text_and_binary_are_read_only_with_their_narrowest_header(size: int) -> None:
    word, blob = "x" * size, b"y" * size
    for data in (header + word.encode() for header in length_encodings(size, 0xA0, 0xD9)):
        assert msgpack.unpackb(data) == word
        canonical = data == msgpack.packb(word, use_bin_type=True)
        assert read_text(data, 0) == ((word, len(data)) if canonical else ("", FAIL))
    for data in (header + blob for header in length_encodings(size, None, 0xC4)):
        assert msgpack.unpackb(data) == blob
        canonical = data == msgpack.packb(blob, use_bin_type=True)
        assert read_binary(data, 0) == ((blob, len(data)) if canonical else (b"", FAIL))


def test_text_is_utf8_as_msgpack_reads_it() -> None:
    assert read_text(msgpack.packb("税务局 ü", use_bin_type=True), 0)[0] == "税务局 ü"
    for bad in (b"\xa1\xff", b"\xa3\xed\xa0\x80", b"\xa2\xc3\x28"):  # a lone surrogate among them
        with pytest.raises(UnicodeDecodeError):
            msgpack.unpackb(bad)
        assert read_text(bad, 0) == ("", FAIL)


def test_text_and_binary_are_not_taken_for_each_other() -> None:
    assert read_text(msgpack.packb(b"ab", use_bin_type=True), 0) == ("", FAIL)
    assert read_binary(msgpack.packb("ab", use_bin_type=True), 0) == (b"", FAIL)


def test_every_truncation_is_refused() -> None:
    for value, reader in (
        (2**40, read_uint),
        (300, read_uint),
        ("x" * 40, read_text),
        ("abc", read_text),
        (b"z" * 300, read_binary),
    ):
        data = msgpack.packb(value, use_bin_type=True)
        assert reader(data, 0)[1] == len(data)  # type: ignore[operator]
        for end in range(len(data)):
            assert reader(data[:end], 0)[1] == FAIL  # type: ignore[operator]


def test_a_failed_position_stays_failed() -> None:
    data = msgpack.packb([1, "a", b"b"], use_bin_type=True)
    assert expect(data, FAIL, b"\x93") == FAIL
    assert read_uint(data, FAIL) == (0, FAIL)
    assert read_text(data, FAIL) == ("", FAIL)
    assert read_binary(data, FAIL) == (b"", FAIL)
    assert read_fixarray(data, FAIL) == (0, FAIL)
    assert read_fixarray(data, 0) == (3, 1)
    assert read_fixarray(msgpack.packb(list(range(16))), 0) == (0, FAIL)  # array16
    assert expect(data, 0, b"\x93\x01") == 2
    assert expect(data, 0, b"\x93\x02") == FAIL
    assert expect(data, len(data) - 1, b"bb") == FAIL  # past the end


PLAIN = st.one_of(
    st.integers(-(2**63), 2**64 - 1),
    st.text(max_size=40),
    st.binary(max_size=300),
    st.booleans(),
    st.none(),
)


@settings(max_examples=400, deadline=None)
@given(
    value=PLAIN, garbage=st.binary(max_size=6), flip=st.integers(0, 400), byte=st.integers(0, 255)
)
def test_what_a_reader_takes_is_what_msgpack_reads_and_writes_back(
    value: object, garbage: bytes, flip: int, byte: int
) -> None:
    """From any bytes (canonical, damaged, or followed by more), a value a reader takes
    up to the end is what msgpack reads there, and re-encodes to exactly those bytes."""
    packed = msgpack.packb(value, use_bin_type=True)
    damaged = bytearray(packed + garbage)
    damaged[flip % len(damaged)] = byte
    for data in (packed, packed + garbage, bytes(damaged)):
        for reader in (read_uint, read_text, read_binary):
            read, end = reader(data, 0)  # type: ignore[operator]
            if end == FAIL:
                continue
            assert msgpack.unpackb(data[:end]) == read
            assert msgpack.packb(read, use_bin_type=True) == data[:end]
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        assert read_uint(packed, 0) == (value, len(packed))
    if isinstance(value, str):
        assert read_text(packed, 0) == (value, len(packed))
    if isinstance(value, bytes):
        assert read_binary(packed, 0) == (value, len(packed))
