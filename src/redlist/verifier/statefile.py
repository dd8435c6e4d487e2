"""The ``--state`` file: what an earlier successful run established, pinned for the next.

It holds the log key, the origin and the last verified checkpoint (its text, tree
size and root). The next run takes its log key from here when none is given (and
refuses a different one), and requires the new checkpoint to extend the pinned one,
so a log that later rewrites or rolls back its history is caught.

The file is JSON, written only after a successful audit and atomically (a temporary
file in the same directory, flushed to disk, then renamed over the old one), so an
interrupted run leaves the previous state intact. On reading, the pinned checkpoint
is verified again with the pinned key and must match the recorded size and root:
a damaged or hand-edited file is refused rather than trusted.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redlist.ledger.errors import NoteError, SourceError
from redlist.ledger.note import VerifierKey, open_checkpoint
from redlist.verifier.audit import STATE_FILE_SOURCE, AuditResult, TrustedHead

FORMAT = "redlist-verify-state/1"
_KEYS = ("format", "log_key", "origin", "tree_size", "root", "checkpoint")


@dataclass(frozen=True)
class PinnedState:
    """The log key and the last checkpoint a run verified."""

    log_key: VerifierKey
    origin: str
    tree_size: int
    root: bytes
    checkpoint: str

    @classmethod
    def from_result(cls, log_key: VerifierKey, result: AuditResult) -> PinnedState:
        """The state to pin after ``result`` verified (its checkpoint becomes the pin)."""
        checkpoint = result.checkpoint
        return cls(
            log_key, checkpoint.origin, checkpoint.size, checkpoint.root, result.checkpoint_text
        )

    def head(self) -> TrustedHead:
        """The pinned tree head, as the audit takes it."""
        return TrustedHead(self.tree_size, self.root, STATE_FILE_SOURCE)

    def to_bytes(self) -> bytes:
        value = {
            "format": FORMAT,
            "log_key": self.log_key.encode(),
            "origin": self.origin,
            "tree_size": self.tree_size,
            "root": self.root.hex(),
            "checkpoint": self.checkpoint,
        }
        return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "the state file") -> PinnedState:
        """Read and re-verify a state file's bytes; SourceError when it cannot be trusted."""
        try:
            value = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise SourceError(f"{where} is not valid JSON; it is damaged") from None
        if not isinstance(value, dict) or sorted(value) != sorted(_KEYS):
            raise SourceError(f"{where} does not have the fields {', '.join(_KEYS)}")
        if value["format"] != FORMAT:
            raise SourceError(f"{where} has format {value['format']!r}, expected {FORMAT!r}")
        try:
            log_key = VerifierKey.parse(_text(value, "log_key", where))
            checkpoint = open_checkpoint(_text(value, "checkpoint", where), log_key)
        except NoteError as exc:
            raise SourceError(f"{where} is damaged: {exc}") from None
        root_hex = _text(value, "root", where)
        if (
            value["origin"] != checkpoint.origin
            or value["tree_size"] != checkpoint.size
            or root_hex != checkpoint.root.hex()
        ):
            raise SourceError(
                f"{where} is damaged: its origin, tree size or root do not match the "
                "checkpoint it holds"
            )
        return cls(
            log_key, checkpoint.origin, checkpoint.size, checkpoint.root, value["checkpoint"]
        )


def load_state(path: Path) -> PinnedState | None:
    """The state pinned in ``path``, or None when the file does not exist yet."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SourceError(f"cannot read the state file {path}: {exc.strerror or exc}") from None
    return PinnedState.from_bytes(data, f"the state file {path}")


def save_state(path: Path, state: PinnedState) -> None:
    """Write ``state`` to ``path`` atomically: the old file stays until the new one is complete."""
    directory = path.parent if str(path.parent) else Path(".")
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise SourceError(
            f"cannot write the state file in {directory}: {exc.strerror or exc}"
        ) from None
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(state.to_bytes())
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise SourceError(f"cannot write the state file {path}: {exc.strerror or exc}") from None
    _sync_directory(directory)


def _sync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not every platform can open a directory.
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _text(value: dict[str, Any], key: str, where: str) -> str:
    item = value[key]
    if not isinstance(item, str):
        raise SourceError(f"{where}: '{key}' must be text")
    return item


__all__ = ["FORMAT", "PinnedState", "load_state", "save_state"]
