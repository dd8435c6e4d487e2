"""Files of the resident register: its lock, directory flushes, and shredding old copies.

Edge helpers of :mod:`redlist.ledger.registerstore`, kept apart so that the store reads
as the register's rules and this module as plain file handling.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from pathlib import Path

from redlist.ledger.errors import StoreError


def sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def remove_tree(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


def shred(path: Path) -> None:
    """Overwrite every file of ``path`` with zeros, flush, and delete it all."""
    if not path.exists():
        return
    for file in sorted(path.iterdir()):
        if file.is_file():
            size = file.stat().st_size
            with file.open("r+b") as handle:
                zeros = bytes(1 << 20)
                for _ in range(0, size, len(zeros)):
                    handle.write(zeros)
                handle.truncate(size)
                handle.flush()
                os.fsync(handle.fileno())
    shutil.rmtree(path)
    sync_directory(path.parent)


def sync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def lock_file(path: Path, *, exclusive: bool, wait_s: float) -> int:
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot open the lock file {path}: {exc.strerror}") from None
    mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(descriptor, mode)
            return descriptor
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(descriptor)
                doing = "changing" if not exclusive else "reading or changing"
                raise StoreError(
                    f"another command is {doing} the resident register in {path.parent} "
                    f"(waited {wait_s:g} s); try again when it has finished"
                ) from None
            time.sleep(0.05)
        except OSError as exc:
            os.close(descriptor)
            raise StoreError(f"cannot lock {path}: {exc.strerror}") from None
