"""Signed-note and checkpoint test vectors from ``tests/vectors/notes``.

Provenance (see that directory's README and LICENSE): the C2SP signed-note
example (c2sp.org/signed-note) and Tessera's test log ``testdata/log``
(transparency-dev/tessera, Apache-2.0): its verifier key, signer key, leaf list
and the signed checkpoint at every size 0..15.

The vectors are part of the repository, in ``tests/vectors/notes`` (licences in
``LICENSES.md`` there); set ``REDLIST_VECTORS`` to another directory holding ``notes/``
to use another copy. A missing vector file fails the test, never skips it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ENV_VAR = "REDLIST_VECTORS"
DEFAULT_VECTORS = Path(__file__).resolve().parent / "vectors"


def notes_dir() -> Path:
    """The ``notes`` vector directory; raises when it is absent."""
    override = os.environ.get(ENV_VAR)
    vectors = Path(override) if override else DEFAULT_VECTORS
    directory = vectors / "notes"
    if not (directory / "notes.json").is_file():
        raise FileNotFoundError(
            f"signed-note vectors not found (no {directory / 'notes.json'}): tests/vectors"
            f" is part of the repository (or set {ENV_VAR} to another copy)"
        )
    return directory


@dataclass(frozen=True)
class ExampleNote:
    """The example of c2sp.org/signed-note: a verifier key and a note it signed."""

    vkey: str
    note: str


@dataclass(frozen=True)
class TesseraLog:
    """Tessera's test log: its keys, its leaves, and ``checkpoints[n]`` at size n."""

    vkey: str
    skey: str
    leaves: tuple[bytes, ...]
    checkpoints: tuple[bytes, ...]


@cache
def _notes_json(directory: Path) -> dict[str, dict[str, object]]:
    data: dict[str, dict[str, object]] = json.loads((directory / "notes.json").read_text("utf-8"))
    return data


def c2sp_example() -> ExampleNote:
    """The C2SP signed-note example."""
    entry = _notes_json(notes_dir())["c2sp_signed_note_example"]
    return ExampleNote(vkey=str(entry["vkey"]), note=str(entry["note"]))


def tessera_log() -> TesseraLog:
    """Tessera's test log with all its checkpoints (sizes 0 to the number of leaves)."""
    directory = notes_dir()
    entry = _notes_json(directory)["tessera_testdata_log"]
    words = entry["leaves_utf8"]
    assert isinstance(words, list)
    leaves = tuple(str(word).encode("utf-8") for word in words)
    checkpoints = tuple(
        (directory / "tessera-testdata-log" / f"checkpoint.{size}").read_bytes()
        for size in range(len(leaves) + 1)
    )
    return TesseraLog(
        vkey=str(entry["vkey"]), skey=str(entry["skey"]), leaves=leaves, checkpoints=checkpoints
    )
