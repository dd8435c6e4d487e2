"""Errors kept as values, without the frames they were raised through.

A caught exception keeps its traceback, and the traceback keeps every frame it
passed through with all their local variables: for a refused ``Submit``, the
whole request. When the exception is then stored where one of those frames can
reach it (a future the raising coroutine awaited, the object whose method raised
it, gRPC's record of an abort), the exception, its frames and the request form a
reference cycle that only the cyclic garbage collector frees, late or, under a
steady stream of refused requests, hardly at all. An error that outlives the
code that raised it is a value (a message, an index, a check), so it is kept
without frames.
"""

from __future__ import annotations

from typing import TypeVar

_Error = TypeVar("_Error", bound=BaseException)


def without_frames(error: _Error) -> _Error:
    """``error``, and every exception it was caused by or raised while handling, with
    its traceback dropped (messages and attributes are kept). Returns ``error``."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = None
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                pending.append(linked)
    return error
