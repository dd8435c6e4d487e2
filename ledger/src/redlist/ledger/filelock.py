"""Taking a lock file: one process writing a store at a time.

The ledger's environment, a witness's state, the resident register and the free texts
each keep a lock file beside their data. A lock is an ``flock`` on it, which the
kernel drops with the descriptor, so a process killed with SIGKILL leaves none.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path

from redlist.ledger.errors import StoreError


def lock_file(
    path: Path, *, busy: Callable[[], str], exclusive: bool = True, wait_s: float = 0.0
) -> int:
    """The descriptor holding a lock on ``path`` (created if missing): exclusive, or
    shared. Another process's lock is waited for up to ``wait_s`` seconds, then refused
    with ``StoreError(busy())``; close the descriptor to release the lock.

    A lock file that is a symbolic link is refused: it would lock, or create, a file
    elsewhere. A shared lock (a reader's) is taken on a lock file that exists but cannot
    be written (a copy on read-only media, files of another user): ``flock`` needs no
    write access."""
    flags = os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        descriptor = os.open(path, os.O_RDWR | flags, 0o600)
    except OSError as exc:
        if exclusive or exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise StoreError(_cannot_open(path, exc)) from None
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError as again:
            raise StoreError(_cannot_open(path, again)) from None
    mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(descriptor, mode)
            return descriptor
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(descriptor)
                raise StoreError(busy()) from None
            time.sleep(0.05)
        except OSError as exc:
            os.close(descriptor)
            raise StoreError(f"cannot lock {path}: {exc.strerror}") from None


def _cannot_open(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return f"the lock file {path} is a symbolic link; remove it and try again"
    return f"cannot open the lock file {path}: {exc.strerror}"


__all__ = ["lock_file"]
