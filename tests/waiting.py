"""Waiting, in tests, for what another thread or process does in its own time."""

from __future__ import annotations

import time
from collections.abc import Callable


def eventually(condition: Callable[[], bool], seconds: float = 10.0, step: float = 0.01) -> bool:
    """Whether ``condition()`` holds within ``seconds`` (asked every ``step`` seconds)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True
