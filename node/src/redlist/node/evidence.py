"""Split-view evidence on disk (DESIGN 8.5): written by the witness, listed by ``alarms``.

A witness that is shown two checkpoints of one log that cannot both be true keeps
them as a file ``<data>/evidence/<origin hash>/<time>.txt``: the text of
:meth:`~redlist.ledger.witness.SplitViewEvidence.to_text` (both signed notes and the
proof it was given). The origin hash is the SHA-256 of the origin, in hex, so any
origin makes a safe directory name; the time is UTC with nanoseconds, so files sort
in the order they were written. The file is fsynced, and so is its directory, before
the witness answers: evidence is never lost to a crash after the refusal was sent.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from redlist.ledger.errors import NoteError, StoreError
from redlist.ledger.i18n import _
from redlist.ledger.syncdir import sync_directory
from redlist.ledger.witness import SplitViewEvidence

EVIDENCE_DIR_NAME = "evidence"
#: Both notes (at most 1 MiB each) and a proof: anything larger is not evidence.
EVIDENCE_FILE_LIMIT = 4 << 20
#: The most evidence files kept for one log: one split proves the log forked, and a
#: forked primary that keeps asking (each time another fork) cannot fill the disk.
MAX_EVIDENCE_FILES = 100


def origin_hash(origin: str) -> str:
    """The directory name of ``origin``'s evidence: SHA-256 of its UTF-8, in hex."""
    return hashlib.sha256(origin.encode("utf-8")).hexdigest()


def write_evidence(
    data_dir: Path, evidence: SplitViewEvidence, clock: Callable[[], int] = time.time_ns
) -> Path:
    """Write ``evidence`` durably under ``data_dir/evidence/``; return the file's path.

    A primary that was refused keeps asking (with its back-off) and shows the same split
    again and again: evidence already kept, byte for byte, is not written twice (its
    file is returned), and a log holds at most ``MAX_EVIDENCE_FILES`` files (then the
    newest is returned; the alarm stands, and what is kept proves it).
    """
    folder = data_dir / EVIDENCE_DIR_NAME / origin_hash(evidence.origin)
    data = evidence.to_text().encode("utf-8")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        kept = _kept(folder, data)
        if kept is not None:
            return kept
        now = clock()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now // 1_000_000_000))
        base = f"{stamp}.{now % 1_000_000_000:09d}Z"
        for attempt in range(100):
            path = folder / (f"{base}.txt" if attempt == 0 else f"{base}-{attempt}.txt")
            try:
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            sync_directory(folder)
            sync_directory(folder.parent)
            return path
    except OSError as error:
        raise StoreError(
            _("cannot write split-view evidence in {folder}: {error}").format(
                folder=folder, error=error
            )
        ) from None
    raise StoreError(
        _("cannot write split-view evidence in {folder}: too many files of one time").format(
            folder=folder
        )
    )


def _kept(folder: Path, data: bytes) -> Path | None:
    """The file in ``folder`` that holds ``data`` already, or the newest one when the
    folder is full (``MAX_EVIDENCE_FILES``); None when ``data`` is to be written."""
    files = sorted(path for path in folder.glob("*.txt") if path.is_file())
    for path in files:
        try:
            if path.stat().st_size == len(data) and path.read_bytes() == data:
                return path
        except OSError:
            continue  # unreadable: another file is written beside it
    return files[-1] if len(files) >= MAX_EVIDENCE_FILES else None


@dataclass(frozen=True)
class EvidenceFile:
    """One evidence file found in a data directory, read (``evidence``) or not (``problem``)."""

    path: Path
    evidence: SplitViewEvidence | None
    problem: str | None = None


def list_evidence(data_dir: Path) -> list[EvidenceFile]:
    """Every evidence file under ``data_dir/evidence/``, oldest first within each log."""
    root = data_dir / EVIDENCE_DIR_NAME
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.glob("*/*.txt")):
        try:
            if path.stat().st_size > EVIDENCE_FILE_LIMIT:
                raise NoteError(
                    _("larger than {EVIDENCE_FILE_LIMIT} bytes: not evidence").format(
                        EVIDENCE_FILE_LIMIT=EVIDENCE_FILE_LIMIT
                    )
                )
            text = path.read_bytes().decode("utf-8")
            found.append(EvidenceFile(path, SplitViewEvidence.from_text(text)))
        except NoteError as error:
            found.append(EvidenceFile(path, None, error.diagnostics()))
        except UnicodeDecodeError:
            found.append(EvidenceFile(path, None, _("not UTF-8 text")))
        except OSError as error:
            found.append(
                EvidenceFile(
                    path, None, _("cannot be read: {strerror}").format(strerror=error.strerror)
                )
            )
    return found
