"""Canonical msgpack: the only byte encoding format v1 accepts (DESIGN 3.1).

A value is canonical when its bytes are exactly what msgpack-python's ``packb``
produces with ``use_bin_type=True`` for that value with every map built in key
order (keys compared as UTF-8 bytes). Text is msgpack str, bytes are msgpack bin,
integers take their shortest form, and floats, extension types, non-text map keys
and duplicate keys never appear.

``decode`` accepts only canonical bytes: it decodes, re-encodes and compares, so
two parsers can never disagree about what a signed body says.
"""

from __future__ import annotations

from typing import Any

import msgpack

from redlist.ledger.errors import FormatError

#: Maps and arrays nest at most this deep; deeper input is refused, not recursed into.
MAX_DEPTH = 32


def encode(value: Any) -> bytes:
    """The canonical bytes of ``value`` (dicts are sorted here; callers need not)."""
    try:
        data: bytes = msgpack.packb(_sorted(value, 0), use_bin_type=True)
    except OverflowError:
        raise FormatError("an integer is outside the 64-bit range msgpack can carry") from None
    return data


def decode(data: bytes, what: str = "value") -> Any:
    """Decode canonical bytes; raise FormatError for anything else.

    ``what`` names the object in error messages ("entry body", "leaf", ...).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise FormatError(f"{what}: expected bytes, got {type(data).__name__}")
    raw = bytes(data)
    try:
        value = msgpack.unpackb(
            raw,
            raw=False,
            use_list=True,
            strict_map_key=False,
            object_pairs_hook=_pairs_to_dict,
            ext_hook=_refuse_ext,
            timestamp=0,
        )
    except FormatError as exc:
        raise FormatError(f"{what}: {exc}") from None
    except msgpack.ExtraData:
        raise FormatError(f"{what}: trailing bytes after the msgpack value") from None
    except UnicodeDecodeError:
        raise FormatError(f"{what}: a text field is not valid UTF-8") from None
    except (ValueError, TypeError, RecursionError, msgpack.UnpackException) as exc:
        raise FormatError(f"{what}: not valid msgpack ({exc})") from None
    _check_types(value, what, 0)
    if encode(value) != raw:
        raise FormatError(
            f"{what}: not canonical msgpack (keys must be sorted, integers in their "
            "shortest form, text as str and bytes as bin)"
        )
    return value


def _pairs_to_dict(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, item in pairs:
        if not isinstance(key, str):
            raise FormatError(f"map key {key!r} is not text")
        if key in result:
            raise FormatError(f"duplicate map key {key!r}")
        result[key] = item
    return result


def _refuse_ext(code: int, data: bytes) -> Any:
    raise FormatError(f"msgpack extension type {code} is not allowed")


def _check_types(value: Any, what: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise FormatError(f"{what}: nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool | int | str | bytes):
        return
    if isinstance(value, list):
        for item in value:
            _check_types(item, what, depth + 1)
        return
    if isinstance(value, dict):
        for item in value.values():
            _check_types(item, what, depth + 1)
        return
    if isinstance(value, float):
        raise FormatError(f"{what}: floats are not allowed")
    raise FormatError(f"{what}: values of type {type(value).__name__} are not allowed")


def _sorted(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise FormatError(f"value nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise FormatError(f"map key {key!r} is not text")
        return {
            key: _sorted(value[key], depth + 1)
            for key in sorted(value, key=lambda k: k.encode("utf-8"))
        }
    if isinstance(value, list | tuple):
        return [_sorted(item, depth + 1) for item in value]
    if isinstance(value, float):
        raise FormatError("floats are not allowed")
    if value is None or isinstance(value, bool | int | str | bytes):
        return value
    raise FormatError(f"values of type {type(value).__name__} are not allowed")
