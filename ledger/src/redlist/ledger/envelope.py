"""Format v1's envelopes and leaves: what an author submits and what the node appends
(DESIGN 3.2, 3.3). Pure.

Each class converts to and from bytes; ``from_bytes`` accepts only canonical bytes and
validates the structure. The original bytes are kept next to the decoded value
(``Envelope.body``, ``Envelope.raw``, ``Leaf.envelope``): hashes and signatures are always
computed over them, never over a re-encoding. Both decoders try a fast path for the common
shapes first, which decides exactly as the general path does
(``tests/ledger/test_fast_paths.py``).
"""

from __future__ import annotations

from typing import Final, NamedTuple

from redlist.ledger import codec
from redlist.ledger.canonicalbytes import FAIL, expect, read_binary, read_fixarray, read_uint
from redlist.ledger.errors import FormatError
from redlist.ledger.fieldreader import is_int
from redlist.ledger.formatv1 import HASH_SIZE, KEY_ID_SIZE, MAX_ENVELOPE_SIZE, SIGNATURE_SIZE


class EntrySignature(NamedTuple):
    """One signature of an envelope: the signing key's id and the signature (a named
    tuple, as ``Leaf`` is: cheap to make for every entry read)."""

    key_id: bytes
    signature: bytes


class Envelope(NamedTuple):
    """What an author submits: body bytes and signatures over them (DESIGN 3.2).

    ``raw`` is the envelope's bytes as read (``from_bytes``), b"" for one built here. A
    named tuple, as ``Leaf`` is (one is made for every entry read), so two envelopes are
    equal when their ``raw`` is too: a decoded envelope equals the one decoded from the
    same bytes, not one built from its fields.
    """

    body: bytes
    signatures: tuple[EntrySignature, ...]
    raw: bytes = b""

    def __repr__(self) -> str:  # the body and signatures; the raw bytes repeat them
        return f"Envelope(body={self.body!r}, signatures={self.signatures!r})"

    def to_bytes(self) -> bytes:
        if self.raw:
            return self.raw
        return codec.encode([self.body, [[sig.key_id, sig.signature] for sig in self.signatures]])

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        if len(data) > MAX_ENVELOPE_SIZE:
            raise FormatError(
                f"envelope: {len(data)} bytes is larger than the {MAX_ENVELOPE_SIZE}-byte limit"
            )
        quick = _envelope_fast(data, codec.thread_pack())
        if quick is not None:
            return quick
        value = codec.decode(data, "envelope")
        if not (isinstance(value, list) and len(value) == 2):
            raise FormatError("envelope: must be an array [body, signatures]")
        body, raw_sigs = value
        if not isinstance(body, bytes):
            raise FormatError("envelope: the body must be msgpack bin")
        if not isinstance(raw_sigs, list) or not raw_sigs:
            raise FormatError("envelope: must carry at least one signature")
        signatures: list[EntrySignature] = []
        for number, raw in enumerate(raw_sigs):
            if not (
                isinstance(raw, list)
                and len(raw) == 2
                and isinstance(raw[0], bytes)
                and len(raw[0]) == KEY_ID_SIZE
                and isinstance(raw[1], bytes)
                and len(raw[1]) == SIGNATURE_SIZE
            ):
                raise FormatError(
                    f"envelope: signature {number + 1} must be [key_id: 8 bytes, sig: 64 bytes]"
                )
            if signatures and raw[0] <= signatures[-1].key_id:
                raise FormatError(
                    "envelope: signatures must be in strictly increasing key id order"
                )
            signatures.append(EntrySignature(raw[0], raw[1]))
        return cls(body, tuple(signatures), bytes(data))


class Leaf(NamedTuple):
    """What the node appends: sequence, integration time, chain link, envelope (DESIGN 3.3).

    A named tuple, not a dataclass: one is made for every leaf a node or an auditor
    reads, and a tuple costs a fraction of a dataclass value to make, read and free.
    """

    seq: int
    time: int
    prev: bytes
    envelope: bytes

    def to_bytes(self) -> bytes:
        return codec.encode([self.seq, self.time, self.prev, self.envelope])

    @classmethod
    def from_bytes(cls, data: bytes) -> Leaf:
        quick = _leaf_fast(data, codec.thread_pack())
        if quick is not None:
            return quick
        value = codec.decode(data, "leaf")
        if not (
            isinstance(value, list)
            and len(value) == 4
            and is_int(value[0])
            and is_int(value[1])
            and isinstance(value[2], bytes)
            and isinstance(value[3], bytes)
        ):
            raise FormatError("leaf: must be an array [seq, time, prev: bin, envelope: bin]")
        seq, time, prev, envelope = value
        if seq < 0 or time < 0:
            raise FormatError("leaf: seq and time must not be negative")
        if len(prev) != HASH_SIZE:
            raise FormatError(f"leaf: prev must be {HASH_SIZE} bytes")
        return cls(seq, time, prev, envelope)


def decode_common(data: bytes, pack: codec.Pack) -> tuple[Leaf, Envelope] | None:
    """A leaf and its envelope at once, by the fast paths of ``Leaf.from_bytes`` and
    ``Envelope.from_bytes``: the same values, or None when either needs the general
    decoder (which then decides, and says why). ``pack`` is the calling thread's
    ``codec.thread_pack()``: finding it costs as much as checking a small value."""
    leaf = _leaf_fast(data, pack)
    if leaf is None or len(leaf.envelope) > MAX_ENVELOPE_SIZE:
        return None
    envelope = _envelope_fast(leaf.envelope, pack)
    if envelope is None:
        return None
    return leaf, envelope


def _leaf_fast(data: bytes, pack: codec.Pack) -> Leaf | None:
    """``Leaf.from_bytes``'s fast path: exact types make the value plain (see
    ``codec.try_unpack``), and the checks are the general path's; None leaves the
    verdict to it."""
    if type(data) is not bytes:
        return None
    leaf = _leaf_from_bytes(data)  # every leaf a node writes, read without unpacking
    if leaf is not None:
        return leaf
    value = codec.try_unpack(data)
    if type(value) is not list or len(value) != 4:
        return None
    seq, time, prev, envelope = value
    if (
        type(seq) is int
        and type(time) is int
        and type(prev) is bytes
        and type(envelope) is bytes
        and seq >= 0
        and time >= 0
        and len(prev) == HASH_SIZE
        and pack(value) == data  # ``codec.encodes_to``, with the caller's packer
    ):
        return _new_tuple(Leaf, value)  # [seq, time, prev, envelope], checked
    return None


def _envelope_fast(data: bytes, pack: codec.Pack) -> Envelope | None:
    """``Envelope.from_bytes``'s fast path: the same checks with exact types (which make
    the value plain, see ``codec.try_unpack``); None leaves the verdict to the general path.
    """
    if type(data) is not bytes:
        return None
    envelope = _envelope_from_bytes(data)  # almost every envelope, read without unpacking
    if envelope is not None:
        return envelope
    value = codec.try_unpack(data)
    if type(value) is not list or len(value) != 2:
        return None
    body, raw_sigs = value
    if type(body) is not bytes or type(raw_sigs) is not list or not raw_sigs:
        return None
    signatures: list[EntrySignature] = []
    previous = b""
    for raw in raw_sigs:
        if type(raw) is not list or len(raw) != 2:
            return None
        key_id, signature = raw
        if (
            type(key_id) is not bytes
            or len(key_id) != KEY_ID_SIZE
            or type(signature) is not bytes
            or len(signature) != SIGNATURE_SIZE
            or key_id <= previous
        ):
            return None
        signatures.append(_new_tuple(EntrySignature, raw))  # [key_id, signature], checked
        previous = key_id
    if pack(value) != data:  # ``codec.encodes_to``, with the caller's packer
        return None
    return _new_tuple(Envelope, (body, tuple(signatures), data))


def _envelope_from_bytes(data: bytes) -> Envelope | None:
    """An envelope read straight from its bytes (``canonicalbytes``): ``[body: bin,
    [[key_id: bin, signature: bin], ...]]``, at most 15 signatures in increasing key id
    order. The value ``_envelope_fast`` gives, or None (then the unpacking path decides)."""
    body, pos = read_binary(data, expect(data, 0, _PAIR))
    count, pos = read_fixarray(data, pos)
    if pos == FAIL or count == 0:
        return None
    signatures: list[EntrySignature] = []
    previous = b""
    for _ in range(count):
        key_id, pos = read_binary(data, expect(data, pos, _PAIR))
        signature, pos = read_binary(data, pos)
        if (
            pos == FAIL
            or len(key_id) != KEY_ID_SIZE
            or len(signature) != SIGNATURE_SIZE
            or key_id <= previous
        ):
            return None
        signatures.append(_new_tuple(EntrySignature, (key_id, signature)))
        previous = key_id
    if pos != len(data):
        return None
    return _new_tuple(Envelope, (body, tuple(signatures), data))


def _leaf_from_bytes(data: bytes) -> Leaf | None:
    """A leaf read straight from its bytes (``canonicalbytes``): ``[seq, time, prev: bin,
    envelope: bin]``. The value ``_leaf_fast`` gives, or None (then the unpacking path
    decides)."""
    seq, pos = read_uint(data, expect(data, 0, _FOUR))
    time, pos = read_uint(data, pos)
    prev, pos = read_binary(data, pos)
    envelope, pos = read_binary(data, pos)
    if pos != len(data) or len(prev) != HASH_SIZE:
        return None
    return _new_tuple(Leaf, (seq, time, prev, envelope))


#: The fixarray headers of an envelope or a signature (two items) and of a leaf (four).
_PAIR: Final = b"\x92"
_FOUR: Final = b"\x94"

# The fast paths build ``Leaf``, ``EntrySignature`` and ``Envelope`` (named tuples) of
# their checked fields without their generated ``__new__``: the same values, one Python
# call less.
_new_tuple = tuple.__new__
