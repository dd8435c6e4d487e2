"""A data directory's key files: a town's ``log.key`` and ``log.pub``, a mirror's ``log.pub``.

A town's data directory holds its log key beside the store (``log``):

* ``log.key``: the log's note signing key, ``PRIVATE+KEY+...`` (mode 0600);
* ``log.pub``: its verifier key string, the one auditors are given (mode 0644).

A mirror's holds ``log.pub`` only (``mirrorlog``): it never signs. Every file is made
durable before anything relies on it (the file, then its directory, synced), and a
log's ``create`` that fails takes back what it made (``remove_created``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from redlist.ledger import logkeyfile
from redlist.ledger.errors import KeyFileError, StoreError
from redlist.ledger.note.keys import NoteSigner, VerifierKey
from redlist.ledger.note.syntax import excerpt
from redlist.ledger.store import ENV_DIR_NAME
from redlist.ledger.syncdir import sync_directory

#: The file holding a town log's signing key; a mirror's directory never has one.
LOG_KEY_NAME = "log.key"
#: The file holding the log's verifier key (``logkeyfile``).
LOG_PUB_NAME = logkeyfile.LOG_PUB_NAME


def write_key_files(data_dir: Path, signer: NoteSigner, verifier_key: VerifierKey) -> None:
    """Create ``log.key`` (0600) and ``log.pub`` (0644) in ``data_dir``; neither may exist."""
    _write_new_file(data_dir / LOG_KEY_NAME, signer.encode() + "\n", 0o600)
    _write_new_file(data_dir / LOG_PUB_NAME, verifier_key.encode() + "\n", 0o644)


def read_signer(data_dir: Path, verifier_key: VerifierKey) -> NoteSigner:
    """The signing key in ``data_dir``'s ``log.key``, which must be ``verifier_key``'s."""
    path = data_dir / LOG_KEY_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StoreError(
            f"{path} is missing: the log's signing key is needed to append (open the log "
            "read-only to only read it)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read the log key {path}: {exc}") from None
    signer = NoteSigner.parse(text.strip())
    if signer.verifier() != verifier_key:
        raise KeyFileError(
            f"{path} is not this log's key: the log's checkpoints are checked with "
            f"{verifier_key.encode()}"
        )
    return signer


def remove_created(data_dir: Path, made_dir: bool) -> None:
    """Undo a failed ``Log.create``: it started from an empty or missing directory."""
    for name in (LOG_KEY_NAME, LOG_PUB_NAME):
        (data_dir / name).unlink(missing_ok=True)
    shutil.rmtree(data_dir / ENV_DIR_NAME, ignore_errors=True)
    if made_dir:
        with contextlib.suppress(OSError):
            data_dir.rmdir()


def check_log_pub(data_dir: Path, log_key: VerifierKey) -> bool:
    """Whether ``data_dir`` holds ``log.pub``; refuse one that names another log's key."""
    path = data_dir / LOG_PUB_NAME
    if not path.exists():
        return False
    kept = logkeyfile.read_log_key(str(path))
    if kept != log_key:
        raise StoreError(
            f"{data_dir} mirrors the log of key {excerpt(kept.encode())} ({path}), not "
            f"{excerpt(log_key.encode())}: give each mirrored log its own data directory"
        )
    return True


def write_log_pub(data_dir: Path, log_key: VerifierKey) -> None:
    """Write ``log.pub`` for a new mirror (or one that lost it)."""
    path = data_dir / LOG_PUB_NAME
    staging = path.with_suffix(".tmp")
    # Synced before the rename, and the directory after it: a power cut in between must
    # leave no log.pub or a whole one, never an empty file the next start refuses.
    descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(descriptor, (log_key.encode() + "\n").encode("utf-8"))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    staging.replace(path)
    sync_directory(data_dir)


def _write_new_file(path: Path, text: str, mode: int) -> None:
    """Create ``path`` (it must not exist) with ``mode`` and ``text``, flushed to disk."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(descriptor, mode)  # the umask may have narrowed it; make it exact
        os.write(descriptor, text.encode("utf-8"))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    sync_directory(path.parent)


__all__ = [
    "LOG_KEY_NAME",
    "LOG_PUB_NAME",
    "check_log_pub",
    "read_signer",
    "remove_created",
    "write_key_files",
    "write_log_pub",
]
