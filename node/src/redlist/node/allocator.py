"""The serving process's memory allocator: few arenas, so freed request memory is reused.

glibc's ``malloc`` gives threads that contend for it arenas of their own, up to
eight per core, and keeps memory a thread freed in that thread's arena. A node
decodes requests on the event loop, checks and commits them on commit threads,
and reads the store on read threads; gRPC has threads of its own. Each thread
that once held a large request then keeps that much memory for itself, and the
node's resident size creeps towards (arenas × the largest burst) instead of the
largest burst. Measured with 32 concurrent 4 MiB Submits (docs/reliability.md,
"Memory under abuse"): peak 600 MB with glibc's default, 332 MB with two arenas.

:func:`limit_arenas` sets glibc's ``M_ARENA_MAX`` (what the ``MALLOC_ARENA_MAX``
environment variable sets) from inside the process, before the server's threads
start. Elsewhere (musl, macOS) it does nothing: those allocators do not keep
per-thread arenas this way. An operator's own ``MALLOC_ARENA_MAX`` wins.
"""

from __future__ import annotations

import ctypes
import logging
import os

logger = logging.getLogger(__name__)

#: Arenas the node's threads share (glibc's ``M_ARENA_MAX``).
ARENAS = 2
#: ``mallopt`` parameter number of ``M_ARENA_MAX`` in glibc's ``malloc.h``.
_M_ARENA_MAX = -8


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Limit glibc's malloc to ``arenas`` arenas; False where that does not apply."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False  # the operator chose
    try:
        # The program's own symbols, the C library's among them: naming the library
        # would run ``ldconfig`` (``ctypes.util.find_library``) at every start.
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False  # not glibc
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(_M_ARENA_MAX, arenas))
    if done:
        logger.debug("malloc arenas limited to %d", arenas)
    return done
