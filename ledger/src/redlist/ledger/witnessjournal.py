"""The witness's journal: what it has cosigned, kept outside its LMDB environment.

A witness must never roll back (DESIGN 8.2): cosigning from an older head lets it
cosign a history that contradicts one it cosigned before. ``witness.lmdb`` survives
kill -9, but a restored old copy of it would silently hold older heads. So every head
the witness stores is also appended to ``<data>/witness.journal`` (and fsynced) before
the cosignature is returned, and :class:`~redlist.ledger.witnessstore.WitnessStore`
compares the two on open: a state whose head for some log is smaller than the
journal's (or of the same size with another root, or missing) is a **rollback**, and
the store refuses to open until the operator puts the newest state back or resets the
journal on purpose (:meth:`WitnessJournal.record_reset`, ``redlist-node witness-reset``).

Order: the LMDB commit comes first, the journal line second. A witness killed between
the two has a state *ahead* of its journal, which is not a rollback: the journal is
brought up to date on the next open. The reverse order would make a crash look like a
rollback.

What it catches: a restored or copied-in ``witness.lmdb`` (the directory, or its
``data.mdb``) older than the journal; a journal deleted while the state says it had
one. What it cannot catch: the whole data directory restored from one backup (state
and journal agree, both old), or an operator who edits the journal; the journal is a
guard against accidents, not against the witness's own operator (whose two
contradicting cosignatures would be evidence against the witness itself).

Format: UTF-8 text, one JSON object per line. The first line is
``{"format": "redlist-witness-journal/1"}``; then, in the order written:

* ``{"log": HEX, "origin": TEXT, "size": N, "root": B64}``: a head stored, where HEX is
  the state's key for the log (SHA-256 of its verifier key string, hex);
* ``{"reset": HEX, "origin": TEXT, "size": N, "root": B64, "was": N|null, "time": T}``:
  the operator accepted the state's head (``size``/``root``) although the journal had
  ``was`` (null: the journal itself was missing).

A log's head in the journal is the largest head recorded since its last reset. A last
line without its newline (the witness died while writing it) is ignored and cut off;
any other unreadable line is damage (``IntegrityError``). When the file passes
:data:`COMPACT_BYTES` it is rewritten (atomically) with its resets and one head per log.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redlist.ledger.errors import IntegrityError, StoreError
from redlist.ledger.merkle import HASH_SIZE
from redlist.ledger.syncdir import sync_directory

JOURNAL_NAME = "witness.journal"
JOURNAL_FORMAT = "redlist-witness-journal/1"
#: Rewrite the journal with one line per log once it is this long.
COMPACT_BYTES = 1 << 20


@dataclass(frozen=True)
class JournalHead:
    """A head as the journal knows it: the log's origin, size and root."""

    origin: str
    size: int
    root: bytes


@dataclass(frozen=True)
class Rollback:
    """One log whose stored head is older than the journal's (``stored`` None: none)."""

    key: bytes
    journal: JournalHead
    stored: JournalHead | None

    def describe(self) -> str:
        held = "nothing" if self.stored is None else f"size {self.stored.size}"
        if self.stored is not None and self.stored.size == self.journal.size:
            held = f"size {self.stored.size} with another root"
        return (
            f"log {self.journal.origin}: cosigned up to size {self.journal.size}, "
            f"the state holds {held}"
        )


class WitnessJournal:
    """The journal file of one data directory; the caller holds the witness's lock."""

    def __init__(self, path: Path, lines: list[dict[str, Any]], length: int) -> None:
        self.path = path
        self._lines = lines
        self._length = length
        self._descriptor: int | None = None

    @classmethod
    def exists(cls, data_dir: Path) -> bool:
        return (data_dir / JOURNAL_NAME).exists()

    @classmethod
    def create(cls, data_dir: Path, heads: Mapping[bytes, JournalHead]) -> WitnessJournal:
        """Write a new journal holding ``heads`` (atomically) and open it."""
        path = data_dir / JOURNAL_NAME
        lines = [_head_line(key, head) for key, head in sorted(heads.items())]
        _write_atomically(path, lines)
        return cls.open(data_dir)

    @classmethod
    def open(cls, data_dir: Path) -> WitnessJournal:
        """Read ``data_dir/witness.journal`` (which must exist), cutting off a torn last line."""
        path = data_dir / JOURNAL_NAME
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise StoreError(f"cannot read the witness journal {path}: {exc.strerror}") from None
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) != len(data):
            _truncate(path, len(complete))
        lines = [_parse(path, number, text) for number, text in _numbered(complete)]
        if not lines or lines[0] != {"format": JOURNAL_FORMAT}:
            raise IntegrityError(
                f"{path} is not a witness journal (its first line should be "
                f'{{"format": "{JOURNAL_FORMAT}"}})'
            )
        journal = cls(path, lines[1:], len(complete))
        if journal._length > COMPACT_BYTES:
            journal._compact()
        return journal

    def heads(self) -> dict[bytes, JournalHead]:
        """Each log's head: the largest recorded since its last reset."""
        heads: dict[bytes, JournalHead] = {}
        for line in self._lines:
            key, head = _head_of(line)
            known = heads.get(key)
            if "reset" in line or known is None or head.size > known.size:
                heads[key] = head
        return heads

    def record(self, key: bytes, head: JournalHead) -> None:
        """Append ``head`` for the log stored under ``key``; durable when this returns."""
        self._append(_head_line(key, head))

    def record_reset(self, key: bytes, head: JournalHead, was: JournalHead | None) -> None:
        """Record that the operator accepted ``head`` although the journal had ``was``."""
        line = _head_line(key, head)
        line["reset"] = line.pop("log")
        line["was"] = None if was is None else was.size
        line["time"] = int(time.time())
        self._append(line)

    def close(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None

    def _append(self, line: dict[str, Any]) -> None:
        data = _encode(line)
        try:
            if self._descriptor is None:
                self._descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            os.write(self._descriptor, data)
            os.fsync(self._descriptor)
        except OSError as exc:
            raise StoreError(
                f"cannot write the witness journal {self.path}: {exc.strerror}"
            ) from None
        self._lines.append(line)
        self._length += len(data)
        if self._length > COMPACT_BYTES:
            self._compact()

    def _compact(self) -> None:
        resets = [line for line in self._lines if "reset" in line]
        kept = resets + [_head_line(key, head) for key, head in sorted(self.heads().items())]
        self.close()
        self._length = _write_atomically(self.path, kept)
        self._lines = kept


def _numbered(data: bytes) -> Iterable[tuple[int, bytes]]:
    return enumerate(data.splitlines(), start=1)


def _parse(path: Path, number: int, text: bytes) -> dict[str, Any]:
    try:
        line = json.loads(text)
        if not isinstance(line, dict):
            raise ValueError("not an object")
        if number > 1:
            _head_of(line)
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(
            f"the witness journal {path} is damaged at line {number}: {exc}"
        ) from None
    return line


def _head_of(line: Mapping[str, Any]) -> tuple[bytes, JournalHead]:
    key = bytes.fromhex(line["reset"] if "reset" in line else line["log"])
    root = base64.b64decode(line["root"], validate=True)
    size, origin = line["size"], line["origin"]
    if len(key) != 32 or len(root) != HASH_SIZE:
        raise ValueError("a key or root of the wrong length")
    if not isinstance(size, int) or size < 0 or not isinstance(origin, str):
        raise ValueError("a size or origin of the wrong kind")
    return key, JournalHead(origin, size, root)


def _head_line(key: bytes, head: JournalHead) -> dict[str, Any]:
    return {
        "log": key.hex(),
        "origin": head.origin,
        "size": head.size,
        "root": base64.b64encode(head.root).decode("ascii"),
    }


def _encode(line: Mapping[str, Any]) -> bytes:
    return (json.dumps(line, ensure_ascii=False, separators=(", ", ": ")) + "\n").encode("utf-8")


def _write_atomically(path: Path, lines: list[dict[str, Any]]) -> int:
    """Replace ``path`` with the header and ``lines``, durably; returns its length."""
    data = b"".join(_encode(line) for line in [{"format": JOURNAL_FORMAT}, *lines])
    descriptor, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staging, path)
        sync_directory(path.parent)
    except OSError as exc:
        Path(staging).unlink(missing_ok=True)
        raise StoreError(f"cannot write the witness journal {path}: {exc.strerror}") from None
    return len(data)


def _truncate(path: Path, length: int) -> None:
    try:
        with path.open("r+b") as handle:
            handle.truncate(length)
            os.fsync(handle.fileno())
    except OSError as exc:
        raise StoreError(f"cannot repair the witness journal {path}: {exc.strerror}") from None
