"""Taking a lock file: one process writing a store at a time.

The ledger's environment, a witness's state, the resident register and the free texts
each keep a lock file beside their data. A lock is an ``flock`` on it, which the
kernel drops with the descriptor, so a process killed with SIGKILL leaves none.
"""

from __future__ import annotations

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
    with ``StoreError(busy())``; close the descriptor to release the lock."""
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
                raise StoreError(busy()) from None
            time.sleep(0.05)
        except OSError as exc:
            os.close(descriptor)
            raise StoreError(f"cannot lock {path}: {exc.strerror}") from None


__all__ = ["lock_file"]
