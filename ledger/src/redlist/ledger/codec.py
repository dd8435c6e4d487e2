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

import threading
from collections.abc import Callable
from typing import Any

import msgpack

from redlist.ledger.errors import FormatError

#: Maps and arrays nest at most this deep; deeper input is refused, not recursed into.
MAX_DEPTH = 32
#: Why a value with an integer beyond msgpack's 64 bits cannot be encoded.
OUT_OF_RANGE = "an integer is outside the 64-bit range msgpack can carry"


_SCALARS = frozenset({type(None), bool, int, str, bytes})


class _Packers(threading.local):
    """One reusable canonical packer per thread.

    ``packb`` builds a packer on every call, which costs twice the packing of a
    small value; decode packs every body, envelope and leaf it accepts. A packer
    keeps a buffer, so threads never share one.
    """

    def __init__(self) -> None:
        self.packer = msgpack.Packer(use_bin_type=True)


_packers = _Packers()

#: A canonical packer's ``pack``: a value's canonical bytes (see ``thread_pack``).
Pack = Callable[[Any], bytes]


def encode(value: Any) -> bytes:
    """The canonical bytes of ``value`` (dicts are sorted here; callers need not)."""
    plain = value
    if type(value) is list:
        for item in value:  # a flat record (a leaf, a balance) has nothing to sort or refuse
            if type(item) not in _SCALARS:
                plain = _sorted(value, 0)
                break
    else:
        plain = _sorted(value, 0)
    try:
        data: bytes = _packers.packer.pack(plain)
    except OverflowError:
        raise FormatError(OUT_OF_RANGE) from None
    return data


def decode(data: object, what: str = "value") -> Any:
    """Decode canonical bytes; raise FormatError for anything else, not bytes included
    (``data`` is typed ``object`` so that compiled, too, it takes whatever a caller
    passes and says what is wrong with it: docs/adr/0057).

    ``what`` names the object in error messages ("entry body", "leaf", ...).
    The fast path decodes with msgpack's C decoder, walks the value once for the
    types and key order, and re-encodes to compare; only refused input is decoded
    a second time to say precisely what is wrong with it.
    """
    if type(data) is bytes:
        raw = data
    elif isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
    else:
        raise FormatError(f"{what}: expected bytes, got {type(data).__name__}")
    try:
        value = msgpack.unpackb(raw, raw=False, strict_map_key=False, timestamp=0)
    except msgpack.ExtraData:
        raise FormatError(f"{what}: trailing bytes after the msgpack value") from None
    except UnicodeDecodeError:
        raise FormatError(f"{what}: a text field is not valid UTF-8") from None
    # msgpack raises these three without a message of its own.
    except (msgpack.StackError, RecursionError):
        raise FormatError(f"{what}: nested deeper than {MAX_DEPTH} levels") from None
    except msgpack.FormatError:
        raise FormatError(
            f"{what}: not valid msgpack (a byte that starts no msgpack value, "
            "such as the reserved 0xc1)"
        ) from None
    except TypeError:  # an array or map used as a map key: unhashable in Python
        raise FormatError(f"{what}: a map key is an array or map, not text") from None
    except (ValueError, msgpack.UnpackException) as exc:
        raise FormatError(f"{what}: not valid msgpack ({exc})") from None
    if not _plain(value, 0):
        _check(value, what, 0)  # raises the precise reason, or finds the value allowed
    # Only plain values reach the packer (no extension types, whose packing runs Python
    # code), so no other thread can use this thread's packer half way through.
    if _packers.packer.pack(value) != raw:
        _diagnose(raw, what)
        raise FormatError(
            f"{what}: not canonical msgpack (integers must take their shortest form, "
            "text must be str and bytes bin)"
        )
    return value


def try_unpack(data: bytes) -> Any:
    """``data`` decoded as msgpack with format v1's options, or None when it is not msgpack.

    No canonical checks at all: this is the first half of a caller's fast path for
    one known shape. The caller checks the shape with exact types (which makes the
    value *plain*: only None, bool, int, str and bytes, lists, and maps whose keys
    are text in sorted order), then ``encodes_to``; on any doubt it calls ``decode``,
    which decides and says why.

    msgpack's defaults are format v1's options but for ``strict_map_key``: a map key
    that is not text or bytes fails here, and so goes to ``decode``, which explains
    it (v1 keys are text). Passing no options saves a third of the call.
    """
    try:
        return msgpack.unpackb(data)
    except Exception:  # every refusal is explained by ``decode``
        return None


def encodes_to(plain: Any, data: bytes, pack: Pack | None = None) -> bool:
    """Whether ``data`` is exactly the canonical encoding of ``plain`` (see ``try_unpack``).

    ``plain`` must be plain; that is what makes a value that ``try_unpack`` returned
    and that passes this test one that ``decode`` would return for the same bytes.
    ``pack`` is this thread's ``thread_pack()``, for a caller that checks many values
    in a row (finding the thread's packer costs about as much as a small check).
    """
    encoded: bytes = (_packers.packer.pack if pack is None else pack)(plain)
    return encoded == data


def thread_pack() -> Pack:
    """The calling thread's canonical packer's ``pack``, for ``encodes_to``. Use it in
    the thread that asked for it only: a packer keeps a buffer."""
    pack: Pack = _packers.packer.pack
    return pack


def _diagnose(raw: bytes, what: str) -> None:
    """Raise the precise reason non-canonical bytes were refused, where one is known."""
    try:
        msgpack.unpackb(raw, raw=False, strict_map_key=False, object_pairs_hook=_pairs_to_dict)
    except FormatError as exc:
        raise FormatError(f"{what}: {exc}") from None
    except Exception:  # noqa: S110 - the generic message is raised by the caller
        pass


def _pairs_to_dict(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, item in pairs:
        if not isinstance(key, str):
            raise FormatError(f"map key {key!r} is not text")
        if key in result:
            raise FormatError(f"duplicate map key {key!r}")
        result[key] = item
    return result


def _plain(value: Any, depth: int) -> bool:
    """True when ``value`` certainly passes ``_check``: the common case, checked quickly.

    Exact types only (msgpack builds nothing else for format v1 values), and map keys
    compared as ``str``: for text without surrogates, which strict UTF-8 decoding never
    yields, code point order is UTF-8 byte order. Anything unusual returns False and is
    left to ``_check``, which then decides with its precise messages.
    """
    kind = type(value)
    if kind in _SCALARS:
        return True
    if depth >= MAX_DEPTH:
        return False
    if kind is list:
        items = value
    elif kind is dict:
        keys = list(value)
        for key in keys:
            if type(key) is not str:
                return False
        if keys != sorted(keys):
            return False
        items = value.values()
    else:
        return False
    for item in items:  # noqa: SIM110 - a plain loop: all() over a generator is slower
        if type(item) not in _SCALARS and not _plain(item, depth + 1):
            return False
    return True


def _check(value: Any, what: str, depth: int) -> None:
    """Refuse types format v1 does not allow, and maps whose keys are not sorted."""
    if depth > MAX_DEPTH:
        raise FormatError(f"{what}: nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool | int | str | bytes):
        return
    if isinstance(value, list):
        for item in value:
            _check(item, what, depth + 1)
        return
    if isinstance(value, dict):
        previous = b""
        for number, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise FormatError(f"{what}: map key {key!r} is not text")
            encoded = key.encode("utf-8")
            if number and encoded <= previous:
                if encoded == previous:  # not reachable through msgpack's dict, kept for clarity
                    raise FormatError(f"{what}: duplicate map key {key!r}")
                raise FormatError(
                    f"{what}: not canonical msgpack, map keys are not in sorted order at {key!r}"
                )
            previous = encoded
            _check(item, what, depth + 1)
        return
    if isinstance(value, float):
        raise FormatError(f"{what}: floats are not allowed")
    if isinstance(value, msgpack.ExtType | msgpack.Timestamp):
        raise FormatError(f"{what}: msgpack extension types are not allowed")
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
