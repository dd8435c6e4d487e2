"""The bundle format (DESIGN 3.6): what an export writes and an auditor reads. Pure.

A bundle is a directory; this module knows its file names and the bytes of each
file, never the files themselves (the exporter and the verifier do the I/O):

* ``manifest.json``: ``{"format": "redlist-bundle/1", "origin", "start", "end"}``,
  the bundle holds leaves ``[start, end)`` of log ``origin``. The manifest is not
  signed: it only says where to look, and everything it claims is checked against
  the signed checkpoint and the leaves. Any JSON layout is accepted; the exporter
  writes ``encode_manifest``'s.
* ``checkpoint``: the log's signed note at tree size ``end`` (UTF-8 text).
* ``leaves``: a msgpack stream, one ``bin`` value per leaf, in seq order, each
  value the exact stored leaf bytes. Each bin header must be msgpack's shortest
  one, so a stream has exactly one byte form for a given list of leaves.
* ``left``: present only when ``start > 0``: the canonical msgpack array of the
  compact range of ``[0, start)`` (perfect subtree hashes, largest first).
* Monthly bundles add ``previous-checkpoint``, ``publicity.csv`` and
  ``publicity.html``; the verifier ignores files it does not know.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgpack

from redlist.ledger import codec
from redlist.ledger.entry import MAX_ENVELOPE_SIZE
from redlist.ledger.errors import FormatError, ProofError
from redlist.ledger.merkle import HASH_SIZE, CompactRange

FORMAT = "redlist-bundle/1"

MANIFEST_FILE = "manifest.json"
CHECKPOINT_FILE = "checkpoint"
LEAVES_FILE = "leaves"
LEFT_FILE = "left"
PREVIOUS_CHECKPOINT_FILE = "previous-checkpoint"
PUBLICITY_CSV_FILE = "publicity.csv"
PUBLICITY_HTML_FILE = "publicity.html"

#: The largest leaf a bundle may hold: a maximal envelope plus the leaf's own
#: fields (array header 1, seq 9, time 9, prev 34, envelope bin header 5 bytes).
MAX_LEAF_SIZE = MAX_ENVELOPE_SIZE + 64

_MANIFEST_KEYS = ("format", "origin", "start", "end")

# msgpack bin headers: 0xc4 + 1-byte length, 0xc5 + 2-byte, 0xc6 + 4-byte (big-endian).
_BIN8, _BIN16, _BIN32 = 0xC4, 0xC5, 0xC6
_HEADER_SIZE = {_BIN8: 2, _BIN16: 3, _BIN32: 5}


# ---------------------------------------------------------------------------
# manifest.json


@dataclass(frozen=True)
class Manifest:
    """What a bundle says it holds: leaves ``[start, end)`` of the log ``origin``."""

    origin: str
    start: int
    end: int

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin:
            raise FormatError("manifest: 'origin' must be non-empty text")
        if "\n" in self.origin:
            raise FormatError("manifest: 'origin' must be a single line")
        for name in ("start", "end"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise FormatError(f"manifest: '{name}' must be a non-negative integer")
        if self.start > self.end:
            raise FormatError(f"manifest: 'start' ({self.start}) is after 'end' ({self.end})")

    @property
    def count(self) -> int:
        """How many leaves the bundle holds."""
        return self.end - self.start

    @property
    def is_full(self) -> bool:
        """True when the bundle starts at the log's first entry (seq 0)."""
        return self.start == 0


def encode_manifest(manifest: Manifest) -> bytes:
    """The manifest file's bytes: UTF-8 JSON, keys in the documented order, newline-terminated."""
    value = {
        "format": FORMAT,
        "origin": manifest.origin,
        "start": manifest.start,
        "end": manifest.end,
    }
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def decode_manifest(data: bytes) -> Manifest:
    """Read a manifest file. Raises FormatError for anything but a format v1 manifest.

    The manifest must be one JSON object with exactly the four documented keys;
    duplicate keys, floats and non-finite numbers are refused, so there is never a
    doubt about what it says. Its layout (spacing, key order) is free: DESIGN 3.6
    fixes the fields, not the bytes, and any JSON writer must be able to make one.
    """
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError("manifest: not valid UTF-8") from None
    try:
        value = json.loads(
            text,
            object_pairs_hook=_json_object,
            parse_float=_refuse_json_number,
            parse_constant=_refuse_json_number,
        )
    except FormatError:
        raise
    except (ValueError, RecursionError) as exc:
        raise FormatError(f"manifest: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise FormatError("manifest: must be a JSON object")
    found = set(value)
    missing = [key for key in _MANIFEST_KEYS if key not in found]
    if missing:
        raise FormatError(f"manifest: missing key(s) {', '.join(map(repr, missing))}")
    unknown = sorted(found - set(_MANIFEST_KEYS))
    if unknown:
        raise FormatError(f"manifest: unknown key(s) {', '.join(map(repr, unknown))}")
    if value["format"] != FORMAT:
        raise FormatError(
            f"manifest: format {value['format']!r} is not supported (this reads {FORMAT!r})"
        )
    return Manifest(value["origin"], value["start"], value["end"])


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, item in pairs:
        if key in result:
            raise FormatError(f"manifest: duplicate key {key!r}")
        result[key] = item
    return result


def _refuse_json_number(text: str) -> Any:
    raise FormatError(f"manifest: {text} is not allowed (integers only)")


# ---------------------------------------------------------------------------
# left


def encode_left(left: CompactRange) -> bytes:
    """The ``left`` file's bytes: a canonical msgpack array of the range's hashes."""
    return codec.encode(list(left.hashes))


def decode_left(data: bytes, start: int) -> CompactRange:
    """Read a ``left`` file as the compact range of ``[0, start)``; FormatError otherwise."""
    value = codec.decode(data, "left file")
    if not isinstance(value, list) or not all(
        isinstance(item, bytes) and len(item) == HASH_SIZE for item in value
    ):
        raise FormatError(f"left file: must be a msgpack array of {HASH_SIZE}-byte hashes")
    try:
        return CompactRange.from_hashes(start, value)
    except ProofError as exc:
        raise FormatError(f"left file: {exc}") from None


# ---------------------------------------------------------------------------
# leaves


def encode_leaf_frame(leaf: bytes) -> bytes:
    """One leaf as it stands in the ``leaves`` stream: a msgpack bin value."""
    size = len(leaf)
    if size > MAX_LEAF_SIZE:
        raise FormatError(f"leaf of {size} bytes is larger than the {MAX_LEAF_SIZE}-byte limit")
    if size < 0x100:
        header = bytes((_BIN8, size))
    elif size < 0x10000:
        header = bytes((_BIN16,)) + size.to_bytes(2, "big")
    else:
        header = bytes((_BIN32,)) + size.to_bytes(4, "big")
    return header + bytes(leaf)


def encode_leaves(leaves: Iterable[bytes]) -> bytes:
    """A whole ``leaves`` stream (for small bundles and tests; exporters stream frames)."""
    return b"".join(encode_leaf_frame(leaf) for leaf in leaves)


class LeafStreamDecoder:
    """Splits the ``leaves`` stream into leaf bytes, fed in chunks of any size.

    ``feed`` returns the leaves completed by a chunk; ``finish`` says the stream
    ended and refuses a partial leaf. A defect (a frame that is not a bin value
    with its shortest header, or a leaf over ``MAX_LEAF_SIZE``) is raised as a
    FormatError only once every leaf before it has been returned: by ``feed`` when
    the defect starts the chunk, otherwise by the next ``feed`` or ``finish``. So a
    caller checks every good leaf first and the first bad entry is the one named.
    ``next_seq`` is the seq of the next leaf to come out (or of the broken one).
    The decoder never looks inside a leaf.
    """

    def __init__(self, first_seq: int = 0) -> None:
        self._buffer = bytearray()
        self._next_seq = first_seq
        self._finished = False
        self._defect: FormatError | None = None

    @property
    def next_seq(self) -> int:
        """The seq of the next leaf to come out (the first seq plus leaves returned)."""
        return self._next_seq

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add bytes of the stream; return every leaf they complete, in order."""
        if self._defect is not None:
            raise self._defect
        if self._finished:
            raise FormatError("leaves file: data after the end of the stream")
        buffer = self._buffer
        buffer += chunk
        leaves = self._split_fast(buffer)
        position = 0
        available = len(buffer)
        while position < available:
            marker = buffer[position]
            header_size = _HEADER_SIZE.get(marker)
            if header_size is None:
                return self._stop(
                    leaves,
                    f"leaves file: entry {self._next_seq} does not start with a msgpack bin "
                    f"header (found byte 0x{marker:02x})",
                )
            if position + header_size > available:
                break
            size = int.from_bytes(buffer[position + 1 : position + header_size], "big")
            problem = self._frame_problem(marker, size)
            if problem is not None:
                return self._stop(leaves, problem)
            end = position + header_size + size
            if end > available:
                break
            leaves.append(bytes(buffer[position + header_size : end]))
            self._next_seq += 1
            position = end
        del buffer[:position]
        return leaves

    def _split_fast(self, buffer: bytearray) -> list[bytes]:
        """Take the well-framed leaves off the front of ``buffer``, in C (msgpack's
        unpacker); stop at the first thing that is not one: an incomplete leaf, or a
        defect that the careful loop in ``feed`` then names precisely.

        The unpacker is allowed bin values of at most ``MAX_LEAF_SIZE`` bytes and
        scalars, nothing with items: a frame of another type is refused at its first
        bytes. A bin value counts only with its shortest header: the bytes it took
        are its length plus exactly that header's size.
        """
        unpacker = msgpack.Unpacker(
            max_bin_len=MAX_LEAF_SIZE,
            max_str_len=0,
            max_array_len=0,
            max_map_len=0,
            max_ext_len=0,
            max_buffer_size=max(len(buffer), 1),
        )
        unpacker.feed(buffer)
        leaves: list[bytes] = []
        position = 0
        try:
            for leaf in unpacker:
                end = unpacker.tell()
                if type(leaf) is not bytes:
                    break
                size = len(leaf)
                header = 2 if size < 0x100 else 3 if size < 0x10000 else 5
                if end - position != header + size:
                    break
                leaves.append(leaf)
                position = end
        except Exception:  # noqa: S110 - ``feed`` says what is wrong at ``position``
            pass
        del buffer[:position]
        self._next_seq += len(leaves)
        return leaves

    def finish(self) -> None:
        """The stream has ended: raise FormatError if it stopped inside a leaf."""
        if self._defect is not None:
            raise self._defect
        self._finished = True
        if self._buffer:
            raise FormatError(
                f"leaves file: ends in the middle of entry {self._next_seq} "
                f"({len(self._buffer)} bytes left over)"
            )

    def _stop(self, leaves: list[bytes], message: str) -> list[bytes]:
        self._defect = FormatError(message)
        self._buffer.clear()
        if not leaves:
            raise self._defect
        return leaves

    def _frame_problem(self, marker: int, size: int) -> str | None:
        if size > MAX_LEAF_SIZE:
            return (
                f"leaves file: entry {self._next_seq} claims {size} bytes, more than the "
                f"{MAX_LEAF_SIZE}-byte limit of a leaf"
            )
        shortest = _BIN8 if size < 0x100 else _BIN16 if size < 0x10000 else _BIN32
        if marker != shortest:
            return (
                f"leaves file: entry {self._next_seq} is framed with a longer msgpack bin "
                "header than needed (not canonical)"
            )
        return None


def decode_leaves(data: bytes, first_seq: int = 0) -> list[bytes]:
    """Split a whole ``leaves`` stream (see ``LeafStreamDecoder``)."""
    decoder = LeafStreamDecoder(first_seq)
    leaves = decoder.feed(data)
    decoder.finish()
    return leaves


__all__ = [
    "CHECKPOINT_FILE",
    "FORMAT",
    "LEAVES_FILE",
    "LEFT_FILE",
    "MANIFEST_FILE",
    "MAX_LEAF_SIZE",
    "PREVIOUS_CHECKPOINT_FILE",
    "PUBLICITY_CSV_FILE",
    "PUBLICITY_HTML_FILE",
    "LeafStreamDecoder",
    "Manifest",
    "decode_leaves",
    "decode_left",
    "decode_manifest",
    "encode_leaf_frame",
    "encode_leaves",
    "encode_left",
    "encode_manifest",
]
