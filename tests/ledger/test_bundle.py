"""The bundle format's pure part: manifest, left file and the leaves stream."""

from __future__ import annotations

import itertools
import json

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redlist.ledger import bundle, codec, merkle
from redlist.ledger.bundle import (
    MAX_LEAF_SIZE,
    LeafStreamDecoder,
    Manifest,
    decode_leaves,
    decode_left,
    decode_manifest,
    encode_leaf_frame,
    encode_leaves,
    encode_left,
    encode_manifest,
)
from redlist.ledger.errors import FormatError

ORIGIN = "wendeng.redlist.example/log"

# -- manifest ---------------------------------------------------------------


def test_manifest_round_trip_and_layout() -> None:
    manifest = Manifest(ORIGIN, 3, 10)
    data = encode_manifest(manifest)
    assert decode_manifest(data) == manifest
    assert json.loads(data) == {
        "format": "redlist-bundle/1",
        "origin": ORIGIN,
        "start": 3,
        "end": 10,
    }
    assert list(json.loads(data)) == ["format", "origin", "start", "end"]
    assert data.endswith(b"}\n")
    assert manifest.count == 7
    assert not manifest.is_full
    assert Manifest(ORIGIN, 0, 0).is_full


def test_manifest_keeps_non_ascii_origin() -> None:
    manifest = Manifest("文登.example/log", 0, 1)
    assert decode_manifest(encode_manifest(manifest)) == manifest


def _manifest_bytes(value: object) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode()


GOOD = {"format": "redlist-bundle/1", "origin": ORIGIN, "start": 0, "end": 4}


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\xff{}", "UTF-8"),
        (b"{", "not valid JSON"),
        (_manifest_bytes([1, 2]), "JSON object"),
        (_manifest_bytes({k: v for k, v in GOOD.items() if k != "end"}), "missing key"),
        (_manifest_bytes({**GOOD, "month": "2026-01"}), "unknown key"),
        (_manifest_bytes({**GOOD, "format": "redlist-bundle/2"}), "not supported"),
        (_manifest_bytes({**GOOD, "start": 5}), "after 'end'"),
        (_manifest_bytes({**GOOD, "start": -1}), "non-negative"),
        (_manifest_bytes({**GOOD, "end": True}), "non-negative integer"),
        (_manifest_bytes({**GOOD, "end": "4"}), "non-negative integer"),
        (_manifest_bytes({**GOOD, "origin": ""}), "non-empty"),
        (_manifest_bytes({**GOOD, "origin": 7}), "non-empty"),
        (_manifest_bytes({**GOOD, "origin": "a\nb"}), "single line"),
        (_manifest_bytes(GOOD).replace(b"4\n", b"4.0\n"), "integers only"),
        (_manifest_bytes(GOOD).replace(b"4\n", b"NaN\n"), "integers only"),
        (b'{"format": "redlist-bundle/1", "format": "redlist-bundle/1"}', "duplicate"),
    ],
)
def test_manifest_refusals(data: bytes, words: str) -> None:
    with pytest.raises(FormatError, match=words):
        decode_manifest(data)


@pytest.mark.parametrize(
    "data",
    [
        json.dumps(GOOD).encode(),
        json.dumps(dict(reversed(list(GOOD.items())))).encode(),
        _manifest_bytes(GOOD).replace(b"  ", b"\t").rstrip(b"\n"),
    ],
)
def test_manifest_layout_is_free(data: bytes) -> None:
    assert decode_manifest(data) == Manifest(ORIGIN, 0, 4)


def test_manifest_refuses_bad_values_on_construction() -> None:
    with pytest.raises(FormatError):
        Manifest(ORIGIN, 2, 1)


# -- left ---------------------------------------------------------------------


def _leaf_hashes(count: int) -> list[bytes]:
    return [merkle.leaf_hash(b"leaf %d" % number) for number in range(count)]


@pytest.mark.parametrize("start", [1, 2, 3, 7, 8, 13])
def test_left_round_trip_reproduces_the_root(start: int) -> None:
    hashes = _leaf_hashes(start + 5)
    left = merkle.CompactRange()
    left.extend(hashes[:start])
    data = encode_left(left)
    assert codec.decode(data) == list(left.hashes)
    decoded = decode_left(data, start)
    assert decoded == left
    decoded.extend(hashes[start:])
    assert decoded.root() == merkle.root_of(hashes)


def test_left_refusals() -> None:
    left = merkle.CompactRange()
    left.extend(_leaf_hashes(3))  # two subtree hashes
    data = encode_left(left)
    with pytest.raises(FormatError, match="subtree hashes"):
        decode_left(data, 4)  # a range of 4 leaves has one hash
    with pytest.raises(FormatError, match="32-byte hashes"):
        decode_left(codec.encode([b"short"]), 1)
    with pytest.raises(FormatError, match="32-byte hashes"):
        decode_left(codec.encode({"a": 1}), 1)
    with pytest.raises(FormatError, match="left file"):
        decode_left(data + b"\x00", 3)


# -- leaves -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "header"),
    [(0, b"\xc4\x00"), (255, b"\xc4\xff"), (256, b"\xc5\x01\x00"), (65535, b"\xc5\xff\xff")],
)
def test_leaf_frames_use_the_shortest_msgpack_bin_header(size: int, header: bytes) -> None:
    leaf = b"x" * size
    frame = encode_leaf_frame(leaf)
    assert frame == header + leaf
    assert frame == msgpack.packb(leaf, use_bin_type=True)


def test_largest_leaf_uses_bin32() -> None:
    leaf = b"x" * MAX_LEAF_SIZE
    assert encode_leaf_frame(leaf)[:5] == b"\xc6" + MAX_LEAF_SIZE.to_bytes(4, "big")
    assert decode_leaves(encode_leaf_frame(leaf)) == [leaf]
    with pytest.raises(FormatError, match="limit"):
        encode_leaf_frame(leaf + b"x")


leaf_lists = st.lists(st.binary(max_size=600), max_size=12)


@settings(max_examples=200, deadline=None)
@given(leaves=leaf_lists, cuts=st.lists(st.integers(min_value=0, max_value=8000), max_size=6))
def test_stream_splits_back_into_the_leaves_at_any_chunking(
    leaves: list[bytes], cuts: list[int]
) -> None:
    data = encode_leaves(leaves)
    points = sorted({min(cut, len(data)) for cut in cuts} | {0, len(data)})
    decoder = LeafStreamDecoder(first_seq=5)
    decoded: list[bytes] = []
    for begin, end in itertools.pairwise(points):
        decoded.extend(decoder.feed(data[begin:end]))
    decoder.finish()
    assert decoded == leaves
    assert decoder.next_seq == 5 + len(leaves)


def _split(data: bytes, points: list[int], fast: bool) -> tuple[list[bytes], str | None, int]:
    decoder = LeafStreamDecoder(first_seq=2)
    if not fast:  # the careful loop alone, as the stream was split before the C path
        decoder._split_fast = lambda buffer: []  # type: ignore[method-assign]
    decoded: list[bytes] = []
    try:
        for begin, end in itertools.pairwise(points):
            decoded.extend(decoder.feed(data[begin:end]))
        decoder.finish()
    except FormatError as exc:
        return decoded, str(exc), decoder.next_seq
    return decoded, None, decoder.next_seq


@settings(max_examples=300, deadline=None)
@given(
    leaves=leaf_lists,
    edits=st.lists(st.tuples(st.integers(min_value=0), st.binary(max_size=6)), max_size=3),
    cuts=st.lists(st.integers(min_value=0, max_value=8000), max_size=4),
)
def test_the_fast_split_decides_every_stream_as_the_careful_loop_does(
    leaves: list[bytes], edits: list[tuple[int, bytes]], cuts: list[int]
) -> None:
    data = bytearray(encode_leaves(leaves))
    for at, replacement in edits:  # damage: bytes replaced, inserted or cut anywhere
        at %= len(data) + 1
        data[at : at + len(replacement) // 2] = replacement
    stream = bytes(data)
    points = sorted({min(cut, len(stream)) for cut in cuts} | {0, len(stream)})
    assert _split(stream, points, fast=True) == _split(stream, points, fast=False)


def test_stream_returns_the_good_leaves_before_refusing_a_non_bin_value() -> None:
    data = encode_leaves([b"one", b"two"]) + codec.encode("three") + encode_leaves([b"four"])
    decoder = LeafStreamDecoder(first_seq=10)
    assert decoder.feed(data) == [b"one", b"two"]
    assert decoder.next_seq == 12
    with pytest.raises(FormatError, match="entry 12 does not start with a msgpack bin"):
        decoder.feed(b"")
    with pytest.raises(FormatError, match="entry 12"):
        decoder.finish()


def test_stream_refuses_at_once_when_the_chunk_starts_with_the_defect() -> None:
    decoder = LeafStreamDecoder(first_seq=3)
    with pytest.raises(FormatError, match="entry 3 does not start"):
        decoder.feed(b"\x00")


def test_stream_refuses_a_longer_header_than_needed() -> None:
    data = b"\xc5\x00\x03abc"
    with pytest.raises(FormatError, match="not canonical"):
        decode_leaves(data)


def test_stream_refuses_an_oversized_claim_before_reading_it() -> None:
    decoder = LeafStreamDecoder()
    with pytest.raises(FormatError, match="claims 4294967295 bytes"):
        decoder.feed(b"\xc6\xff\xff\xff\xff")


@pytest.mark.parametrize("cut", [1, 2, 4])
def test_stream_refuses_truncation(cut: int) -> None:
    data = encode_leaves([b"first", b"second"])
    decoder = LeafStreamDecoder()
    assert decoder.feed(data[:-cut]) == [b"first"]
    with pytest.raises(FormatError, match="middle of entry 1"):
        decoder.finish()


def test_stream_refuses_data_after_finish() -> None:
    decoder = LeafStreamDecoder()
    decoder.finish()
    with pytest.raises(FormatError, match="after the end"):
        decoder.feed(b"\xc4\x00")


def test_file_names_are_the_documented_ones() -> None:
    assert (bundle.MANIFEST_FILE, bundle.CHECKPOINT_FILE, bundle.LEAVES_FILE, bundle.LEFT_FILE) == (
        "manifest.json",
        "checkpoint",
        "leaves",
        "left",
    )
    assert bundle.FORMAT == "redlist-bundle/1"
