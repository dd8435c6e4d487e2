"""Values read straight out of canonical msgpack bytes (format v1), for the decoders'
fast paths. Pure.

The general decoders unpack bytes into Python values, then encode those again and
compare (``codec``): that is what makes them accept only the canonical encoding. For
the few shapes that make up almost every log (an award's or a redemption's body, an
envelope, a leaf), ``bodydecode`` and ``envelope`` first read the fields here, in their
canonical order, building no map, no key and no re-encoding (ADR 0059). Each reader
takes the bytes and a position, and gives the value and the position after it; the
position is ``FAIL`` when the bytes there are not the canonical encoding of a value of
that type (another type, a wider format than the value needs, text that is not UTF-8,
too few bytes).

A reader given ``FAIL`` gives ``FAIL``, so a caller reads field after field and checks
once, at the end, that the position is the end of the bytes. On ``FAIL`` the caller
returns None and the general decoder decides, and says why. The readers accept less
than the general decoders, never more: each format here is the one msgpack's packer
(``use_bin_type=True``) writes for its value (``tests/ledger/test_canonicalbytes.py``
checks every format of every kind against it).
"""

from __future__ import annotations

from typing import Final

#: The position a reader gives for bytes that are not what it reads.
FAIL: Final = -1


def expect(data: bytes, pos: int, literal: bytes) -> int:
    """The position after ``literal`` when the bytes at ``pos`` are exactly it (a key,
    a header, a fixed value), else ``FAIL``."""
    if pos < 0:
        return FAIL
    size = len(literal)
    if pos + size > len(data):
        return FAIL
    index = 0
    while index < size:
        if data[pos + index] != literal[index]:
            return FAIL
        index += 1
    return pos + size


def read_uint(data: bytes, pos: int) -> tuple[int, int]:
    """A non-negative integer in the narrowest format that holds it."""
    if pos < 0 or pos >= len(data):
        return 0, FAIL
    head = data[pos]
    if head <= 0x7F:  # positive fixint
        return head, pos + 1
    if head == 0xCC:
        width, least = 1, 0x80
    elif head == 0xCD:
        width, least = 2, 0x100
    elif head == 0xCE:
        width, least = 4, 0x1_0000
    elif head == 0xCF:
        width, least = 8, 0x1_0000_0000
    else:  # negative or signed formats, or not an integer
        return 0, FAIL
    return _number(data, pos + 1, width, least)


def _number(data: bytes, pos: int, width: int, least: int) -> tuple[int, int]:
    """The big-endian number of ``width`` bytes at ``pos`` and the position after it;
    ``FAIL`` past the end, or when it is below ``least`` (a narrower format holds it)."""
    after = pos + width
    if after > len(data):
        return 0, FAIL
    value = 0
    index = pos
    while index < after:
        value = (value << 8) | data[index]
        index += 1
    if value < least:
        return 0, FAIL
    return value, after


def _length(data: bytes, pos: int, fixed: int, formats: int) -> tuple[int, int]:
    """The length and the start of the content of a text (``fixed`` 0xA0, ``formats``
    0xD9) or binary (no fixed form, ``formats`` 0xC4) value at ``pos``, in the narrowest
    header for its length."""
    if pos < 0 or pos >= len(data):
        return 0, FAIL
    head = data[pos]
    if fixed and fixed <= head <= fixed + 0x1F:
        return head - fixed, pos + 1
    if head == formats:  # a length in 1, 2 or 4 bytes
        width, least = 1, (32 if fixed else 0)
    elif head == formats + 1:
        width, least = 2, 0x100
    elif head == formats + 2:
        width, least = 4, 0x1_0000
    else:
        return 0, FAIL
    return _number(data, pos + 1, width, least)


def read_text(data: bytes, pos: int) -> tuple[str, int]:
    """A text value (valid UTF-8, as msgpack's unpacker requires)."""
    length, start = _length(data, pos, 0xA0, 0xD9)
    if start < 0 or start + length > len(data):
        return "", FAIL
    try:
        value = data[start : start + length].decode("utf-8")
    except UnicodeDecodeError:
        return "", FAIL
    return value, start + length


def read_binary(data: bytes, pos: int) -> tuple[bytes, int]:
    """A binary value."""
    length, start = _length(data, pos, 0, 0xC4)
    if start < 0 or start + length > len(data):
        return b"", FAIL
    return data[start : start + length], start + length


def read_fixarray(data: bytes, pos: int) -> tuple[int, int]:
    """The count of an array of fewer than 16 items (the only header that holds them)."""
    if pos < 0 or pos >= len(data):
        return 0, FAIL
    head = data[pos]
    if 0x90 <= head <= 0x9F:
        return head - 0x90, pos + 1
    return 0, FAIL


__all__ = ["FAIL", "expect", "read_binary", "read_fixarray", "read_text", "read_uint"]
