"""Coverage-guided fuzzing of the format v1 decoders with atheris (libFuzzer), run by hand.

Not part of ``make test`` (the hypothesis tests in ``test_fuzz_decoders.py`` are);
this is for a longer hunt, for example before a release::

    .venv/bin/pip install atheris
    .venv/bin/python tests/faults/atheris_body.py --seeds /tmp/redlist-corpus
    .venv/bin/python tests/faults/atheris_body.py /tmp/redlist-corpus -max_total_time=600

Every input goes through ``codec.decode``, ``entry.decode_body``,
``Envelope.from_bytes``, ``Leaf.from_bytes`` and the bundle ``leaves`` stream
decoder. A decoder may refuse it with ``FormatError`` and nothing else; what it
accepts must re-encode to exactly the input. Any other outcome is a crash:
libFuzzer stops, prints the traceback and saves the input as ``crash-<sha1>``.
``--seeds DIR`` writes a few valid encodings to start the corpus from, and exits.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

try:
    import atheris  # type: ignore[import-untyped, import-not-found, unused-ignore]
except ImportError:
    raise SystemExit("atheris is not installed: run .venv/bin/pip install atheris") from None

with atheris.instrument_imports():
    from redlist.ledger import bundle, codec, crypto
    from redlist.ledger.entry import Award, Envelope, Leaf, RuleChange, decode_body
    from redlist.ledger.errors import FormatError


def fuzz_one_input(data: bytes) -> None:
    """Raise (a crash, for libFuzzer) unless every decoder refuses cleanly or round-trips."""
    try:
        value = codec.decode(data)
    except FormatError:
        pass
    else:
        if codec.encode(value) != data:
            raise AssertionError("codec.decode accepted a non-canonical encoding")
    try:
        body = decode_body(data)
    except FormatError:
        pass
    else:
        if body.to_bytes() != data:
            raise AssertionError("decode_body accepted bytes it does not write")
    try:
        envelope = Envelope.from_bytes(data)
    except FormatError:
        pass
    else:
        signatures = [[sig.key_id, sig.signature] for sig in envelope.signatures]
        if codec.encode([envelope.body, signatures]) != data:
            raise AssertionError("Envelope.from_bytes accepted bytes it does not write")
    try:
        leaf = Leaf.from_bytes(data)
    except FormatError:
        pass
    else:
        if leaf.to_bytes() != data:
            raise AssertionError("Leaf.from_bytes accepted bytes it does not write")
    try:
        leaves = bundle.decode_leaves(data)
    except FormatError:
        pass
    else:
        if bundle.encode_leaves(leaves) != data:
            raise AssertionError("decode_leaves accepted a stream it does not write")


def write_seeds(directory: Path) -> None:
    """Valid bodies, envelopes, leaves and a leaves stream, one file each."""
    key = crypto.SigningKey.from_seed(bytes(32))
    origin = "fuzz.redlist.example/log"
    bodies = [
        Award(
            origin,
            bytes(16),
            1_767_225_600_000,
            "resident-1",
            "clean-pond",
            2,
            note=bytes(range(32)),  # a text commitment (DESIGN 9.2)
            date="2026-01-01",
        ),
        RuleChange(
            origin, bytes(range(16)), 1, "set", "litter", "Littering", "environment", -5, False
        ),
    ]
    seeds: list[bytes] = []
    for body in bodies:
        raw = body.to_bytes()
        envelope = codec.encode([raw, [[key.key_id, crypto.sign_entry(key, raw)]]])
        leaf = Leaf(7, 1_767_225_600_001, bytes(32), envelope).to_bytes()
        seeds += [raw, envelope, leaf, bundle.encode_leaves([leaf, leaf])]
    directory.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        (directory / hashlib.sha1(seed, usedforsecurity=False).hexdigest()).write_bytes(seed)
    print(f"wrote {len(seeds)} seed inputs to {directory}")


def main(argv: list[str]) -> None:
    if len(argv) == 3 and argv[1] == "--seeds":
        write_seeds(Path(argv[2]))
        return
    atheris.Setup(argv, fuzz_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
